// tsc mirrors the source tree under dist/; the documented entry points are dist/cli.js and dist/demo.js.
import { writeFileSync, chmodSync, cpSync, mkdirSync } from 'node:fs';

// Vigil runs on Node 24, the `node` devDependency that npm scripts and `npx` put first on the PATH. package.json's
// `engines` states what the machine's own Node must be to install (to run npm), so the runtime is checked here,
// before anything is imported, with a way out rather than an obscure failure later.
const entry = (module) => `const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    'vigil: this is Node ' + process.version + '; Vigil runs on Node 24. Use the pinned one: ' +
      'npx vigil …, npm run …, or node_modules/.bin/node ' + process.argv[1] + ' …\\n',
  );
  process.exit(1);
}
await import('${module}');
`;
writeFileSync('dist/cli.js', '#!/usr/bin/env node\n' + entry('./src/cli/main.js'));
chmodSync('dist/cli.js', 0o755);
writeFileSync('dist/demo.js', entry('./src/cli/demo-main.js'));

// The dashboard's page and uPlot are served by the gateway itself (no CDN): tsc copies neither.
cpSync('src/dashboard/assets', 'dist/src/dashboard/assets', {
  recursive: true,
  filter: (src) => !src.includes('/vendor'),
});
mkdirSync('dist/src/dashboard/assets/vendor', { recursive: true });
for (const file of ['uPlot.iife.min.js', 'uPlot.min.css'])
  cpSync(`node_modules/uplot/dist/${file}`, `dist/src/dashboard/assets/vendor/${file}`);
