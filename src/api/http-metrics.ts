import type { Counter, Registry } from 'prom-client';
import { metricFamilies } from '../runtime/index.js';
import type { RejectReason } from './errors.js';

/** What the HTTP API's error boundary counts, in the gateway's registry. */
export class HttpMetrics {
  readonly rejected: Counter<'reason'>;
  readonly handlerErrors: Counter<'route'>;

  constructor(registry: Registry) {
    const { counter } = metricFamilies(registry);
    this.rejected = counter(
      'vigil_http_requests_rejected_total',
      'HTTP requests refused with a 4xx by the local API, by reason (bad-target, bad-encoding, bad-header, body-too-large, unauthorized, no-route, ...)',
      { labels: ['reason'] },
    );
    this.handlerErrors = counter(
      'vigil_http_handler_errors_total',
      'HTTP requests whose handler failed (answered 500, or cut off if the answer had started), by route',
      { labels: ['route'] },
    );
  }

  reject(reason: RejectReason): void {
    this.rejected.inc({ reason });
  }
}
