import type { Logger } from 'pino';
import { decidedOnGatewayAt, isExpired } from '../actions/index.js';
import type { Policy } from '../rules/index.js';
import { retryUntilDone } from '../runtime/index.js';
import { deviceCommandTopic, type Action } from '../shared/index.js';
import type { CommandAddResult, CommandOutbox } from '../store/index.js';
import { cloudCommandOf } from './cloud-command.js';
import type { CommandMetrics } from './command-metrics.js';

/** What became of a command sent to its device (the broker's `SendOutcome`). */
export type CommandOutcome = 'acknowledged' | 'written' | 'not-connected' | 'not-subscribed' | 'lost';

/**
 * What finally became of a queued command: `delivered` (its device's PUBACK, or written to it at QoS 0),
 * `expired` (dropped unsent at its ttl), `dropped` (unsent, to make room in the full command outbox).
 */
export type CommandFate = 'delivered' | 'expired' | 'dropped';

/** The broker, as device commands use it. */
export interface CommandLink {
  /** Sends to the device's connection alone, at the QoS it subscribed with; settles once it is done. */
  sendTo(clientId: string, topic: string, payload: string): Promise<CommandOutcome>;
  /** Publishes to every other subscriber of the topic, as a plain broker would. */
  publish(topic: string, payload: string, opts: { except: string }): Promise<void>;
}

export interface DeviceCommandsOptions {
  outbox: CommandOutbox;
  link: CommandLink;
  /** Gateway time, in ms: the ttl is measured on it. */
  now: () => number;
  /** The policy in force when it is used: its `ttl` per category says how long a command may wait. */
  policy: () => Policy | undefined;
  metrics: CommandMetrics;
  logger: Logger;
  /** A write that carries out a decision: no checkpoint forgets the input until it is done. */
  holdCheckpointsFor(write: Promise<unknown>): void;
  /** A command decided again during recovery that is not sent again: it is queued, was acknowledged or dropped. */
  notResent(): void;
  /** What became of each command, with the reason in words (commands from the cloud report it upstream). */
  onFate?: (action: Action, fate: CommandFate, reason: string) => void;
}

const DUPLICATE: CommandAddResult = Object.freeze({ status: 'duplicate' });
const ACKNOWLEDGED: CommandAddResult = Object.freeze({ status: 'acknowledged' });
const DROPPED: CommandAddResult = Object.freeze({ status: 'dropped' });
const KNOWN = { queued: DUPLICATE, acknowledged: ACKNOWLEDGED, dropped: DROPPED } as const;

/** The topic a device receives a command on. */
export function commandTopic(action: Action): string {
  return deviceCommandTopic(action.actor, action.action);
}

/** What the device receives: the action as JSON, or for a command from the cloud its `data`. */
export function commandPayload(action: Action): string {
  const cloud = cloudCommandOf(action);
  return JSON.stringify(cloud === undefined ? action : cloud.data);
}

/**
 * Device commands, at least once until their ttl: each decided command is written to the command outbox
 * (synced) before it is sent, sent at the QoS its device subscribed with, and kept until the device
 * acknowledged it (QoS 1) or it was written to the device (QoS 0). A device that is not connected, or not
 * subscribed, gets what waits for it when it subscribes; a command older than its ttl is dropped instead.
 */
export class DeviceCommands {
  readonly #opts: DeviceCommandsOptions;
  // Ids being sent on a connection: not sent again until that settles.
  readonly #inFlight = new Set<string>();
  readonly #writes = new Set<Promise<unknown>>();
  #sweeps: NodeJS.Timeout | undefined;
  #stopping = false;
  /**
   * The command just queued, with its topic and payload as they were published to the other subscribers: it is
   * usually sent to its device at once (`deviceReady`), with the same ones rather than its JSON made again.
   */
  #queued: Action | undefined;
  #queuedTopic = '';
  #queuedPayload = '';

