import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

// Issue 2: the README gives EXACTLY two set-up commands for a fresh machine — one that installs
// and runs the main job, one that installs and runs the tests — and CI runs the second.
const root = new URL('../../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');

test('the README set-up section has exactly two commands: run the broker, run the tests', () => {
  const section = /## Set up\n([\s\S]*?)\n## /.exec(readme)?.[1];
  assert.ok(section, 'README has a "## Set up" section');
  const commands = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
  assert.deepEqual(commands, ['npm install && npx breakwater up', 'npm run setup:test && npm test']);
});

test('the commands the README relies on exist: the bin, the prepare build, setup:test, test', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.match(pkg.scripts.prepare ?? '', /tsc -b/, 'npm install builds dist/ for the bin');
  assert.ok(pkg.scripts['setup:test'], 'setup:test');
  assert.ok(pkg.scripts.test, 'test');
  const cli = JSON.parse(readFileSync(new URL('packages/cli/package.json', root), 'utf8')) as {
    bin: Record<string, string>;
  };
  assert.equal(cli.bin.breakwater, './bin/breakwater.js');
  assert.match(readFileSync(new URL('.ci/run', root), 'utf8'), /npm run setup:test[\s\S]*npm test/);
});
