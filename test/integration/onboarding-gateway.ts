import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { Action } from '../../src/shared/index.js';
import { importProfiles } from '../../src/store/index.js';

/** The rules of rules/examples/grouped-onboarding: three records of a customer emit customer-created for it. */
export const ONBOARDING_RULES = fileURLToPath(
  new URL('../../rules/examples/grouped-onboarding/', import.meta.url),
);

export const PROFILES = [
  { id: 'cust-1', name: 'Ada Lovelace', email: 'ada@example.com' },
  { id: 'cust-2', email: 'grace@example.com' },
];

/** A cloud broker and a gateway on `data` running the onboarding rules; the actions the cloud receives. */
export class OnboardingGateway {
  readonly actions: Action[] = [];
  gateway!: Gateway;

  private constructor(
    readonly data: string,
    readonly cloud: Broker,
  ) {}

  static async start(data: string): Promise<OnboardingGateway> {
    const cloud = await startLocalBroker();
    const run = new OnboardingGateway(data, cloud);
    await cloud.subscribe('vigil/gw1/actions', (_topic, payload) => {
      const sent = JSON.parse(payload.toString()) as Action | Action[];
      run.actions.push(...(Array.isArray(sent) ? sent : [sent]));
    });
    await run.startGateway();
    return run;
  }

  async startGateway(): Promise<void> {
    this.gateway = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: this.data,
        rules: ONBOARDING_RULES,
        mqtt: { host: '127.0.0.1', port: 0 },
        http: { port: 0 },
        upstream: { url: `mqtt://127.0.0.1:${this.cloud.address.port}`, reconnect: '200ms' },
        log: { level: 'silent' },
      }),
    );
    await this.gateway.recovered;
    // The uplink reports itself connected once it has subscribed to the cloud's topics.
    await waitFor(async () => (await this.gateway.metrics.upstreamConnected.get()).values[0]?.value === 1);
  }

  /** Imports the customers' profiles as `vigil profiles import` does: in bulk, not into the profile cache. */
  async importProfiles(): Promise<void> {
    const ndjson = PROFILES.map((p) => JSON.stringify(p)).join('\n');
    const summary = await importProfiles(this.gateway.store, Readable.from([Buffer.from(ndjson)]));
    if (summary.imported !== PROFILES.length) throw new Error(`imported ${summary.imported}`);
  }

  async restart(): Promise<void> {
    await this.gateway.stop();
    await this.startGateway();
  }

  /** A business system's record about a customer, from the cloud at QoS 1, as its own actor sends it. */
  async record(actor: string, type: string, data: Record<string, unknown>): Promise<void> {
    await this.cloud.publish('vigil/gw1/events', JSON.stringify({ actor, type, data }), { qos: 1 });
  }

  /** Waits for `n` actions of `scenario` at the cloud. */
  async welcomes(n: number): Promise<Action[]> {
    const of = (): Action[] => this.actions.filter((a) => a.scenario === 'welcome');
    await waitFor(() => of().length >= n);
    return of();
  }

  async stop(): Promise<void> {
    await this.gateway.stop();
    await this.cloud.close();
  }
}

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
