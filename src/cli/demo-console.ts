import type { Action } from '../shared/index.js';

/** What the live summary line shows; read once a second. */
export interface LiveFigures {
  eventsIn: number;
  sent: number;
  suppressed: number;
  outbox: number;
  devicesConnected: number;
}

export interface DemoConsoleOptions {
  /** Action lines printed per second at most; the others are counted in the live line. */
  printPerS: number;
  /** On a terminal the live line is redrawn in place; elsewhere it is printed as a line this often. */
  statusEveryMs: number;
  /** When the run started, for the `[12.3s]` stamps. */
  startedAtMs: number;
  now?: () => number;
}

const CLEAR_LINE = '\r\x1b[K';

/**
 * The demo's output: one line per action as the cloud receives it, and a one-line live summary (redrawn in
 * place on a terminal, printed every few seconds otherwise). At most `printPerS` action lines a second, so a
 * burst does not scroll everything else away; the rest are counted.
 */
export class DemoConsole {
  private readonly now: () => number;
  private readonly tty: boolean;
  private windowStartMs = 0;
  private printedInWindow = 0;
  private notPrinted = 0;
  private received = 0;
  private lastStatus = '';
  private lastStatusPrintedAtMs: number;
  private lastEvents: { atMs: number; count: number } | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly opts: DemoConsoleOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.tty = out.isTTY === true;
    this.lastStatusPrintedAtMs = opts.startedAtMs;
  }

  /** A plain line, above the live one. */
  say(line: string): void {
    this.write(line + '\n');
  }

  /** An action the cloud received. */
  action(action: Action): void {
    this.received++;
    const at = this.now();
    if (at - this.windowStartMs >= 1_000) {
      this.windowStartMs = at;
      this.printedInWindow = 0;
    }
    if (this.printedInWindow >= this.opts.printPerS) {
      this.notPrinted++;
      return;
    }
    this.printedInWindow++;
    const payload = JSON.stringify(action.payload);
    this.say(
      `${this.stamp(at)} ${action.scenario.padEnd(28)} ${action.actor.padEnd(10)} -> ${action.action} ${payload}`,
    );
  }

  /** Takes new figures: redraws the live line on a terminal, prints it every `statusEveryMs` otherwise. */
  update(figures: LiveFigures): void {
    const at = this.now();
    this.lastStatus = this.statusLine(at, figures);
    if (this.tty) {
      this.out.write(CLEAR_LINE + this.lastStatus);
    } else if (at - this.lastStatusPrintedAtMs >= this.opts.statusEveryMs) {
      this.lastStatusPrintedAtMs = at;
      this.out.write(this.lastStatus + '\n');
    }
  }

  /** Ends the live line, so that what follows starts on a line of its own. */
  finish(): void {
    if (this.tty && this.lastStatus !== '') this.out.write(CLEAR_LINE);
    this.lastStatus = '';
  }

  private statusLine(at: number, f: LiveFigures): string {
    const prev = this.lastEvents;
    this.lastEvents = { atMs: at, count: f.eventsIn };
    const perS =
      prev && at > prev.atMs ? Math.round(((f.eventsIn - prev.count) * 1_000) / (at - prev.atMs)) : 0;
    const skipped = this.notPrinted > 0 ? ` (${this.notPrinted} not printed)` : '';
    return (
      `${this.stamp(at)} live: events ${f.eventsIn} (${perS}/s) · sent ${f.sent} · suppressed ${f.suppressed}` +
      ` · received upstream ${this.received}${skipped} · outbox ${f.outbox}` +
      ` · devices connected ${f.devicesConnected} · Ctrl-C to stop`
    );
  }

  private stamp(at: number): string {
    return `[${((at - this.opts.startedAtMs) / 1000).toFixed(1).padStart(6)}s]`;
  }

  private write(text: string): void {
    if (this.tty && this.lastStatus !== '') this.out.write(CLEAR_LINE + text + this.lastStatus);
    else this.out.write(text);
  }
}
