import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { type AdminCredentialCheck, brokerAdminRoutes, type NodeControl } from '../../src/http/admin.js';
import { AuditLog } from '../../src/http/audit-log.js';

// Issue 14: under `breakwater up` the broker's admin routes also take the control plane's
// credentials (API keys, console session tokens) through `apiKeys`: reads need viewer, changes
// operator, and the audit line names the key rather than the body's `actor`.

test('admin routes accept API-key credentials by role and audit the key name', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-admin-keys-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const audit = new AuditLog(join(dir, 'audit.log'));
  const roles: Record<string, { name: string; role: 'viewer' | 'operator' }> = {
    'viewer-key': { name: 'bob', role: 'viewer' },
    'operator-key': { name: 'alice', role: 'operator' },
  };
  const apiKeys: AdminCredentialCheck = async (credential, role) => {
    const key = roles[credential];
    if (!key) return { ok: false, status: 401, message: 'unknown API key' };
    if (role === 'operator' && key.role === 'viewer') {
      return { ok: false, status: 403, message: `needs role ${role}` };
    }
    return { ok: true, actor: { name: key.name } };
  };
  const node = {
    drain: () => ({ draining: true }),
    drainStatus: () => ({ draining: false }),
  } as unknown as NodeControl;
  const app = Fastify();
  await app.register(brokerAdminRoutes, {
    token: 'the-admin-token-0123456789',
    guard: null,
    listeners: ['mqtt', 'ws'],
    audit,
    registry: new Registry(),
    node,
    apiKeys,
  });
  after(() => app.close());
  const call = (method: 'GET' | 'POST', url: string, credential: string, body?: unknown) =>
    app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${credential}` },
      ...(body !== undefined ? { payload: body as object } : {}),
    });

  const listeners = await call('GET', '/api/v1/listeners', 'viewer-key');
  assert.equal(listeners.statusCode, 200);
  assert.deepEqual(listeners.json(), {
    listeners: [
      { name: 'mqtt', authn: null, bypass: null },
      { name: 'ws', authn: null, bypass: null },
    ],
  });
  const viewerDrain = await call('POST', '/api/v1/node/drain', 'viewer-key', {});
  assert.equal(viewerDrain.statusCode, 403);
  assert.equal((viewerDrain.json() as { error: { code: string } }).error.code, 'BW_ERR_API_FORBIDDEN');
  const unknown = await call('GET', '/api/v1/listeners', 'nope');
  assert.equal(unknown.statusCode, 401);
  assert.equal(unknown.headers['www-authenticate'], 'Bearer');

  const drain = await call('POST', '/api/v1/node/drain', 'operator-key', { actor: 'someone else' });
  assert.equal(drain.statusCode, 202);
  const line = JSON.parse(readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').at(-1)!) as {
    actor: string;
    action: string;
  };
  assert.deepEqual([line.actor, line.action], ['apikey:alice', 'node-drain']);

  const byToken = await call('GET', '/api/v1/listeners', 'the-admin-token-0123456789');
  assert.equal(byToken.statusCode, 200, 'the admin token still works');
});
