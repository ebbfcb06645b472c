import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ErrorCatalog, type ErrorSpec } from '../src/errors.js';

// The error catalog and docs/errors.md must agree (fastify tests lib/errors.js against
// docs/Reference/Errors.md the same way): one row per code, same message, reason code, status.

const docPath = new URL('../../../docs/errors.md', import.meta.url);

interface Row {
  message: string;
  reasonCode: string;
  httpStatus: string;
  when: string;
}

function rows(): Map<string, Row> {
  const out = new Map<string, Row>();
  for (const line of readFileSync(docPath, 'utf8').split('\n')) {
    const match = /^\|\s*`(BW_ERR_[A-Z0-9_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (!match) continue;
    const [message = '', reasonCode = '', httpStatus = '', when = ''] = match[2]!
      .split('|')
      .map((c) => c.trim());
    assert.ok(!out.has(match[1]!), `${match[1]} appears twice in docs/errors.md`);
    out.set(match[1]!, { message, reasonCode, httpStatus, when });
  }
  return out;
}

function expectedRow(code: string, spec: ErrorSpec): string {
  const reason = spec.reasonCode === undefined ? '' : `0x${spec.reasonCode.toString(16).padStart(2, '0')}`;
  return `| \`${code}\` | ${spec.message} | ${reason} | ${spec.httpStatus ?? ''} | <when it happens> |`;
}

test('docs/errors.md has exactly one row per BW_ERR_* code in the catalog', () => {
  const documented = rows();
  const missing = Object.entries(ErrorCatalog)
    .filter(([code]) => !documented.has(code))
    .map(([code, spec]) => expectedRow(code, spec));
  assert.deepEqual(missing, [], `add these rows to docs/errors.md:\n${missing.join('\n')}`);
  const stale = [...documented.keys()].filter((code) => !(code in ErrorCatalog));
  assert.deepEqual(stale, [], 'docs/errors.md documents codes the catalog no longer has');
});

test('each row matches the catalog: message, MQTT reason code, HTTP status, and says when', () => {
  const documented = rows();
  for (const [code, spec] of Object.entries(ErrorCatalog) as Array<[string, ErrorSpec]>) {
    const row = documented.get(code);
    if (!row) continue; // reported by the test above
    assert.equal(row.message, spec.message, `${code}: message`);
    const reason = spec.reasonCode === undefined ? '' : `0x${spec.reasonCode.toString(16).padStart(2, '0')}`;
    assert.equal(row.reasonCode, reason, `${code}: MQTT reason code`);
    assert.equal(
      row.httpStatus,
      spec.httpStatus === undefined ? '' : String(spec.httpStatus),
      `${code}: HTTP status`,
    );
    assert.ok(row.when.length > 10, `${code}: describe when it happens`);
  }
});
