import type { Counter, Gauge, Registry } from 'prom-client';
import { metricFamilies } from '../runtime/index.js';

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
    const { counter, gauge } = metricFamilies(registry);
    this.sent = sent;
    this.queued = counter(
      'vigil_device_commands_queued_total',
      'Device commands written to the command outbox',
    );
    this.acknowledged = counter(
      'vigil_device_commands_acknowledged_total',
      'Device commands their device took: acknowledged (QoS 1) or written to it (QoS 0), by QoS',
      { labels: ['qos'] },
    );
    this.expired = counter(
      'vigil_device_commands_expired_total',
      "Device commands dropped unsent: they waited past their category's ttl",
    );
    this.dropped = counter(
      'vigil_device_commands_dropped_total',
      'Device commands dropped unsent from the full command outbox, by reason (full, device-full, too-large)',
      { labels: ['reason'] },
    );
    this.depth = gauge('vigil_device_command_outbox_depth', 'Device commands waiting in the command outbox');
    this.bytes = gauge(
      'vigil_device_command_outbox_bytes',
      'Bytes of device commands waiting in the command outbox',
    );
  }
}
