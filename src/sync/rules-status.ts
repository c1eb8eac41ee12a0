import type { RuleProblem } from '../shared/index.js';
import type { BundleDefect } from './bundle.js';

/** Where a rules change came from. */
export type RulesSource = 'cloud' | 'local' | 'dir';

/**
 * Why a rules change was refused. The bundle defects, then: `stale-version` (not greater than the version
 * running, or equal to it for a group's bundle), `invalid-rules` (does not compile; `problems` says where), `store-failed` (could not be
 * kept for the next start), `managed-by-bundle` (a local directory reload while a bundle is in force).
 */
export type RejectReason =
  BundleDefect | 'stale-version' | 'invalid-rules' | 'store-failed' | 'managed-by-bundle';

/** What the gateway did with a rules change: published on `vigil/{gw}/rules/status` and logged. */
export interface RulesStatus {
  gateway: string;
  /** The bundle's version; null when it was refused before its content could be trusted, or for a directory. */
  version: number | null;
  status: 'applied' | 'rejected';
  /** Absent when applied. */
  reason?: RejectReason;
  /** For people: what exactly was wrong, or what changed. */
  detail: string;
  /** ISO 8601 gateway time of the outcome. */
  time: string;
  source: RulesSource;
  /** The group the bundle came for (`vigil/groups/{group}/rules`); absent for the gateway's own. */
  group?: string;
  /** SHA-256 of the bundle; absent for a directory. */
  hash?: string;
  /** The version running after this outcome (0: the local rules directory). */
  running: number;
  /** `invalid-rules`: every problem, as `vigil rules check` prints them. */
  problems?: RuleProblem[];
  /** `applied`: what became of each scenario. */
  scenarios?: { kept: string[]; changed: string[]; added: string[]; removed: string[] };
}
