import type { BundleStore } from './bundle-store.js';
import { checkBundle } from './check-bundle.js';
import type { TrustedKey } from './keys.js';
import type { RulesStatus } from './rules-status.js';

/**
 * `vigil rules apply` on a data directory no gateway holds: the same checks as a running gateway makes,
 * against the stored bundle, and the bundle is stored for the next start. Undefined when it is the stored one.
 */
export async function applyToStore(opts: {
  gateway: string;
  bundles: BundleStore;
  bundle: Buffer;
  trustedKeys: readonly TrustedKey[];
  now: number;
}): Promise<RulesStatus | undefined> {
  const stored = await opts.bundles.current();
  const inForce = stored
    ? {
        version: stored.version,
        hash: stored.hash,
        floor: stored.version,
        floorFromGroup: stored.group !== undefined,
      }
    : { version: 0, floor: 0 };
  const verdict = checkBundle(opts.bundle, opts.trustedKeys, inForce);
  if (verdict.kind === 'running') return undefined;
  const base = { gateway: opts.gateway, time: new Date(opts.now).toISOString(), source: 'local' as const };
  if (verdict.kind === 'reject') {
    return {
      ...base,
      version: verdict.version,
      status: 'rejected',
      reason: verdict.reason,
      detail: verdict.detail,
      hash: verdict.hash,
      running: inForce.version,
      ...(verdict.problems !== undefined ? { problems: verdict.problems } : {}),
    };
  }
  const { content, hash } = verdict;
  await opts.bundles.save({ bundle: opts.bundle, version: content.version, hash, appliedAt: opts.now });
  return {
    ...base,
    version: content.version,
    status: 'applied',
    detail: `bundle version ${content.version} stored; the gateway starts with it`,
    hash,
    running: content.version,
  };
}
