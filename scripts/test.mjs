#!/usr/bin/env node
// Runs every test file (packages/*/test/**/*.test.ts) with Node's test runner and tsx.
// Node 20's `--test` does not expand globs, so the files are listed here.
// Usage: npm test [-- <path-prefix> ...]   e.g. npm test -- packages/broker
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const prefixes = process.argv.slice(2).map((p) => p.replace(/^\.\//, ''));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'fixtures') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) {
  const testDir = join(root, 'packages', pkg, 'test');
  try {
    if (statSync(testDir).isDirectory()) walk(testDir, files);
  } catch {}
}
const selected = prefixes.length ? files.filter((f) => prefixes.some((p) => f.startsWith(p))) : files;
if (selected.length === 0) {
  console.error(`no test files matched ${prefixes.join(' ') || 'packages/*/test'}`);
  process.exit(1);
}
selected.sort();
const args = [
  '--conditions=source',
  '--import',
  'tsx',
  '--test',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 3}`,
  '--test-timeout=180000',
  ...(process.env.TEST_REPORTER ? [`--test-reporter=${process.env.TEST_REPORTER}`] : []),
  ...selected,
];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
