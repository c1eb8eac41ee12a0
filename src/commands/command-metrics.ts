import { Counter, Gauge, type Registry } from 'prom-client';

/** What `DeviceCommands` counts. */
export class CommandMetrics {
  readonly queued: Counter;
  /** Every PUBLISH of a command to its device, a resend included. */
  readonly sent: Counter;
  readonly acknowledged: Counter<'qos'>;
  readonly expired: Counter;
  readonly dropped: Counter<'reason'>;
  readonly depth: Gauge;
  readonly bytes: Gauge;

  /** `sent` is the gateway's existing `vigil_device_commands_total`; the rest are registered on `registry`. */
  constructor(registry: Registry, sent: Counter) {
    const registers = [registry];
    this.sent = sent;
    this.queued = new Counter({
      name: 'vigil_device_commands_queued_total',
      help: 'Device commands written to the command outbox',
      registers,
    });
    this.acknowledged = new Counter({
      name: 'vigil_device_commands_acknowledged_total',
      help: 'Device commands their device took: acknowledged (QoS 1) or written to it (QoS 0), by QoS',
      labelNames: ['qos'] as const,
      registers,
    });
    this.expired = new Counter({
      name: 'vigil_device_commands_expired_total',
      help: "Device commands dropped unsent: they waited past their category's ttl",
      registers,
    });
    this.dropped = new Counter({
      name: 'vigil_device_commands_dropped_total',
      help: 'Device commands dropped unsent from the full command outbox, by reason (full, device-full, too-large)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.depth = new Gauge({
      name: 'vigil_device_command_outbox_depth',
      help: 'Device commands waiting in the command outbox',
      registers,
    });
    this.bytes = new Gauge({
      name: 'vigil_device_command_outbox_bytes',
      help: 'Bytes of device commands waiting in the command outbox',
      registers,
    });
  }
}
