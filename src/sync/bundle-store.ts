import type { Sublevel } from '../store/index.js';

/** The bundle in force, as kept in LevelDB: used on the next start ahead of the local rules directory. */
export interface StoredBundle {
  bundle: Buffer;
  version: number;
  hash: string;
  /** Gateway time (ms) when it was applied. */
  appliedAt: number;
  /** The group it came for (`vigil/groups/{group}/rules`); absent for the gateway's own bundle. */
  group?: string | undefined;
}

const CURRENT = 'current';

/** The `rules` sublevel: the one bundle in force. */
export class BundleStore {
  constructor(private readonly level: Sublevel) {}

  /** The stored bundle; undefined when there is none, or when what is stored is not a bundle record. */
  async current(): Promise<StoredBundle | undefined> {
    const value = await this.level.get(CURRENT);
    return isStoredBundle(value) ? value : undefined;
  }

  /** Replaces the stored bundle; resolves once LevelDB has it. */
  async save(entry: StoredBundle): Promise<void> {
    const { group, ...rest } = entry;
    await this.level.put(CURRENT, group === undefined ? rest : entry);
  }
}

function isStoredBundle(value: unknown): value is StoredBundle {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<Record<keyof StoredBundle, unknown>>;
  return (
    v.bundle instanceof Uint8Array &&
    typeof v.version === 'number' &&
    typeof v.hash === 'string' &&
    typeof v.appliedAt === 'number' &&
    (v.group === undefined || typeof v.group === 'string')
  );
}
