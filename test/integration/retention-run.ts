import { Registry } from 'prom-client';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
  type Clock,
  type DurabilitySettings,
  type RulesRecord,
} from '../../src/runtime/index.js';
import type { Action, Profile } from '../../src/shared/index.js';
import { captureLogs } from './durability-faults.js';

/** A reading of 75 or more relays an alarm to `hub`, an event of its own, which pages above the hub's limit. */
const RELAY: Record<string, string> = {
  'relay.yaml': `id: relay
when:
  event: reading
  where: data.n >= 75
then:
  emit:
    event: alarm
    actor: '"hub"'
    data:
      n: data.n
`,
  'page.yaml': `id: page
priority: 45
when:
  event: alarm
  where: data.n > profile.limit
then:
  action: page
  to: [upstream]
`,
};

/**
 * Two rule sets: `hot` fires above the profile's limit under `a`, 20 above it under `b`; `b` adds `burst`. Both
 * relay high readings to the hub.
 */
export const RULE_SETS: Record<'a' | 'b', Record<string, string>> = {
  a: {
    ...RELAY,
    'hot.yaml': `id: hot
priority: 50
when:
  event: reading
  where: data.n > profile.limit
then:
  action: cool
  to: [upstream]
`,
    'quiet.yaml': `id: quiet
priority: 40
when:
  absent: reading
  for: 10s
then:
  action: check
  to: [upstream]
`,
  },
  b: {
    ...RELAY,
    'hot.yaml': `id: hot
priority: 50
when:
  event: reading
  where: data.n > profile.limit + 20
then:
  action: cool
  to: [upstream]
`,
    'quiet.yaml': `id: quiet
priority: 40
when:
  absent: reading
  for: 10s
then:
  action: check
  to: [upstream]
`,
    'burst.yaml': `id: burst
priority: 60
when:
  event: reading
  count: 3
  within: 6s
then:
  action: slow-down
  to: [upstream]
`,
  },
};

export function compiled(name: 'a' | 'b'): { rules: RuleSet; record: RulesRecord } {
  const loaded = compileRuleFiles(Object.entries(RULE_SETS[name]).map(([path, text]) => ({ path, text })));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return { rules: loaded.rules, record: rulesRecordOf(loaded.rules, 'bundle', name === 'a' ? 1 : 2) };
}

/**
 * A gateway's decision loop over the journal in `dir`, on a virtual clock: inputs are journaled and applied as the
 * gateway does, timers fire through the journal, and every action sent is kept (what the cloud would receive).
 */
export class LiveRun {
  now: number;
  readonly sent: Action[] = [];
  readonly profiles = new Map<string, Profile>();
  inForce = compiled('a');
  durable!: DurableInputs;
  private scheduler!: VirtualScheduler;
  /** Emitted events being recorded: checkpoints wait for them, as the gateway's do. */
  private readonly emits = new Set<Promise<void>>();

  private constructor(
    readonly dir: string,
    private readonly settings: Partial<DurabilitySettings>,
    startAt: number,
  ) {
    this.now = startAt;
  }

  static async start(dir: string, settings: Partial<DurabilitySettings> = {}, startAt = 1_700_000_000_000) {
    const run = new LiveRun(dir, settings, startAt);
    await run.open();
    return run;
  }

  /** Opens the journal and recovers, as a gateway start does. */
  async open(): Promise<void> {
    const clock: Clock = { now: () => this.now };
    this.durable = await DurableInputs.open({
      dir: this.dir,
      logger: captureLogs().logger,
      registry: new Registry(),
      settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000, ...this.settings },
    });
    const restored = this.durable.restore(this.inForce.rules, { gateway: 'gw1' }, this.inForce.record);
    this.scheduler = new VirtualScheduler(this.now);
    const loop = new DecisionLoop({
      rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
      scheduler: this.scheduler,
      outputs: {
        verdict: (v, _now, replay) => {
          if (v.suppressed === undefined && !replay) this.sent.push(v.candidate.action);
        },
        emitted: (input, replay) => this.durable.emitted(input, replay),
      },
    });
    await this.durable.recover({
      loop,
      clock,
      profiles: {
        peek: (id) => ({ hit: true, profile: this.profiles.get(id) }),
        get: (id) => Promise.resolve(this.profiles.get(id)),
      },
      pendingWrites: () => this.emits,
      // An event emitted for another actor is recorded with that actor's profile, as the gateway's entrance does.
      forward: (input) => {
        const recorded = this.durable.submitEmitted(input, this.profiles.get(input.event.actor));
        this.emits.add(recorded);
        void recorded.catch(() => undefined).finally(() => this.emits.delete(recorded));
      },
    });
    await this.durable.checkpoint();
  }

  /** Moves time on by `ms`, firing the timers due on the way through the journal. */
  async advance(ms: number): Promise<void> {
    const to = this.now + ms;
    const fired: Array<Promise<void>> = [];
    this.scheduler.advance(to, false, (timer, who, dueAt) => {
      this.now = Math.max(this.now, dueAt);
      const profile = who === undefined ? undefined : this.profiles.get(who);
      fired.push(this.durable.submitTimer(timer, dueAt, who, profile));
    });
    await Promise.all(fired);
    this.now = to;
  }

  async reading(actor: string, n: number): Promise<void> {
    const ev = { actor, type: 'reading', at: this.now, data: { n }, source: 'device' as const };
    await this.durable.submitEvent(ev, this.profiles.get(actor), 'sync');
    // The events it emitted for other actors are recorded and applied before the next input comes.
    while (this.emits.size > 0) await Promise.all(this.emits);
  }

  async profile(actor: string, limit: number): Promise<void> {
    const before = this.profiles.get(actor) ?? null;
    const after = { limit };
    await this.durable.submitProfiles([{ id: actor, before, after }], this.now);
    this.profiles.set(actor, after);
  }

  async swap(to: 'a' | 'b'): Promise<void> {
    const next = compiled(to);
    await this.durable.submitRules(next.rules, next.record, this.now);
    this.inForce = next;
  }

  async restart(): Promise<void> {
    await this.durable.close();
    await this.open();
  }

  /** Action ids sent so far, sorted. */
  sentIds(): string[] {
    return this.sent.map((a) => a.id).sort();
  }
}

/**
 * A run with every kind of input: device events, silences that fire as timers, a profile change, a rules swap, a
 * restart and checkpoints along the way. Returns the times of its landmarks.
 */
export async function busyRun(run: LiveRun): Promise<{ swappedAt: number; endAt: number }> {
  await run.profile('d1', 50);
  await run.profile('d2', 50);
  await run.profile('hub', 70);
  for (let i = 0; i < 6; i++) {
    await run.reading('d1', 40 + i * 5); // over the limit from 55 on
    await run.reading('d2', 30);
    await run.advance(2_000);
  }
  await run.durable.checkpoint();
  await run.advance(15_000); // both silent: quiet fires for each
  await run.profile('d2', 10); // d2's 30 is now over its limit
  await run.reading('d2', 30);
  await run.reading('d1', 60);
  await run.durable.checkpoint();
  await run.advance(3_000);
  await run.swap('b');
  const swappedAt = run.now;
  await run.advance(1_000);
  await run.reading('d1', 60); // under b: 60 is not over 50 + 20
  await run.reading('d1', 75); // relayed to the hub: paged
  await run.reading('d1', 76); // burst: three within 6s; paged
  await run.durable.checkpoint();
  await run.restart();
  await run.advance(2_000);
  await run.reading('d2', 40);
  await run.advance(12_000); // silences again, after the restart
  await run.durable.checkpoint();
  return { swappedAt, endAt: run.now };
}
