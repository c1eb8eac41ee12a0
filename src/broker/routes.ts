import type { Aedes, Client, PublishPacket } from 'aedes';
import mqemitter from 'mqemitter';
import { TopicFilterSet } from '../shared/index.js';

type Listener = (message: mqemitter.Message, done: () => void) => void;
type Route = (packet: PublishPacket, client: Client | null | undefined, done?: (err?: Error) => void) => void;

/** Where the subscriptions of persistent sessions are kept, when it can say whether one could match a topic. */
export interface PersistentSubscriptions {
  holdsSubscriptionMatching?(topic: string): boolean;
}

/**
 * aedes' router (its `mq` option): mqemitter, with the topic filters of its listeners kept beside it, so that
 * whether a message can reach anyone is known without matching it. aedes subscribes every client subscription,
 * in-process subscriber and its own `$SYS/` listeners here, so the filters are all the router holds.
 *
 * Most of what a gateway's broker carries is device events that no client subscribes to: they are acknowledged
 * and go no further (`shortcut`), and a message that reaches the router with no listener to match is done at once.
 */
export class RouteTable {
  readonly #inner = mqemitter({
    // No cap on messages in flight. With the default cap (100), messages past it wait in a queue that each completed
    // delivery drains by a synchronous call: a burst of device events queued behind 100 command deliveries recursed
    // once per event, and a few thousand QoS 1 publishes in one read overflowed the stack and crashed the gateway
    // (mcollina/mqemitter#204). Deliveries still wait for their socket; nothing else was bounded by the cap.
    concurrency: 0,
    matchEmptyLevels: true, // [MQTT-4.7.1-3]
  });
  /**
   * The filter of every listener added, as often as it was added: aedes takes a listener away only once, and
   * only one it added (a client's subscription, when it ends or is replaced), so a filter goes when its last does.
   */
  readonly #filters = new TopicFilterSet();
  #closed = false;
  /** Client publishes acknowledged without being routed: no subscription could match them. */
  unrouted = 0;

  get current(): number {
    return this.#inner.current;
  }

  on(topic: string, listener: Listener, callback?: () => void): this {
    this.#filters.add(topic);
    this.#inner.on(topic, listener, callback);
    return this;
  }

  removeListener(topic: string, listener: Listener, callback?: () => void): void {
    // mqemitter takes a listener away on the next turn: the filter stays known until it has.
    this.#inner.removeListener(topic, listener, () => {
      this.#filters.delete(topic);
      callback?.();
    });
  }

  emit(message: mqemitter.Message, callback?: (error?: Error) => void): void {
    if (!this.#closed && !this.#filters.matchesAny(message.topic)) return callback?.();
    this.#inner.emit(message, callback);
  }

  close(callback: () => void): void {
    this.#closed = true;
    this.#inner.close(callback);
  }

  /**
   * Client publishes that no subscription could match, retained ones aside, are acknowledged without going
   * through aedes' publish path (a packet object, the retained store, the persistent sessions' subscriptions for
   * QoS 1, the router, the `published` hook and `publish` event, none of which the gateway uses for them): aedes
   * hands every client publish, once authorized (and for QoS 1 once the PUBACK is written), to `aedes.publish`.
   * A QoS 1 publish is let through unless `persistent` can say that no session away could be sent it.
   */
  shortcut(aedes: Aedes, persistent: PersistentSubscriptions | undefined): void {
    const broker = aedes as unknown as { publish: Route };
    const route = broker.publish.bind(aedes);
    broker.publish = (packet, client, done) => {
      if (
        client === null ||
        typeof client !== 'object' ||
        packet.retain ||
        this.#filters.matchesAny(packet.topic) ||
        (packet.qos > 0 && persistent?.holdsSubscriptionMatching?.(packet.topic) !== false)
      ) {
        return route(packet, client, done);
      }
      this.unrouted += 1;
      done?.();
    };
  }
}
