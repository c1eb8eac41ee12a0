import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Buckets for the time one decision or one write takes: 100 µs to 1 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1,
];

/** What a family takes besides its name and help. */
export interface FamilyOptions<L extends string> {
  /** Its label names; none by default. */
  labels?: readonly L[];
  /** Runs at scrape time, for a value kept elsewhere rather than pushed. */
  collect?: () => void;
}

/** Declares metric families in one registry. */
export interface MetricFamilies {
  readonly counter: <L extends string = string>(
    name: string,
    help: string,
    opts?: FamilyOptions<L>,
  ) => Counter<L>;
  readonly gauge: <L extends string = string>(
    name: string,
    help: string,
    opts?: FamilyOptions<L>,
  ) => Gauge<L>;
  readonly histogram: (name: string, help: string, buckets: readonly number[]) => Histogram;
}

/** The families of `registry`: each one is registered there as it is declared. */
export function metricFamilies(registry: Registry): MetricFamilies {
  const registers = [registry];
  const config = <L extends string>(name: string, help: string, opts: FamilyOptions<L>) => ({
    name,
    help,
    registers,
    ...(opts.labels === undefined ? {} : { labelNames: opts.labels }),
    ...(opts.collect === undefined ? {} : { collect: opts.collect }),
  });
  return {
    counter: (name, help, opts = {}) => new Counter(config(name, help, opts)),
    gauge: (name, help, opts = {}) => new Gauge(config(name, help, opts)),
    histogram: (name, help, buckets) => new Histogram({ name, help, buckets: [...buckets], registers }),
  };
}
