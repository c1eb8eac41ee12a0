import type { Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';

/** What a batched socket takes from the writer in place of mqtt-packet: a PUBACK, or false to let it write. */
interface AckWriter {
  ack(messageId: number): boolean;
}

const ackWriters = new WeakMap<object, AckWriter>();

/** PUBACK's fixed header and remaining length, v3.1.1 [MQTT-3.4.1]: then the packet identifier, 2 bytes. */
const PUBACK_HEAD = 0x40;
const PUBACK_LENGTH = 2;

/**
 * Holds a socket's writes until the event loop's next check phase and sends them in one go.
 *
 * With TCP_NODELAY every write is a segment of its own. mqtt-packet corks a packet only until the
 * next tick, so the PUBACKs of one read batch, or the messages relayed to a subscriber in one turn,
 * still leave one by one, and with Nagle off that cost 30–40% of peak throughput. Corking from the
 * first write until setImmediate coalesces them into one writev; the wait is one turn of the loop,
 * not a timer.
 *
 * The PUBACKs aedes writes for the socket (see `writeAcksInBatches`) are kept as their packet identifiers and
 * written as one buffer, in their place: before anything written to the socket after them, or at the end of the
 * turn. mqtt-packet writes each as three buffers, with a cork and a `nextTick` of its own: about 1 KB per QoS 1
 * publish in the stream's entries, its `writev` and the identifier's Buffer (docs/benchmarks.md).
 */
export function batchWrites(socket: Socket): void {
  // Corked for this turn (something other than PUBACKs was written), and the turn's end scheduled.
  let corked = false;
  let scheduled = false;
  const acks: number[] = [];
  let ackCount = 0;
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  const writeAcks = (): void => {
    const bytes = Buffer.allocUnsafe(ackCount * 4);
    for (let i = 0; i < ackCount; i++) {
      const id = acks[i] as number;
      bytes[i * 4] = PUBACK_HEAD;
      bytes[i * 4 + 1] = PUBACK_LENGTH;
      bytes[i * 4 + 2] = id >> 8;
      bytes[i * 4 + 3] = id & 0xff;
    }
    ackCount = 0;
    write(bytes);
  };
  // A turn that wrote only PUBACKs writes their one buffer without corking: no entry in the stream's buffer.
  const release = (): void => {
    scheduled = false;
    if (ackCount > 0) writeAcks();
    if (!corked) return;
    corked = false;
    socket.uncork();
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(release);
  };
  // Patched on the instance: net.Server creates the sockets, so there is no subclass to give it.
  socket.write = (...args: unknown[]): boolean => {
    if (!corked) {
      corked = true;
      socket.cork();
      schedule();
    }
    if (ackCount > 0) writeAcks();
    return write(...args);
  };
  ackWriters.set(socket, {
    ack(messageId) {
      // Written by mqtt-packet, and failing as there.
      if (socket.destroyed || !socket.writable) return false;
      schedule();
      acks[ackCount++] = messageId;
      return true;
    },
  });
}

type WriteToStream = (
  packet: { cmd?: unknown; messageId?: unknown },
  stream: unknown,
  opts?: unknown,
) => boolean;

const ACKS_IN_BATCHES = Symbol.for('vigil.writeAcksInBatches');

/**
 * aedes writes every packet through mqtt-packet's `writeToStream` (one copy of mqtt-packet, looked up at each
 * write). A PUBACK without options (aedes gives none: v3.1.1 bytes) to a socket of `batchWrites` is handed to its
 * batch instead; everything else, and a PUBACK to any other stream, is written by mqtt-packet as before. The bytes
 * on the wire are the same (`test/unit/broker-write-batching.test.ts`).
 */
function writeAcksInBatches(): void {
  const writer = mqttPacket as unknown as { writeToStream: WriteToStream };
  const original = writer.writeToStream;
  if (typeof original !== 'function' || Object.hasOwn(original, ACKS_IN_BATCHES)) return;
  const inBatches: WriteToStream = (packet, stream, opts) => {
    if (opts === undefined && packet.cmd === 'puback' && typeof stream === 'object' && stream !== null) {
      const id = packet.messageId;
      const batch = ackWriters.get(stream);
      const valid = typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffff;
      // mqtt-packet answers true for every PUBACK it writes: aedes never waits for 'drain' after one.
      if (batch !== undefined && valid && batch.ack(id)) return true;
    }
    return original(packet, stream, opts);
  };
  // `cacheNumbers` (a getter and setter on mqtt-packet's own function) keeps working through this one.
  const cacheNumbers = Object.getOwnPropertyDescriptor(original, 'cacheNumbers');
  if (cacheNumbers !== undefined) Object.defineProperty(inBatches, 'cacheNumbers', cacheNumbers);
  Object.defineProperty(inBatches, ACKS_IN_BATCHES, { value: true });
  writer.writeToStream = inBatches;
}

writeAcksInBatches();
