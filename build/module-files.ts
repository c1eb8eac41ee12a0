/** A file or folder of the repository embedded in the executable, at `to` (default: the same path). */
export interface TreeEntry {
  readonly from: string;
  readonly to?: string;
}

/**
 * The app's modules that find files through `import.meta.url`, and the files they read there. The
 * executable carries those files and lays them out as in the repository (build/sea/embedded-tree.ts);
 * a module that uses import.meta and is missing here fails the build, as its files would be missing.
 */
export const MODULE_FILES: Readonly<Record<string, readonly TreeEntry[]>> = {
  'src/rules/shipped-dir.ts': [{ from: 'rules' }],
  'src/dashboard/static-assets.ts': [
    { from: 'src/dashboard/assets' },
    // Where `npm run build` copies uPlot; from source it is read from node_modules.
    {
      from: 'node_modules/uplot/dist/uPlot.iife.min.js',
      to: 'src/dashboard/assets/vendor/uPlot.iife.min.js',
    },
    { from: 'node_modules/uplot/dist/uPlot.min.css', to: 'src/dashboard/assets/vendor/uPlot.min.css' },
  ],
  // Reads package.json only when not running as the executable (which has its build info instead).
  'src/shared/release.ts': [],
  // Resolves aedes's mqtt-packet in node_modules; in the executable the bundle does that (build/bundle.ts).
  'src/broker/quiet-debug.ts': [],
  // Likewise: turns mqtt-packet's number cache off in node_modules; the bundle has it off (build/bundle.ts).
  'src/broker/packet-number-cache.ts': [],
  // Starts the edge thread (`threads: 2`) from its module beside it: in the executable, its own bundle.
  'src/app/threaded-edge.ts': [{ from: 'build/out/edge-thread.cjs', to: 'src/app/edge-thread.cjs' }],
};
