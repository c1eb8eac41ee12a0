import type { Logger } from 'pino';
import { compileRuleFiles, type RuleSet } from '../rules/index.js';
import { formatProblem } from '../shared/index.js';
import { openBundle } from './bundle.js';
import type { BundleStore } from './bundle-store.js';
import type { TrustedKey } from './keys.js';
import type { RunningRules } from './rule-sync.js';

/**
 * The rules to start with: the stored bundle when there is one that still verifies with the trusted keys
 * and compiles, otherwise the local rules directory. Its version stays the floor for the next bundles
 * either way, so that an older bundle cannot come back in through a start-up without it.
 */
export async function chooseStartupRules(opts: {
  bundles: BundleStore;
  trustedKeys: readonly TrustedKey[];
  dirRules: RuleSet;
  logger: Logger;
}): Promise<{ rules: RuleSet; running: RunningRules }> {
  const { logger, dirRules } = opts;
  const stored = await opts.bundles.current();
  if (stored === undefined) return { rules: dirRules, running: { source: 'dir', version: 0, floor: 0 } };
  // Only when true: a floor reached by the gateway's own bundle is the default.
  const fromGroup = stored.group !== undefined ? ({ floorFromGroup: true } as const) : {};
  const fallback = {
    rules: dirRules,
    running: { source: 'dir', version: 0, floor: stored.version, ...fromGroup },
  } as const;
  const opened = openBundle(stored.bundle, opts.trustedKeys);
  if (!opened.ok) {
    logger.warn(
      { version: stored.version, reason: opened.reason, detail: opened.detail },
      'the stored rules bundle does not verify with the trusted keys; running the local rules directory',
    );
    return fallback;
  }
  const compiled = compileRuleFiles(opened.content.files);
  if (!compiled.ok) {
    logger.error(
      { version: stored.version, problems: compiled.problems.map(formatProblem) },
      'the stored rules bundle does not compile; running the local rules directory',
    );
    return fallback;
  }
  const version = opened.content.version;
  logger.info(
    { version, hash: opened.hash, scenarios: compiled.rules.scenarios.length, key: opened.keyId },
    'rules loaded from the stored bundle',
  );
  return {
    rules: compiled.rules,
    running: {
      source: 'bundle',
      version,
      hash: opened.hash,
      floor: Math.max(version, stored.version),
      ...fromGroup,
      ...(stored.group !== undefined ? { group: stored.group } : {}),
    },
  };
}
