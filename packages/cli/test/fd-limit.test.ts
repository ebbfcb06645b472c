import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fdLimitWarning, readFdLimit } from '../src/fd-limit.js';

const dir = mkdtempSync(join(tmpdir(), 'bw-fd-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function limitsFile(openFiles: string): string {
  const file = join(dir, `limits-${openFiles}`);
  writeFileSync(
    file,
    [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             63704                63704                processes ',
      `Max open files            ${openFiles}                 1048576              files     `,
      'Max locked memory         8388608              8388608              bytes     ',
    ].join('\n'),
  );
  return file;
}

test('readFdLimit reads the soft "Max open files" limit', () => {
  assert.equal(readFdLimit(limitsFile('1024')), 1024);
  assert.equal(readFdLimit(limitsFile('unlimited')), null);
  assert.equal(readFdLimit(join(dir, 'missing')), null);
});

test('readFdLimit on this machine agrees with /proc/self/limits', () => {
  const limit = readFdLimit();
  assert.ok(limit === null || (Number.isInteger(limit) && limit > 0));
});

test('fdLimitWarning: warns below capacity + 10 %, silent at or above it, skipped without a capacity', () => {
  const warning = fdLimitWarning(1024, 10_000);
  assert.ok(warning);
  assert.match(
    warning,
    /ulimit -n\) is 1024, below the configured 10000 connections \+ 10 % headroom \(11000\)/,
  );
  assert.equal(fdLimitWarning(11_000, 10_000), null);
  assert.match(String(fdLimitWarning(10_999, 10_000)), /11000/);
  assert.equal(fdLimitWarning(1024, null), null, 'no max-connections setting: nothing to compare');
  assert.equal(fdLimitWarning(null, 10_000), null, 'limit unknown (not Linux)');
});
