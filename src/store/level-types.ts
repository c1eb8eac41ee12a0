import type { AbstractSublevel } from 'abstract-level';
import type { Level } from 'level';

/** The root LevelDB handle: string keys, CBOR values. */
export type RootLevel = Level<string, unknown>;

/** A sublevel of the root: its keys are prefixed with `!name!`, values are encoded as `V`. */
export type Sublevel<V = unknown> = AbstractSublevel<RootLevel, string | Buffer | Uint8Array, string, V>;
