import {
  DecisionLoop,
  RulesInForce,
  VirtualScheduler,
  type DurableInputs,
  type RecoveryDeps,
} from '../../src/runtime/index.js';

/**
 * What `DurableInputs.recover` needs for a decision loop over what `restore` gave: virtual time at 1,000,000 ms, no
 * profiles, no outputs but verdicts dropped, nothing forwarded; `extra` adds or replaces hooks.
 */
export function quietRecoveryDeps(
  restored: ReturnType<DurableInputs['restore']>,
  extra: Partial<RecoveryDeps> = {},
): RecoveryDeps {
  return {
    loop: new DecisionLoop({
      rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
      scheduler: new VirtualScheduler(1_000_000),
      outputs: { verdict: () => undefined },
    }),
    clock: { now: () => 1_000_000 },
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => new Set(),
    forward: () => undefined,
    ...extra,
  };
}
