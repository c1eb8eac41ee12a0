import mqtt, { type MqttClient } from 'mqtt';

export interface Received {
  topic: string;
  payload: Buffer;
  at: number;
}

/** A subscriber that keeps what it receives, and waits for it. */
export class Collector {
  readonly messages: Received[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      this.messages.push({ topic, payload, at: Date.now() });
      for (const w of this.waiters) w();
    });
  }

  static async connect(url: string, topics: string[], opts: mqtt.IClientOptions = {}): Promise<Collector> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...opts });
    const collector = new Collector(client);
    await client.subscribeAsync(topics, { qos: 0 });
    return collector;
  }

  json<T = Record<string, unknown>>(topicPrefix = ''): T[] {
    return this.messages
      .filter((m) => m.topic.startsWith(topicPrefix))
      .map((m) => JSON.parse(m.payload.toString()) as T);
  }

  /** Waits until `predicate` holds over what was received, or fails after `timeoutMs`. */
  async waitFor(
    predicate: (messages: Received[]) => boolean,
    timeoutMs = 5_000,
    what = 'messages',
  ): Promise<void> {
    if (predicate(this.messages)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.messages.length} messages`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        if (!predicate(this.messages)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  close(): Promise<void> {
    return this.client.endAsync();
  }
}

/**
 * Connects and resolves with the CONNACK; `received` gets every message as `topic payload`, those sent before the
 * CONNACK included. The client is ended by `onCleanup`'s callback.
 */
export async function connectWithConnack(
  port: number,
  opts: mqtt.IClientOptions,
  received: string[],
  onCleanup: (cleanup: () => Promise<unknown>) => void,
): Promise<{ client: MqttClient; connack: mqtt.IConnackPacket }> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...opts });
  client.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
  client.on('error', () => undefined);
  onCleanup(() => client.endAsync(true));
  const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { client, connack };
}

/** Waits until `predicate` holds, or fails naming `what` after `timeoutMs`. */
export async function until(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