  constructor(opts: DeviceCommandsOptions) {
    this.#opts = opts;
    this.#gauge();
  }

  /**
   * A command decided for `action.actor`: queued, then sent. `replay` when recovery decided it again from
   * the journal: it has the id it had the first time, and is neither queued twice nor sent again once its
   * device acknowledged it, nor queued again once it was dropped to make room.
   */
  decided(action: Action, replay: boolean): void {
    const { outbox, metrics, logger } = this.#opts;
    // Decided again by recovery and already on disk, acknowledged or dropped: answered as `add` would, unwritten.
    const known = outbox.known(action.id);
    if (known !== undefined) {
      this.#added(action, KNOWN[known], replay);
      return;
    }
    const added = retryUntilDone(() => outbox.add(action), {
      stopped: () => this.#stopping,
      onError: (err, attempt) => {
        if (attempt === 1 || attempt % 10 === 0) {
          logger.error(
            { err, id: action.id, actor: action.actor, attempt },
            'device command could not be written to the command outbox; trying again',
          );
        }
      },
    });
    this.#track(added);
    this.#opts.holdCheckpointsFor(added);
    added.then(
      (result) => this.#added(action, result, replay),
      (err: unknown) => {
        metrics.dropped.inc({ reason: 'write-failed' });
        logger.error(
          { err, id: action.id, actor: action.actor },
          'device command not written to the command outbox; the journal still has its input, replayed on the next start',
        );
      },
    );
  }

