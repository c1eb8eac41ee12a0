import { compileRuleFiles, type RuleSet } from '../rules/index.js';
import type { RuleProblem } from '../shared/index.js';
import { openBundle, type BundleContent } from './bundle.js';
import type { TrustedKey } from './keys.js';
import type { RejectReason } from './rules-status.js';

/** What `checkBundle` compares a bundle with. */
export interface BundleInForce {
  version: number;
  hash?: string | undefined;
  /** The highest version applied so far. */
  floor: number;
  /** The floor was reached by a group's bundle: the gateway's own bundle of that same version may still replace it. */
  floorFromGroup?: boolean | undefined;
}

export type BundleVerdict =
  | { kind: 'accept'; content: BundleContent; rules: RuleSet; hash: string; keyId: string }
  /** The very bundle in force, met again. */
  | { kind: 'running'; version: number; hash: string }
  | {
      kind: 'reject';
      reason: RejectReason;
      detail: string;
      /** Null when refused before the content could be trusted. */
      version: number | null;
      hash: string;
      problems?: RuleProblem[];
    };

/**
 * Every check a bundle goes through before it may replace the rules in force, in this order: envelope,
 * signature by a trusted key, content, version above the floor (or the same bytes as the bundle in
 * force), and the compilation of all its files. Bundles for the gateway and for its groups share one sequence
 * of versions: the higher version wins, and at the same version the gateway's own bundle wins over a group's
 * (`forGroup`: the group the bundle came for; undefined for the gateway's own).
 */
export function checkBundle(
  bytes: Uint8Array,
  trusted: readonly TrustedKey[],
  inForce: BundleInForce,
  forGroup?: string,
): BundleVerdict {
  const opened = openBundle(bytes, trusted);
  if (!opened.ok) {
    return { kind: 'reject', reason: opened.reason, detail: opened.detail, version: null, hash: opened.hash };
  }
  const { content, hash } = opened;
  if (hash === inForce.hash) return { kind: 'running', version: content.version, hash };
  const overridesGroup =
    forGroup === undefined && inForce.floorFromGroup === true && content.version === inForce.floor;
  if (content.version <= inForce.floor && !overridesGroup) {
    const detail =
      inForce.version === inForce.floor
        ? `version ${content.version} is not greater than the running version ${inForce.floor}`
        : `version ${content.version} is not greater than version ${inForce.floor}, applied before`;
    return { kind: 'reject', reason: 'stale-version', detail, version: content.version, hash };
  }
  const compiled = compileRuleFiles(content.files);
  if (!compiled.ok) {
    const n = compiled.problems.length;
    return {
      kind: 'reject',
      reason: 'invalid-rules',
      detail: `${n} problem${n === 1 ? '' : 's'} in the rules`,
      version: content.version,
      hash,
      problems: compiled.problems,
    };
  }
  return { kind: 'accept', content, rules: compiled.rules, hash, keyId: opened.keyId };
}
