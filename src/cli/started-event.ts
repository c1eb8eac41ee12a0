/**
 * Emitted on `process` by `vigil run` once the gateway has started and recovered: the single executable's
 * loader then keeps the code compiled during the start for the next one (build/sea/loader.ts).
 */
export const STARTED_EVENT = 'vigil:started';
