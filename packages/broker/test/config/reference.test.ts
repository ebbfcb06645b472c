import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { validateConfig } from '../../src/config/load.js';
import { embedConfigReference, renderConfigReference } from '../../src/config/reference.js';
import { ConfigSchema } from '../../src/config/schema.js';

const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');

/** Biome aligns markdown tables; compare cell contents, not padding. */
function normalizeTables(markdown: string): string {
  return markdown
    .split('\n')
    .map((line) =>
      line.startsWith('|') ? line.replace(/\s*\|\s*/g, '|').replace(/\|-+(?=\|)/g, '|-') : line,
    )
    .join('\n');
}

test('the README configuration reference is generated from the current schema', () => {
  assert.equal(
    normalizeTables(readme),
    normalizeTables(embedConfigReference(readme)),
    'stale: run `node --conditions=source --import tsx scripts/gen-config-reference.ts`',
  );
});

test('the reference has a row for every key of the schema', () => {
  const table = renderConfigReference();
  for (const section of ['mqtt', 'storage', 'http', 'log'] as const) {
    for (const key of Object.keys(ConfigSchema.properties[section].properties)) {
      assert.match(table, new RegExp(`^\\| \`${section}\\.${key}\` \\|`, 'm'), `${section}.${key}`);
    }
  }
  for (const key of Object.keys(ConfigSchema.properties.listeners.items.properties)) {
    if (key === 'tls') continue;
    assert.match(table, new RegExp(`^\\| \`listeners\\[\\]\\.${key}\` \\|`, 'm'), `listeners[].${key}`);
  }
});

test('the README example configuration is valid (apart from certificate files that do not exist here)', async () => {
  const { parse } = await import('yaml');
  const block = /## Configuration[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a yaml example under ## Configuration');
  try {
    validateConfig(parse(block[1]!), { source: 'README.md', baseDir: '/nonexistent' });
    assert.fail('the example names certificate files, which do not exist under /nonexistent');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    const other = err.problems.filter((p) => !/\.tls\.(cert|key|ca): cannot read /.test(p));
    assert.deepEqual(other, []);
  }
});
