import type { WriteBudgetRecord } from './write-budget.js';
import type { LatencySummary } from './latency.js';
import type { StartupRecord } from './startup.js';
import type { SystemName } from './systems.js';

/** One fixed-rate run, as `test/bench/results/latest.json` holds it. */
export interface RunRecord {
  system: SystemName;
  qos: 0 | 1;
  /** Target rate, events/s. */
  rate: number;
  achievedRate: number;
  /** Vigil: device send → command received by the device; aedes, mosquitto: send → delivery to the subscriber. */
  latencyMs: LatencySummary | null;
  /** CPU of the system under test during the measured window, % of one core (all its threads). */
  cpuPct: number;
  /** CPU µs of the system under test (all its threads) per event sent in the window: `cpuPct` / achieved rate. */
  cpuUsPerEvent?: number;
  /**
   * CPU per thread during the window, % of one core, by thread name (/proc/PID/task/*\/comm; threads of the same
   * name summed, those under 1% left out): Vigil's `vigil-edge` is the device edge with `--threads 2`.
   */
  threadCpuPct?: Record<string, number>;
  /** Largest RSS of the system under test during the run. */
  rssMB: number;
  /** Events not taken in, plus replies (commands, upstream actions, deliveries) that never arrived. */
  dropped: number;
  /** CPU of the load generator during the window, % of one core. */
  loadGenCpuPct: number;
  /** Vigil: device send → the action at the cloud broker. */
  upstreamLatencyMs?: LatencySummary | null;
  /** Replies timed: deliveries to the subscriber, or Vigil's commands; expected and received in the window. */
  replies: { expected: number; received: number };
  /** QoS 1: publishes of the run and the PUBACKs the devices got. */
  acks?: { sent: number; acked: number };
  /**
   * Share of the window during which some task waited for a CPU (Linux PSI): how much other work competed with
   * the run on this shared machine. A run over the limit is repeated, and the calmest attempt kept.
   */
  cpuStallPct?: number;
  attempts?: number;
  /** Set when the run has no figures: the system under test exited during it. */
  error?: string;
}

/** One step of a maximum-throughput search. */
export interface ProbeRecord {
  system: string;
  rate: number;
  achievedRate: number;
  p99Ms: number | null;
  dropped: number;
  cpuPct: number;
  loadGenCpuPct: number;
  cpuStallPct?: number;
  sustained: boolean;
  /** Why it did not hold, when it did not. */
  reason?: string;
}

export interface IdleMemoryRecord {
  system: SystemName;
  connections: number;
  connected: number;
  /** RSS before the connections, and with them open. */
  baseMB: number;
  rssMB: number;
  kbPerConnection: number;
}

export interface TargetRecord {
  target: string;
  value: string;
  met: boolean | null;
}

export interface MachineRecord {
  date: string;
  commit: string;
  cpu: string;
  cores: number;
  memoryGB: number;
  kernel: string;
  node: string;
  mosquitto: string | null;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
  quick: boolean;
  gateway: string;
  fleet: { devices: number; profiles: number; payload: string; thresholdScenarios: number };
  profileImportMs?: number;
}

export interface BenchResults {
  machine: MachineRecord;
  runs: RunRecord[];
  /**
   * Highest rate (events/s, QoS 0) with every event processed and p99 under 50 ms. `vigil`: the benchmark's
   * rules (shipped + threshold scenarios); `vigilShippedRules`: the shipped scenarios alone.
   */
  maxThroughput: {
    vigil: number | null;
    aedes: number | null;
    mosquitto: number | null;
    'vigil-2t'?: number | null;
    vigilShippedRules?: number | null;
  };
  probes: ProbeRecord[];
  idleMemory: IdleMemoryRecord[];
  /** The startup section: exec → first CONNACK, idle RSS and size, beside their floors. */
  startup?: StartupRecord;
  /** The write-budget section: bytes written and syncs per event and per idle hour. */
  writeBudget?: WriteBudgetRecord;
  targets: TargetRecord[];
}
