// Rewrites the configuration reference table in README.md from the config schema.
// Usage: node --conditions=source --import tsx scripts/gen-config-reference.ts
// packages/broker/test/config/reference.test.ts fails when the README copy is stale.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { embedConfigReference } from '../packages/broker/src/config/reference.js';

const readme = new URL('../README.md', import.meta.url);
const before = readFileSync(readme, 'utf8');
const after = embedConfigReference(before);
if (after === before) {
  console.log('README.md configuration reference is up to date');
} else {
  writeFileSync(readme, after);
  // Biome formats markdown (aligned tables); keep `npm run lint` clean after regenerating.
  const biome = fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url));
  spawnSync(biome, ['format', '--write', fileURLToPath(readme)], { stdio: 'inherit' });
  console.log('README.md configuration reference rewritten');
}
