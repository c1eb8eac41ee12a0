/** A scenario's running totals as the engine reports them. */
export interface ScenarioCounts {
  scenario: string;
  evaluations: number;
  matches: number;
  /** Its actions the policy held back; counted per step like the detections when given. */
  suppressed?: number;
}

/** What one scenario did during the latest step. */
export interface ScenarioStep {
  scenario: string;
  evaluations: number;
  matches: number;
}

/** Detections per step of every scenario, oldest first, the last one ending at `endAt`. */
export interface RateHistory {
  stepMs: number;
  endAt: number;
  matches: Record<string, number[]>;
}

interface Track {
  prevEvaluations: number;
  prevMatches: number;
  prevSuppressed: number;
  /** Detections per step, a ring indexed like `ScenarioRates.cursor`. */
  matches: Uint32Array;
  /** Suppressed actions per step, the same way. */
  suppressed: Uint32Array;
}

/**
 * Per-scenario detection counts over the last minutes, one slot per step, built by sampling the
 * engine's running totals: the page's charts cost one look at the totals per step, nothing per event.
 */
export class ScenarioRates {
  private readonly tracks = new Map<string, Track>();
  private cursor = 0;
  private filled = 0;
  private lastAt: number | undefined;

  constructor(
    readonly stepMs: number = 1_000,
    readonly slots: number = 600,
  ) {}

  /** Takes one step: what each scenario did since the previous sample. */
  sample(at: number, totals: readonly ScenarioCounts[]): ScenarioStep[] {
    const slot = this.cursor;
    const steps: ScenarioStep[] = [];
    const present = new Set<string>();
    for (const t of totals) {
      present.add(t.scenario);
      let track = this.tracks.get(t.scenario);
      if (!track) {
        // A scenario seen for the first time starts from its current totals (restored from a checkpoint).
        track = {
          prevEvaluations: t.evaluations,
          prevMatches: t.matches,
          prevSuppressed: t.suppressed ?? 0,
          matches: new Uint32Array(this.slots),
          suppressed: new Uint32Array(this.slots),
        };
        this.tracks.set(t.scenario, track);
      }
      const evaluations = delta(t.evaluations, track.prevEvaluations);
      const matches = delta(t.matches, track.prevMatches);
      track.prevEvaluations = t.evaluations;
      track.prevMatches = t.matches;
      track.matches[slot] = matches;
      track.suppressed[slot] = delta(t.suppressed ?? 0, track.prevSuppressed);
      track.prevSuppressed = t.suppressed ?? 0;
      steps.push({ scenario: t.scenario, evaluations, matches });
    }
    for (const id of this.tracks.keys()) if (!present.has(id)) this.tracks.delete(id);
    this.cursor = (this.cursor + 1) % this.slots;
    this.filled = Math.min(this.filled + 1, this.slots);
    this.lastAt = at;
    return steps;
  }

  /** Detections (or suppressed actions) of `scenario` over the latest `steps` steps. */
  recent(scenario: string, steps: number, what: 'matches' | 'suppressed' = 'matches'): number {
    const track = this.tracks.get(scenario);
    if (!track) return 0;
    let sum = 0;
    for (let i = 1; i <= Math.min(steps, this.filled); i++)
      sum += track[what][(this.cursor - i + this.slots) % this.slots] ?? 0;
    return sum;
  }

  history(): RateHistory {
    const matches: Record<string, number[]> = {};
    for (const [id, track] of this.tracks) {
      const series: number[] = [];
      for (let i = this.filled; i >= 1; i--)
        series.push(track.matches[(this.cursor - i + this.slots) % this.slots] ?? 0);
      matches[id] = series;
    }
    return { stepMs: this.stepMs, endAt: this.lastAt ?? 0, matches };
  }
}

/** A total that went down was reset (its scenario reloaded with new rules): everything since counts. */
function delta(total: number, prev: number): number {
  return total >= prev ? total - prev : total;
}
