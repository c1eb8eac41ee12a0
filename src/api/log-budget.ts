/**
 * At most `perWindow` log lines every `windowMs`, so that a flood of bad requests cannot flood the log;
 * the first line of the next window says how many were left out.
 */
export class LogBudget {
  private windowStart = 0;
  private used = 0;
  private skipped = 0;

  constructor(
    private readonly perWindow = 20,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether to log this one; `skipped` is how many were left out before it (reported once). */
  take(): { log: boolean; skipped: number } {
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used >= this.perWindow) {
      this.skipped += 1;
      return { log: false, skipped: 0 };
    }
    this.used += 1;
    const skipped = this.skipped;
    this.skipped = 0;
    return { log: true, skipped };
  }
}
