/**
 * Stands in for `import.meta.url` in the edge thread's bundle (build/bundle.ts), which carries no files: a module
 * there that asks for its own URL is told there is none, as a bundled module would be.
 */
export function moduleUrl(rel: string): string {
  throw new Error(`${rel} has no files of its own on the edge thread`);
}
