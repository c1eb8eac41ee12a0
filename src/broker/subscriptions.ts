import type { Aedes, Client } from 'aedes';

/** What aedes holds on a client: its subscriptions by filter (left out of aedes' typings). */
interface RestoredSubscriptions {
  subscriptions: Record<string, { qos: number }>;
}

/** The SUBACK return code of a refused subscription [MQTT-3.9.3-2]. */
const REFUSED = 0x80;

/** The topic filters each connected client holds, with the QoS granted for each. */
export class SubscriptionTracker {
  private readonly byClient = new WeakMap<Client, Map<string, number>>();

  /**
   * Follows aedes' subscribe and unsubscribe events, and the subscriptions a persistent session brings back on
   * CONNECT (aedes restores them without a subscribe event); `onSubscribed` sees the filters granted.
   */
  watch(aedes: Aedes, onSubscribed: (client: Client, filters: readonly string[]) => void): void {
    aedes.on('clientReady', (client) => {
      if (client.clean) return;
      const restored = Object.entries((client as Client & RestoredSubscriptions).subscriptions);
      if (restored.length === 0) return;
      const held = new Map(restored.map(([filter, { qos }]) => [filter, qos] as const));
      this.byClient.set(client, held);
      onSubscribed(client, [...held.keys()]);
    });
    aedes.on('subscribe', (subscriptions, client) => {
      let held = this.byClient.get(client);
      if (held === undefined) {
        held = new Map();
        this.byClient.set(client, held);
      }
      const granted: string[] = [];
      for (const { topic, qos } of subscriptions) {
        if ((qos as number) === REFUSED) continue;
        held.set(topic, qos);
        granted.push(topic);
      }
      if (granted.length > 0) onSubscribed(client, granted);
    });
    aedes.on('unsubscribe', (filters, client) => {
      const held = this.byClient.get(client);
      for (const filter of filters) held?.delete(filter);
    });
  }

  /**
   * The QoS a message on `topic` reaches `client` with, as aedes delivers it: the QoS of a subscription to
   * exactly this topic, else the highest of the matching filters [MQTT-3.3.5-1]; undefined when none matches.
   */
  qosFor(client: Client, topic: string): number | undefined {
    const held = this.byClient.get(client);
    if (held === undefined) return undefined;
    const exact = held.get(topic);
    if (exact !== undefined) return exact;
    let best: number | undefined;
    for (const [filter, qos] of held) {
      if (topicMatches(filter, topic) && (best === undefined || qos > best)) best = qos;
    }
    return best;
  }
}

/**
 * Whether `topic` matches the MQTT topic filter `filter` (`+` one level, `#` the rest) [MQTT-4.7.1]. Read in place,
 * level by level (a command to a device is checked against its filters this way).
 */
export function topicMatches(filter: string, topic: string): boolean {
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with `$`.
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  // The start of each one's current level; past its length once its last level is taken.
  let f = 0;
  let t = 0;
  for (;;) {
    let fEnd = filter.indexOf('/', f);
    if (fEnd === -1) fEnd = filter.length;
    const length = fEnd - f;
    // `#` also matches the parent level: `a/#` matches `a` [MQTT-4.7.1-2].
    if (length === 1 && filter.charCodeAt(f) === HASH) return true;
    if (t > topic.length) return false;
    let tEnd = topic.indexOf('/', t);
    if (tEnd === -1) tEnd = topic.length;
    if (length !== 1 || filter.charCodeAt(f) !== PLUS) {
      if (length !== tEnd - t) return false;
      for (let i = 0; i < length; i++) if (filter.charCodeAt(f + i) !== topic.charCodeAt(t + i)) return false;
    }
    f = fEnd + 1;
    t = tEnd + 1;
    if (f > filter.length) return t > topic.length;
  }
}

const HASH = 0x23;
const PLUS = 0x2b;
