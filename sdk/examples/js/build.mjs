// Build the JavaScript example into OUT_DIR/team_keys_js.wasm by calling
// componentize-js directly (`jco componentize` downloads things at run time).
// Usage: node build.mjs OUT_DIR; build.sh runs it from a directory whose
// node_modules has @bytecodealliance/componentize-js.
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? 'out');
const wit = resolve(process.env.SLUICE_WIT ?? join(here, '..', '..', '..', 'wit'));
const { component } = await componentize({
  sourcePath: join(here, 'team-keys.js'),
  witPath: wit,
  worldName: 'policy-plugin',
  // The gateway links WASI p2 but not wasi:http: without this the component
  // would import wasi:http for `fetch()` and fail to link.
  disableFeatures: ['http', 'fetch-event'],
});
await mkdir(out, { recursive: true });
const path = join(out, 'team_keys_js.wasm');
await writeFile(path, component);
console.log(`built ${path}`);
