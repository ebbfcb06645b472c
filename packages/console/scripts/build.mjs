#!/usr/bin/env node
// Bundles the console (src/main.tsx + CSS) into dist/ with esbuild: dist/index.html,
// dist/assets/app.js, dist/assets/app.css. Run by the root `prepare` (npm install) and `build`
// scripts, so a fresh clone and `breakwater up` have it; dist/ is not committed.
// Prints the gzip sizes and fails when the JavaScript exceeds the budget (issue 14: 100 KB gzip).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist');
const JS_BUDGET_GZIP = 100 * 1024;

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
await build({
  entryPoints: { app: join(root, 'src/main.tsx') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  legalComments: 'none',
  logLevel: 'warning',
});
writeFileSync(join(out, 'index.html'), readFileSync(join(root, 'src/index.html')));

const sizes = ['assets/app.js', 'assets/app.css'].map((f) => {
  const body = readFileSync(join(out, f));
  return { file: f, bytes: body.length, gzip: gzipSync(body, { level: 9 }).length };
});
for (const s of sizes) {
  console.log(`console: ${s.file} ${(s.bytes / 1024).toFixed(1)} KB, ${(s.gzip / 1024).toFixed(1)} KB gzip`);
}
const js = sizes[0];
if (js.gzip > JS_BUDGET_GZIP) {
  console.error(`console: app.js is ${(js.gzip / 1024).toFixed(1)} KB gzip, over the 100 KB budget`);
  process.exit(1);
}
