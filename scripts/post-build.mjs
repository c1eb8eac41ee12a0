// tsc mirrors the source tree under dist/; the documented entry points are dist/cli.js and dist/demo.js.
import { writeFileSync, chmodSync, cpSync, mkdirSync } from 'node:fs';

writeFileSync('dist/cli.js', "#!/usr/bin/env node\nimport './src/cli/main.js';\n");
chmodSync('dist/cli.js', 0o755);
writeFileSync('dist/demo.js', "import './src/cli/demo-main.js';\n");

// The dashboard's page and uPlot are served by the gateway itself (no CDN): tsc copies neither.
cpSync('src/dashboard/assets', 'dist/src/dashboard/assets', {
  recursive: true,
  filter: (src) => !src.includes('/vendor'),
});
mkdirSync('dist/src/dashboard/assets/vendor', { recursive: true });
for (const file of ['uPlot.iife.min.js', 'uPlot.min.css'])
  cpSync(`node_modules/uplot/dist/${file}`, `dist/src/dashboard/assets/vendor/${file}`);
