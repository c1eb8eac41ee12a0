// tsc mirrors the source tree under dist/; the documented entry points are dist/cli.js and dist/demo.js.
import { writeFileSync, chmodSync } from 'node:fs';

writeFileSync('dist/cli.js', "#!/usr/bin/env node\nimport './src/cli/main.js';\n");
chmodSync('dist/cli.js', 0o755);
writeFileSync('dist/demo.js', "import './src/cli/demo-main.js';\n");