  /**
   * A command the cloud sent (`cloudCommandAction`): resolves once it is synced to the command outbox (the
   * cloud's PUBACK waits for it), rejects when it could not be written (the cloud sends it again).
   */
  async fromCloud(action: Action): Promise<CommandAddResult> {
    if (this.#stopping) throw new Error('device commands are stopping');
    const added = this.#opts.outbox.add(action, true);
    this.#track(added);
    const result = await added;
    this.#added(action, result, false);
    return result;
  }

  /** The device connected or subscribed: what waits for it is sent, in the order it was decided. */
  deviceReady(device: string): void {
    if (this.#stopping) return;
    for (const action of this.#opts.outbox.pending(device)) {
      if (this.#inFlight.has(action.id)) continue;
      if (this.#expire(action)) continue;
      this.#send(action);
    }
  }

  /** Drops the commands past their ttl, forgets old acknowledged and dropped ids, and offers the rest again. */
  sweep(): void {
    if (this.#stopping) return;
    const { outbox, now, logger } = this.#opts;
    for (const action of outbox.all()) if (!this.#inFlight.has(action.id)) this.#expire(action);
    for (const device of outbox.devices()) this.deviceReady(device);
    this.#track(
      outbox.forgetAcknowledged(now()).catch((err: unknown) => {
        logger.warn({ err }, 'acknowledged or dropped device command ids could not be forgotten');
      }),
    );
  }

  /** Sweeps now and then every `everyMs` (after recovery: acknowledged and dropped ids are forgotten only then). */
  sweepEvery(everyMs: number): void {
    if (this.#stopping || this.#sweeps !== undefined) return;
    this.sweep();
    this.#sweeps = setInterval(() => this.sweep(), everyMs);
    this.#sweeps.unref();
  }

  /** Stops sweeping and lets the writes under way finish; the outbox is closed by its owner afterwards. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#sweeps);
    while (this.#writes.size > 0) await Promise.allSettled([...this.#writes]);
  }

  #added(action: Action, result: CommandAddResult, replay: boolean): void {
    const { metrics, logger, link } = this.#opts;
    switch (result.status) {
      case 'queued':
        metrics.queued.inc();
        for (const { action: dropped, reason } of result.dropped) {
          metrics.dropped.inc({ reason });
          logger.warn(
            { id: dropped.id, actor: dropped.actor, action: dropped.action, reason },
            'command outbox full: dropped the oldest device command',
          );
          this.#opts.onFate?.(dropped, 'dropped', `dropped unsent: the command outbox was full (${reason})`);
        }
        this.#gauge();
        // Anyone else subscribed to the topic (a monitor, in development) sees it once, as before.
        if (!replay) {
          this.#queued = action;
          this.#queuedTopic = commandTopic(action);
          this.#queuedPayload = commandPayload(action);
          link.publish(this.#queuedTopic, this.#queuedPayload, { except: action.actor }).catch(() => {
            // The broker is closing; the device's own copy is in the outbox.
          });
        }
        break;
      case 'duplicate':
      case 'acknowledged':
      case 'dropped':
        if (replay) this.#opts.notResent();
        break;
      case 'too-large':
        metrics.dropped.inc({ reason: 'too-large' });
        logger.warn(
          { id: action.id, actor: action.actor, action: action.action },
          'device command dropped: larger than the whole command outbox',
        );
        return;
    }
    if (result.status !== 'acknowledged' && result.status !== 'dropped') this.deviceReady(action.actor);
    this.#queued = undefined;
    this.#queuedPayload = '';
  }

  #send(action: Action): void {
    const { link, metrics, outbox, now, logger } = this.#opts;
    this.#inFlight.add(action.id);
    const queued = action === this.#queued;
    const topic = queued ? this.#queuedTopic : commandTopic(action);
    const payload = queued ? this.#queuedPayload : commandPayload(action);
    const sent = link.sendTo(action.actor, topic, payload).then((outcome) => {
      this.#inFlight.delete(action.id);
      if (outcome === 'not-connected' || outcome === 'not-subscribed') return;
      metrics.sent.inc();
      if (outcome === 'lost') return;
      const acknowledged = outcome === 'acknowledged';
      this.#opts.onFate?.(action, 'delivered', acknowledged ? 'PUBACK' : 'written at QoS 0');
      if (this.#stopping) return;
      metrics.acknowledged.inc({ qos: acknowledged ? '1' : '0' });
      return outbox.acknowledge(action.id, now()).then(
        () => this.#gauge(),
        (err: unknown) => {
          // Still queued on disk: sent once more after a restart, and the device can tell by its id.
          logger.warn({ err, id: action.id }, 'device command acknowledged but not removed from the outbox');
        },
      );
    });
    this.#track(sent);
  }

  // True when the command waited past its ttl: it is dropped, counted and logged.
  #expire(action: Action): boolean {
    const { outbox, now, policy, metrics, logger } = this.#opts;
    const at = now();
    const cloud = cloudCommandOf(action);
    if (cloud === undefined ? !isExpired(action, at, policy()) : at < cloud.expiresAt) return false;
    metrics.expired.inc();
    logger.info(
      {
        id: action.id,
        scenario: action.scenario,
        actor: action.actor,
        action: action.action,
        category: action.category,
        waitedMs: at - decidedOnGatewayAt(action),
        reason: 'ttl',
      },
      'device command dropped: it waited past its ttl',
    );
    this.#opts.onFate?.(action, 'expired', 'ttl');
    // A cloud command's id is remembered as done: the same id sent again is not queued again.
    const removed = cloud === undefined ? outbox.remove(action.id) : outbox.acknowledge(action.id, at);
    this.#track(
      removed.then(
        () => this.#gauge(),
        (err: unknown) => logger.warn({ err, id: action.id }, 'expired device command not removed'),
      ),
    );
    return true;
  }

  #track(work: Promise<unknown>): void {
    this.#writes.add(work);
    // One reaction for either outcome (a rejection is handled by whoever made the work).
    const done = (): void => void this.#writes.delete(work);
    work.then(done, done);
  }

  #gauge(): void {
    this.#opts.metrics.depth.set(this.#opts.outbox.size);
    this.#opts.metrics.bytes.set(this.#opts.outbox.bytes);
  }
}
