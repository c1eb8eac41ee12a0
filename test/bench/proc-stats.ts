import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's CPU times. */
const TICKS_PER_S = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU of a process, all its threads, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

/** User + system CPU seconds of each thread of a process, summed by thread name. */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const s = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
      byName.set(name, (byName.get(name) ?? 0) + s);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return byName;
}

/** Resident set size in MB. */
export function rssMB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? 0 : Number(kb) / 1024;
}

/** What a process used over a span: CPU in % of one core, its largest RSS seen, and how busy the machine was. */
export interface ProcUsage {
  cpuPct: number;
  peakRssMB: number;
  /** Share of the span during which some task waited for a CPU (PSI); undefined where not reported. */
  stallPct: number | undefined;
  /** CPU by thread name, % of one core; empty where /proc does not tell. */
  threadPct: Record<string, number>;
}

/** Samples a process's RSS every `everyMs` and its CPU between `start` and `stop`. */
export class ProcSampler {
  private readonly timer: NodeJS.Timeout;
  private readonly cpuAtStart: number;
  private readonly startedMs = performance.now();
  private readonly stallAtStart = cpuStallUs();
  private threadsAtStart = new Map<string, number>();
  private peak: number;

  constructor(
    private readonly pid: number,
    everyMs = 200,
  ) {
    this.cpuAtStart = NaN;
    this.peak = 0;
    try {
      this.cpuAtStart = cpuSeconds(pid);
      this.threadsAtStart = threadCpuSeconds(pid);
      this.peak = rssMB(pid);
    } catch {
      // Already gone: stop() reports NaN.
    }
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  /** NaN CPU when the process is gone. */
  stop(): ProcUsage {
    clearInterval(this.timer);
    this.sample();
    const wallS = (performance.now() - this.startedMs) / 1_000;
    let cpu = NaN;
    const threadPct: Record<string, number> = {};
    try {
      cpu = cpuSeconds(this.pid);
      for (const [name, s] of threadCpuSeconds(this.pid)) {
        const pct = ((s - (this.threadsAtStart.get(name) ?? 0)) / wallS) * 100;
        if (pct >= 1) threadPct[name] = Math.round(pct * 10) / 10;
      }
    } catch {
      // It exited: the caller finds out and says so.
    }
    const stall = cpuStallUs();
    const stallPct =
      stall === undefined || this.stallAtStart === undefined
        ? undefined
        : ((stall - this.stallAtStart) / 1e6 / wallS) * 100;
    return { cpuPct: ((cpu - this.cpuAtStart) / wallS) * 100, peakRssMB: this.peak, stallPct, threadPct };
  }

  private sample(): void {
    try {
      this.peak = Math.max(this.peak, rssMB(this.pid));
    } catch {
      // The process ended; the run reports what was seen.
    }
  }
}

/**
 * Microseconds some task waited for a CPU since boot (Linux PSI, /proc/pressure/cpu), or undefined where
 * the kernel does not report it. Over a run, its growth tells how much other work competed for the cores.
 */
export function cpuStallUs(): number | undefined {
  try {
    const text = readFileSync('/proc/pressure/cpu', 'utf8');
    const total = /^some .*total=(\d+)/m.exec(text)?.[1];
    return total === undefined ? undefined : Number(total);
  } catch {
    return undefined;
  }
}
