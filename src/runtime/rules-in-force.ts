import type { Arbiter } from '../actions/index.js';
import type { Engine } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';

/**
 * The rules in force, with the engine and the arbiter that decide by them. Every consumer (the decision loop,
 * the uplink's `rate` and `ttl`, the housekeeping sweep, the dashboard) reads it when it uses it, so a swap
 * reaches all of them in the same instant (docs/architecture.md, "The rules in force").
 */
export class RulesInForce {
  private current: { rules: RuleSet; engine: Engine; arbiter: Arbiter };
  private readonly swapped: Array<(rules: RuleSet) => void> = [];

  constructor(rules: RuleSet, engine: Engine, arbiter: Arbiter) {
    this.current = { rules, engine, arbiter };
  }

  get rules(): RuleSet {
    return this.current.rules;
  }

  get engine(): Engine {
    return this.current.engine;
  }

  get arbiter(): Arbiter {
    return this.current.arbiter;
  }

  /** From the next input on, `engine` and `arbiter` decide by `rules`. */
  use(engine: Engine, arbiter: Arbiter, rules: RuleSet): void {
    this.current = { rules, engine, arbiter };
    for (const listener of this.swapped) listener(rules);
  }

  /** Calls `listener` after every swap, for consumers that must act on new rules rather than wait to read them. */
  onSwap(listener: (rules: RuleSet) => void): void {
    this.swapped.push(listener);
  }

  /** The same rules, another engine (recovery arming new `absent` scenarios). */
  useEngine(engine: Engine): void {
    this.current = { ...this.current, engine };
  }
}
