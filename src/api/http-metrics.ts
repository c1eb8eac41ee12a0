import { Counter, type Registry } from 'prom-client';
import type { RejectReason } from './errors.js';

/** What the HTTP API's error boundary counts, in the gateway's registry. */
export class HttpMetrics {
  readonly rejected: Counter<'reason'>;
  readonly handlerErrors: Counter<'route'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.rejected = new Counter({
      name: 'vigil_http_requests_rejected_total',
      help: 'HTTP requests refused with a 4xx by the local API, by reason (bad-target, bad-encoding, bad-header, body-too-large, unauthorized, no-route, ...)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.handlerErrors = new Counter({
      name: 'vigil_http_handler_errors_total',
      help: 'HTTP requests whose handler failed (answered 500, or cut off if the answer had started), by route',
      labelNames: ['route'] as const,
      registers,
    });
  }

  reject(reason: RejectReason): void {
    this.rejected.inc({ reason });
  }
}
