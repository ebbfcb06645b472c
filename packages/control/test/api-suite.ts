/**
 * HTTP API tests, in-process with fastify.inject(); run once per storage driver
 * (api-sqlite.test.ts, api-postgres.test.ts).
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { DevicePresence, PRUNE_EVERY } from '../src/devices/presence.js';
import { createControlPlane } from '../src/http/app.js';
import { type Driver, errorOf, type Harness, startControlPlane } from './harness.js';

async function keyFor(
  h: Harness,
  role: 'admin' | 'operator' | 'viewer',
  name: string = role,
): Promise<string> {
  const res = await h.call('POST', '/api/v1/keys', { body: { name, role } });
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { key: string }).key;
}

async function createDevice(h: Harness, body: Record<string, unknown>): Promise<{ secret: string }> {
  const res = await h.call('POST', '/api/v1/devices', { body });
  assert.equal(res.statusCode, 201, res.body);
  return res.json() as { secret: string };
}

export function apiSuite(driver: Driver): void {
  describe(`control plane API (${driver.name})`, () => {
    async function start(t: TestContext, extra = {}): Promise<Harness | null> {
      if (!(await driver.available(t))) return null;
      return startControlPlane(t, driver, extra);
    }

    it('first start creates an admin key, writes it to <dataDir>/admin.key (0600), and only once', async (t) => {
      const h = await start(t);
      if (!h) return;
      assert.match(h.adminKey, /^bwk_/);
      const file = join(h.dataDir, 'admin.key');
      assert.equal((await readFile(file, 'utf8')).trim(), h.adminKey);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const again = await createControlPlane({ storage: h.storage, dataDir: h.dataDir, clock: h.clock });
      assert.equal(again.initialAdminKey, null, 'a second start does not create another key');
      const audit = (await h.call('GET', '/api/v1/audit?action=apikey.create')).json() as {
        items: unknown[];
      };
      assert.equal(audit.items.length, 1);
    });

    it('401 without a key, with an unknown key, with a malformed header; public routes need none', async (t) => {
      const h = await start(t);
      if (!h) return;
      for (const headers of [
        {},
        { authorization: 'Bearer bwk_nope' },
        { authorization: 'Basic abc' },
      ] as Array<Record<string, string>>) {
        const res = await h.call('GET', '/api/v1/devices', { key: null, headers });
        assert.equal(res.statusCode, 401);
        assert.equal(errorOf(res).code, 'BW_ERR_API_UNAUTHENTICATED');
        assert.match(String(res.headers['www-authenticate']), /^Bearer/);
      }
      const jwks = await h.call('GET', '/.well-known/jwks.json', { key: null });
      assert.equal(jwks.statusCode, 200);
      const keys = (jwks.json() as { keys: Array<Record<string, string>> }).keys;
      assert.equal(keys.length, 1);
      assert.equal(keys[0]?.kty, 'OKP');
      assert.equal(keys[0]?.crv, 'Ed25519');
      assert.equal(keys[0]?.d, undefined, 'no private part in the JWKS');
      const unknown = await h.call('GET', '/api/v1/nothing-here', { key: null });
      assert.equal(unknown.statusCode, 404);
      assert.equal(errorOf(unknown).code, 'BW_ERR_API_NOT_FOUND');
    });

    it('OpenAPI document lists every route with its schemas', async (t) => {
      const h = await start(t);
      if (!h) return;
      const res = await h.call('GET', '/api/openapi.json', { key: null });
      assert.equal(res.statusCode, 200);
      const doc = res.json() as {
        openapi: string;
        paths: Record<string, Record<string, { requestBody?: unknown }>>;
      };
      assert.match(doc.openapi, /^3\./);
      for (const path of [
        '/api/v1/devices',
        '/api/v1/devices/{id}',
        '/api/v1/devices/import',
        '/api/v1/keys',
        '/api/v1/keys/{id}',
        '/api/v1/audit',
        '/api/v1/tokens',
        '/api/v1/tokens/keys/rotate',
        '/api/v1/device-token',
        '/.well-known/jwks.json',
      ]) {
        assert.ok(doc.paths[path], `${path} in the OpenAPI document`);
      }
      assert.ok(doc.paths['/api/v1/devices']?.post?.requestBody, 'request bodies are documented');
      assert.equal(doc.paths['/api/openapi.json'], undefined, 'the document itself is hidden');
    });

    it('roles: viewer reads but cannot write (403); operator manages devices but not keys', async (t) => {
      const h = await start(t);
      if (!h) return;
      const viewer = await keyFor(h, 'viewer');
      const operator = await keyFor(h, 'operator');
      assert.equal((await h.call('GET', '/api/v1/devices', { key: viewer })).statusCode, 200);
      const denied = await h.call('POST', '/api/v1/devices', { key: viewer, body: { id: 'd1' } });
      assert.equal(denied.statusCode, 403);
      assert.equal(errorOf(denied).code, 'BW_ERR_API_FORBIDDEN');
      assert.equal(
        (await h.call('POST', '/api/v1/devices', { key: operator, body: { id: 'd1' } })).statusCode,
        201,
      );
      for (const [method, url] of [
        ['POST', '/api/v1/tokens'],
        ['PATCH', '/api/v1/devices/d1'],
        ['DELETE', '/api/v1/devices/d1'],
        ['POST', '/api/v1/devices/import'],
      ] as const) {
        assert.equal(
          (await h.call(method, url, { key: viewer, body: {} })).statusCode,
          403,
          `${method} ${url}`,
        );
      }
      assert.equal((await h.call('GET', '/api/v1/keys', { key: operator })).statusCode, 403);
      assert.equal(
        (await h.call('POST', '/api/v1/keys', { key: operator, body: { name: 'x', role: 'admin' } }))
          .statusCode,
        403,
      );
      assert.equal((await h.call('POST', '/api/v1/tokens/keys/rotate', { key: operator })).statusCode, 403);
    });

    it('API keys: list never shows the key, revoke takes effect at once, the last admin key stays', async (t) => {
      const h = await start(t);
      if (!h) return;
      const created = await h.call('POST', '/api/v1/keys', {
        body: { name: 'ci', role: 'operator', reason: 'CI' },
      });
      const { apiKey, key } = created.json() as { apiKey: { id: string }; key: string };
      const list = await h.call('GET', '/api/v1/keys');
      assert.equal(list.statusCode, 200);
      assert.ok(!list.body.includes(key), 'the key is not listed');
      assert.ok(!list.body.includes('keyHash') && !list.body.includes('key_hash'), 'nor its hash');
      assert.equal((list.json() as { items: unknown[] }).items.length, 2);
      assert.equal((await h.call('GET', '/api/v1/devices', { key })).statusCode, 200);
      const revoked = await h.call('DELETE', `/api/v1/keys/${apiKey.id}`);
      assert.equal(revoked.statusCode, 200);
      assert.ok((revoked.json() as { revokedAt: string | null }).revokedAt);
      assert.equal((await h.call('GET', '/api/v1/devices', { key })).statusCode, 401);
      assert.equal((await h.call('DELETE', `/api/v1/keys/${apiKey.id}`)).statusCode, 404, 'already revoked');
      const admins = (await h.call('GET', '/api/v1/keys')).json() as {
        items: Array<{ id: string; role: string }>;
      };
      const bootstrap = admins.items.find((k) => k.role === 'admin')!;
      const last = await h.call('DELETE', `/api/v1/keys/${bootstrap.id}`);
      assert.equal(last.statusCode, 409);
      assert.equal(errorOf(last).code, 'BW_ERR_API_CONFLICT');
      const bad = await h.call('POST', '/api/v1/keys', { body: { name: 'x', role: 'root' } });
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).field, 'role');
    });

    it('devices: create (secret once), get, patch, delete; 404 and 409', async (t) => {
      const h = await start(t);
      if (!h) return;
      const res = await h.call('POST', '/api/v1/devices', {
        body: { id: 'sensor-1', tags: ['eu', 'beta'], cohort: 'canary', firmwareVersion: '1.2.3' },
      });
      assert.equal(res.statusCode, 201);
      const { device, secret } = res.json() as { device: Record<string, unknown>; secret: string };
      assert.match(secret, /^bws_/);
      assert.deepEqual(device.tags, ['beta', 'eu']);
      assert.equal(device.connectionState, 'unknown');
      assert.equal(device.createdAt, new Date(h.clock.now()).toISOString());
      const got = await h.call('GET', '/api/v1/devices/sensor-1');
      assert.equal(got.statusCode, 200);
      assert.ok(!got.body.includes('bws_') && !got.body.includes('scrypt'), 'secret never returned again');
      const dup = await h.call('POST', '/api/v1/devices', { body: { id: 'sensor-1' } });
      assert.equal(dup.statusCode, 409);
      assert.equal(errorOf(dup).code, 'BW_ERR_API_CONFLICT');
      h.clock.advance(5000);
      const patched = await h.call('PATCH', '/api/v1/devices/sensor-1', {
        body: { tags: ['us'], firmwareVersion: null, reason: 'moved' },
      });
      assert.equal(patched.statusCode, 200);
      const p = patched.json() as Record<string, unknown>;
      assert.deepEqual(p.tags, ['us']);
      assert.equal(p.firmwareVersion, null);
      assert.equal(p.cohort, 'canary', 'untouched fields stay');
      assert.equal(p.updatedAt, new Date(h.clock.now()).toISOString());
      assert.equal(
        (await h.call('PATCH', '/api/v1/devices/nope', { body: { cohort: 'x' } })).statusCode,
        404,
      );
      assert.equal((await h.call('DELETE', '/api/v1/devices/sensor-1')).statusCode, 204);
      const gone = await h.call('GET', '/api/v1/devices/sensor-1');
      assert.equal(gone.statusCode, 404);
      assert.equal(errorOf(gone).code, 'BW_ERR_API_NOT_FOUND');
      assert.equal((await h.call('DELETE', '/api/v1/devices/sensor-1')).statusCode, 404);
    });

    it('every 400 names the field: body, nested, unknown keys, query, params', async (t) => {
      const h = await start(t);
      if (!h) return;
      const cases: Array<[string, 'GET' | 'POST' | 'PATCH', string, unknown, string]> = [
        ['missing id', 'POST', '/api/v1/devices', {}, 'id'],
        ['id with a slash (a topic level)', 'POST', '/api/v1/devices', { id: 'a/b' }, 'id'],
        ['id with a wildcard', 'POST', '/api/v1/devices', { id: 'a+' }, 'id'],
        ['typo in a key', 'POST', '/api/v1/devices', { id: 'a', firmwre: '1' }, 'firmwre'],
        ['bad tag', 'POST', '/api/v1/devices', { id: 'a', tags: ['ok', 'not ok'] }, 'tags[1]'],
        ['tags not an array', 'POST', '/api/v1/devices', { id: 'a', tags: 'eu' }, 'tags'],
        ['cohort wrong type', 'POST', '/api/v1/devices', { id: 'a', cohort: 5 }, 'cohort'],
        ['empty patch', 'PATCH', '/api/v1/devices/a', {}, 'body'],
        ['limit 0', 'GET', '/api/v1/devices?limit=0', undefined, 'limit'],
        ['limit not a number', 'GET', '/api/v1/devices?limit=ten', undefined, 'limit'],
        ['unknown filter', 'GET', '/api/v1/devices?colour=red', undefined, 'colour'],
        [
          'bad connection state',
          'GET',
          '/api/v1/devices?connectionState=asleep',
          undefined,
          'connectionState',
        ],
        ['bad cursor', 'GET', '/api/v1/devices?cursor=%21%21', undefined, 'cursor'],
        ['bad device id in path', 'GET', '/api/v1/devices/a%2Fb', undefined, 'id'],
        ['ttl missing', 'POST', '/api/v1/tokens', { deviceId: 'a' }, 'ttl'],
        ['ttl above the maximum', 'POST', '/api/v1/tokens', { deviceId: 'a', ttl: 999_999_999 }, 'ttl'],
        ['audit since not a date', 'GET', '/api/v1/audit?since=yesterday', undefined, 'since'],
        [
          'selector with unknown key',
          'POST',
          '/api/v1/selectors/resolve',
          { selector: { colour: 'x' } },
          'selector.colour',
        ],
        ['reason too long', 'POST', '/api/v1/devices', { id: 'a', reason: 'x'.repeat(501) }, 'reason'],
        ['device events: unknown kind', 'GET', '/api/v1/devices/a/events?kind=rebooted', undefined, 'kind'],
        ['device events: limit 0', 'GET', '/api/v1/devices/a/events?limit=0', undefined, 'limit'],
      ];
      for (const [name, method, url, body, field] of cases) {
        const res = await h.call(method, url, { body });
        assert.equal(res.statusCode, 400, `${name}: ${res.body}`);
        const err = errorOf(res);
        assert.equal(err.code, 'BW_ERR_API_VALIDATION', name);
        assert.equal(err.field, field, `${name}: ${err.message}`);
        assert.ok(err.message.includes(field), `${name}: message names the field: ${err.message}`);
      }
      const notJson = await h.call('POST', '/api/v1/devices', {
        body: '{"id":',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(notJson.statusCode, 400);
      assert.equal(errorOf(notJson).code, 'BW_ERR_API_VALIDATION');
      const wrongType = await h.call('POST', '/api/v1/devices', {
        body: '<id>a</id>',
        headers: { 'content-type': 'application/xml' },
      });
      assert.equal(wrongType.statusCode, 415);
      assert.equal(errorOf(wrongType).code, 'BW_ERR_API_UNSUPPORTED_MEDIA_TYPE');
      assert.equal(((await h.call('GET', '/api/v1/devices')).json() as { items: unknown[] }).items.length, 0);
    });

    it('list: filters (tag, cohort, firmware, connection state) AND-combined, cursor pagination', async (t) => {
      const h = await start(t);
      if (!h) return;
      for (let i = 0; i < 7; i++) {
        await createDevice(h, {
          id: `dev-${i}`,
          tags: i % 2 ? ['odd', 'eu'] : ['even', 'eu'],
          cohort: i < 3 ? 'canary' : 'main',
          firmwareVersion: i < 5 ? '1.0.0' : '2.0.0',
        });
      }
      h.cp.presence.connected('dev-1', h.clock.now());
      h.cp.presence.connected('dev-4', h.clock.now());
      await h.cp.presence.flush();
      const ids = async (q: string) =>
        ((await h.call('GET', `/api/v1/devices?${q}`)).json() as { items: Array<{ id: string }> }).items.map(
          (d) => d.id,
        );
      assert.deepEqual(await ids('tag=odd'), ['dev-1', 'dev-3', 'dev-5']);
      assert.deepEqual(await ids('tag=odd&tag=eu'), ['dev-1', 'dev-3', 'dev-5']);
      assert.deepEqual(await ids('tag=odd&cohort=canary'), ['dev-1']);
      assert.deepEqual(await ids('firmware=2.0.0'), ['dev-5', 'dev-6']);
      assert.deepEqual(await ids('connectionState=online'), ['dev-1', 'dev-4']);
      assert.deepEqual(await ids('connectionState=unknown&firmware=1.0.0&tag=even'), ['dev-0', 'dev-2']);
      const seen: string[] = [];
      let url = '/api/v1/devices?limit=3&tag=eu';
      for (let n = 0; n < 5; n++) {
        const page = (await h.call('GET', url)).json() as {
          items: Array<{ id: string }>;
          nextCursor: string | null;
        };
        seen.push(...page.items.map((d) => d.id));
        if (!page.nextCursor) break;
        url = `/api/v1/devices?limit=3&tag=eu&cursor=${encodeURIComponent(page.nextCursor)}`;
      }
      assert.deepEqual(seen, ['dev-0', 'dev-1', 'dev-2', 'dev-3', 'dev-4', 'dev-5', 'dev-6']);
      const resolved = await h.call('POST', '/api/v1/selectors/resolve', {
        body: { selector: { cohort: 'main', connectionState: 'online' } },
      });
      assert.deepEqual(resolved.json(), { count: 1, ids: ['dev-4'] });
    });

    it('import (JSON): all or nothing; a bad row or a registered id names the row, nothing is written', async (t) => {
      const h = await start(t);
      if (!h) return;
      await createDevice(h, { id: 'existing' });
      const bad = await h.call('POST', '/api/v1/devices/import', {
        body: [{ id: 'n1' }, { id: 'n2' }, { id: 'n3', firmwareVersion: 'v 1' }],
      });
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).field, 'rows[2].firmwareVersion');
      const conflict = await h.call('POST', '/api/v1/devices/import', {
        body: [{ id: 'n1' }, { id: 'existing' }],
      });
      assert.equal(conflict.statusCode, 409);
      assert.equal(errorOf(conflict).field, 'rows[1].id');
      const repeated = await h.call('POST', '/api/v1/devices/import', { body: [{ id: 'n1' }, { id: 'n1' }] });
      assert.equal(repeated.statusCode, 400);
      assert.equal(errorOf(repeated).field, 'rows[1].id');
      const all = async () =>
        ((await h.call('GET', '/api/v1/devices')).json() as { items: Array<{ id: string }> }).items.map(
          (d) => d.id,
        );
      assert.deepEqual(await all(), ['existing'], 'nothing half-imported');
      const ok = await h.call('POST', '/api/v1/devices/import', {
        body: [
          { id: 'n1', tags: ['a'] },
          { id: 'n2', cohort: 'c' },
        ],
        headers: { 'x-breakwater-reason': 'batch 7 from the factory' },
      });
      assert.equal(ok.statusCode, 201, ok.body);
      const result = ok.json() as { imported: number; devices: Array<{ id: string; secret: string }> };
      assert.equal(result.imported, 2);
      assert.deepEqual(
        result.devices.map((d) => d.id),
        ['n1', 'n2'],
      );
      assert.ok(result.devices.every((d) => d.secret.startsWith('bws_')));
      assert.deepEqual(await all(), ['existing', 'n1', 'n2']);
      const audit = (await h.call('GET', '/api/v1/audit?action=device.import')).json() as {
        items: Array<{ reason: string; details: { count: number } }>;
      };
      assert.equal(audit.items.length, 1, 'failed imports leave no audit entry');
      assert.equal(audit.items[0]?.reason, 'batch 7 from the factory');
      assert.equal(audit.items[0]?.details.count, 2);
    });

    it('import (CSV): header row, tags separated by ";", bad rows named by index and line', async (t) => {
      const h = await start(t);
      if (!h) return;
      const csv = (text: string) =>
        h.call('POST', '/api/v1/devices/import', { body: text, headers: { 'content-type': 'text/csv' } });
      const bad = await csv('id,tags,cohort\nc1,eu;beta,canary\nc2,,main\nc/3,,main\n');
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).field, 'rows[2].id');
      assert.match(errorOf(bad).message, /line 4/);
      const unknownColumn = await csv('id,colour\nc1,red\n');
      assert.equal(unknownColumn.statusCode, 400);
      assert.equal(errorOf(unknownColumn).field, 'colour');
      assert.equal(((await h.call('GET', '/api/v1/devices')).json() as { items: unknown[] }).items.length, 0);
      const ok = await csv('id,tags,cohort,firmwareVersion\r\nc1,eu;beta,canary,1.0\r\n"c2",,main,\r\n');
      assert.equal(ok.statusCode, 201, ok.body);
      const c1 = (await h.call('GET', '/api/v1/devices/c1')).json() as Record<string, unknown>;
      assert.deepEqual(c1.tags, ['beta', 'eu']);
      assert.equal(c1.firmwareVersion, '1.0');
      const c2 = (await h.call('GET', '/api/v1/devices/c2')).json() as Record<string, unknown>;
      assert.equal(c2.firmwareVersion, null);
      assert.deepEqual(c2.tags, []);
    });

    it('audit: who, what, when, why for every change; filters and pagination; viewers can read', async (t) => {
      const h = await start(t);
      if (!h) return;
      const operator = await keyFor(h, 'operator', 'night shift');
      await h.call('POST', '/api/v1/devices', { key: operator, body: { id: 'a1', reason: 'new unit' } });
      h.clock.advance(1000);
      await h.call('PATCH', '/api/v1/devices/a1', { key: operator, body: { cohort: 'canary' } });
      await h.call('DELETE', '/api/v1/devices/a1', {
        key: operator,
        headers: { 'x-breakwater-reason': 'RMA' },
      });
      const viewer = await keyFor(h, 'viewer');
      const res = await h.call('GET', '/api/v1/audit?targetType=device', { key: viewer });
      assert.equal(res.statusCode, 200);
      const items = (
        res.json() as {
          items: Array<{
            action: string;
            actor: { name: string };
            reason: string | null;
            at: string;
            details: { after?: unknown } | null;
          }>;
        }
      ).items;
      assert.deepEqual(
        items.map((e) => e.action),
        ['device.delete', 'device.update', 'device.create'],
      );
      assert.equal(items[0]?.actor.name, 'night shift');
      assert.equal(items[0]?.reason, 'RMA');
      assert.equal(items[2]?.reason, 'new unit');
      assert.equal(items[1]?.reason, null);
      assert.deepEqual(items[1]?.details?.after, { cohort: 'canary' });
      assert.equal(items[0]?.at, new Date(h.clock.now()).toISOString());
      const since = new Date(h.clock.now()).toISOString();
      const recent = (await h.call('GET', `/api/v1/audit?targetType=device&since=${since}`)).json() as {
        items: unknown[];
      };
      assert.equal(recent.items.length, 2);
      const page1 = (await h.call('GET', '/api/v1/audit?limit=2')).json() as {
        items: unknown[];
        nextCursor: string;
      };
      assert.equal(page1.items.length, 2);
      const page2 = (await h.call('GET', `/api/v1/audit?limit=2&cursor=${page1.nextCursor}`)).json() as {
        items: Array<{ seq: number }>;
      };
      assert.ok(page2.items.length >= 1);
      assert.ok(page2.items.every((e) => e.seq < (page1.items[1] as { seq: number }).seq));
    });

    it('tokens: operators mint (sub, jti, iat, exp, iss, aud, kid); unknown device 404; audited', async (t) => {
      const h = await start(t);
      if (!h) return;
      await createDevice(h, { id: 'tk-1' });
      const operator = await keyFor(h, 'operator');
      const res = await h.call('POST', '/api/v1/tokens', {
        key: operator,
        body: { deviceId: 'tk-1', ttl: 600 },
      });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json() as { token: string; tokenId: string; kid: string; expiresAt: string };
      const claims = decodeJwt(body.token);
      const now = Math.floor(h.clock.now() / 1000);
      assert.equal(claims.sub, 'tk-1');
      assert.equal(claims.jti, body.tokenId);
      assert.equal(claims.iat, now);
      assert.equal(claims.exp, now + 600);
      assert.equal(claims.iss, 'breakwater');
      assert.equal(claims.aud, 'breakwater-mqtt');
      assert.equal(decodeProtectedHeader(body.token).alg, 'EdDSA');
      assert.equal(decodeProtectedHeader(body.token).kid, body.kid);
      assert.equal(body.expiresAt, new Date((now + 600) * 1000).toISOString());
      const missing = await h.call('POST', '/api/v1/tokens', { body: { deviceId: 'nope', ttl: 60 } });
      assert.equal(missing.statusCode, 404);
      const audit = (await h.call('GET', '/api/v1/audit?action=token.mint')).json() as {
        items: Array<{ details: { jti: string } }>;
      };
      assert.equal(audit.items[0]?.details.jti, body.tokenId);
    });

    it('device-token exchange: right secret → token; wrong secret or unknown id → 401; rate limited', async (t) => {
      const h = await start(t, { deviceTokenRateLimit: { max: 3, windowMs: 60_000 } });
      if (!h) return;
      const { secret } = await createDevice(h, { id: 'ex-1' });
      const ok = await h.call('POST', '/api/v1/device-token', {
        key: null,
        body: { deviceId: 'ex-1', secret },
      });
      assert.equal(ok.statusCode, 200, ok.body);
      const claims = decodeJwt((ok.json() as { token: string }).token);
      assert.equal(claims.sub, 'ex-1');
      assert.equal(claims.exp! - claims.iat!, 3600);
      for (const body of [
        { deviceId: 'ex-1', secret: `${secret}x` },
        { deviceId: 'ghost', secret },
      ]) {
        const res = await h.call('POST', '/api/v1/device-token', { key: null, body });
        assert.equal(res.statusCode, 401);
        assert.equal(errorOf(res).code, 'BW_ERR_DEVICE_CREDENTIALS');
      }
      const extra = await h.call('POST', '/api/v1/device-token', {
        key: null,
        body: { deviceId: 'ex-1', secret },
      });
      assert.equal(extra.statusCode, 200, 'third attempt in the window still allowed');
      const limited = await h.call('POST', '/api/v1/device-token', {
        key: null,
        body: { deviceId: 'ex-1', secret },
      });
      assert.equal(limited.statusCode, 429);
      assert.equal(errorOf(limited).code, 'BW_ERR_API_RATE_LIMITED');
      assert.equal(limited.headers['retry-after'], '60');
      h.clock.advance(60_000);
      const after = await h.call('POST', '/api/v1/device-token', {
        key: null,
        body: { deviceId: 'ex-1', secret },
      });
      assert.equal(after.statusCode, 200, 'a new window');
      const missingSecret = await h.call('POST', '/api/v1/device-token', {
        key: null,
        body: { deviceId: 'ex-1' },
      });
      assert.equal(missingSecret.statusCode, 400);
      assert.equal(errorOf(missingSecret).field, 'secret');
    });

    it('presence: broker connect/disconnect events update connection state, last seen, last reason', async (t) => {
      const h = await start(t);
      if (!h) return;
      await createDevice(h, { id: 'p-1' });
      const t0 = h.clock.now();
      h.cp.presence.connected('p-1', t0);
      h.cp.presence.connected('not-a-device', t0);
      h.cp.presence.disconnected('p-1', t0 + 10, 'KeepAliveTimeout');
      await h.cp.presence.flush();
      const d = (await h.call('GET', '/api/v1/devices/p-1')).json() as Record<string, unknown>;
      assert.equal(d.connectionState, 'offline');
      assert.equal(d.lastSeen, new Date(t0 + 10).toISOString());
      assert.equal(d.lastDisconnectReason, 'KeepAliveTimeout');
      h.cp.presence.connected('p-1', t0 + 20);
      await h.cp.presence.flush();
      const d2 = (await h.call('GET', '/api/v1/devices/p-1')).json() as Record<string, unknown>;
      assert.equal(d2.connectionState, 'online');
    });

    it('device events: connects, disconnects and queue-drop reports (one event per reason) in the history API', async (t) => {
      const h = await start(t);
      if (!h) return;
      await createDevice(h, { id: 'ev-1' });
      const viewer = await keyFor(h, 'viewer');
      const t0 = h.clock.now();
      h.cp.presence.connected('ev-1', t0);
      h.cp.presence.messagesDropped('ev-1', t0 + 5, { queue_full: 1 });
      h.cp.presence.messagesDropped('not-a-device', t0 + 5, { queue_full: 9 });
      h.cp.presence.messagesDropped('ev-1', t0 + 10_005, {
        queue_full: 250,
        queue_evicted: 3,
        queue_bytes_full: 0,
      });
      h.cp.presence.disconnected('ev-1', t0 + 10_010, 'KeepAliveTimeout');
      await h.cp.presence.flush();
      const res = await h.call('GET', '/api/v1/devices/ev-1/events', { key: viewer });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as {
        items: Array<{
          seq: number;
          at: string;
          kind: string;
          clientId: string;
          reason: string | null;
          count: number | null;
        }>;
        nextCursor: string | null;
      };
      assert.deepEqual(
        body.items.map(({ seq: _seq, ...e }) => e),
        [
          {
            at: new Date(t0 + 10_010).toISOString(),
            kind: 'disconnected',
            clientId: 'ev-1',
            reason: 'KeepAliveTimeout',
            count: null,
          },
          {
            at: new Date(t0 + 10_005).toISOString(),
            kind: 'messages_dropped',
            clientId: 'ev-1',
            reason: 'queue_evicted',
            count: 3,
          },
          {
            at: new Date(t0 + 10_005).toISOString(),
            kind: 'messages_dropped',
            clientId: 'ev-1',
            reason: 'queue_full',
            count: 250,
          },
          {
            at: new Date(t0 + 5).toISOString(),
            kind: 'messages_dropped',
            clientId: 'ev-1',
            reason: 'queue_full',
            count: 1,
          },
          { at: new Date(t0).toISOString(), kind: 'connected', clientId: 'ev-1', reason: null, count: null },
        ],
      );
      assert.equal(body.nextCursor, null);
      const drops = (
        await h.call('GET', '/api/v1/devices/ev-1/events?kind=messages_dropped&limit=2')
      ).json() as typeof body;
      assert.deepEqual(
        drops.items.map((e) => e.count),
        [3, 250],
      );
      const rest = (
        await h.call(
          'GET',
          `/api/v1/devices/ev-1/events?kind=messages_dropped&limit=2&cursor=${drops.nextCursor}`,
        )
      ).json() as typeof body;
      assert.deepEqual(
        rest.items.map((e) => e.count),
        [1],
      );
      assert.equal(rest.nextCursor, null);
      const missing = await h.call('GET', '/api/v1/devices/nope/events');
      assert.equal(missing.statusCode, 404);
      assert.equal(errorOf(missing).code, 'BW_ERR_API_NOT_FOUND');
      const badKind = await h.call('GET', '/api/v1/devices/ev-1/events?kind=rebooted');
      assert.equal(badKind.statusCode, 400);
      const badCursor = await h.call('GET', '/api/v1/devices/ev-1/events?cursor=%21%21');
      assert.equal(badCursor.statusCode, 400);
      assert.equal(errorOf(badCursor).field, 'cursor');
      assert.equal((await h.call('GET', '/api/v1/devices/ev-1/events', { key: null })).statusCode, 401);
      const spec = (await h.call('GET', '/api/openapi.json')).json() as {
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      };
      assert.ok(spec.paths['/api/v1/devices/{id}/events']?.get?.responses['200'], 'documented in OpenAPI');
    });

    it('device events: bounded per device (newest kept), pruned in batches and at first sight after a restart', async (t) => {
      const h = await start(t, { deviceEventsPerDevice: 5 });
      if (!h) return;
      await createDevice(h, { id: 'bd-1' });
      await createDevice(h, { id: 'bd-2' });
      const t0 = h.clock.now();
      const count = async (id: string): Promise<number> =>
        ((await h.call('GET', `/api/v1/devices/${id}/events?limit=1000`)).json() as { items: unknown[] })
          .items.length;
      for (let i = 0; i < 100; i++) h.cp.presence.connected('bd-1', t0 + i);
      h.cp.presence.connected('bd-2', t0);
      await h.cp.presence.flush();
      assert.equal(await count('bd-1'), 5, 'the first batch of a device is pruned to the limit');
      const newest = (
        (await h.call('GET', '/api/v1/devices/bd-1/events')).json() as { items: Array<{ at: string }> }
      ).items[0];
      assert.equal(newest?.at, new Date(t0 + 99).toISOString(), 'the newest are kept');
      // Then pruned every PRUNE_EVERY events, not on every write.
      for (let i = 0; i < PRUNE_EVERY - 1; i++) {
        h.cp.presence.disconnected('bd-1', t0 + 200 + i, 'x');
        await h.cp.presence.flush();
      }
      assert.equal(await count('bd-1'), 5 + PRUNE_EVERY - 1, 'the bound: limit + PRUNE_EVERY - 1');
      h.cp.presence.disconnected('bd-1', t0 + 300, 'x');
      await h.cp.presence.flush();
      assert.equal(await count('bd-1'), 5);
      // A new process (another DevicePresence) prunes a device the first time it writes for it.
      const restarted = new DevicePresence(h.storage, { keepPerDevice: 2 });
      restarted.connected('bd-1', t0 + 400);
      await restarted.flush();
      assert.equal(await count('bd-1'), 2);
      assert.equal(await count('bd-2'), 1, 'other devices untouched');
    });

    it('signing keys: rotate (admin), list shows the retired key with its JWKS horizon', async (t) => {
      const h = await start(t);
      if (!h) return;
      await createDevice(h, { id: 'r-1' });
      const first = (
        await h.call('POST', '/api/v1/tokens', { body: { deviceId: 'r-1', ttl: 3600 } })
      ).json() as {
        kid: string;
      };
      const rotated = await h.call('POST', '/api/v1/tokens/keys/rotate', { body: { reason: 'quarterly' } });
      assert.equal(rotated.statusCode, 200);
      const { kid, retired } = rotated.json() as { kid: string; retired: string[] };
      assert.deepEqual(retired, [first.kid]);
      assert.notEqual(kid, first.kid);
      const keys = (await h.call('GET', '/api/v1/tokens/keys')).json() as {
        items: Array<{ kid: string; retiredAt: string | null; inJwksUntil: string | null }>;
      };
      const old = keys.items.find((k) => k.kid === first.kid)!;
      assert.ok(old.retiredAt);
      assert.equal(old.inJwksUntil, new Date(h.clock.now() + 3600_000).toISOString());
      assert.equal(keys.items.find((k) => k.kid === kid)?.inJwksUntil, null);
      const jwks = async () =>
        (
          (await h.call('GET', '/.well-known/jwks.json', { key: null })).json() as {
            keys: Array<{ kid: string }>;
          }
        ).keys
          .map((k) => k.kid)
          .sort();
      assert.deepEqual(await jwks(), [first.kid, kid].sort());
      h.clock.advance(3600_000 + 1);
      assert.deepEqual(await jwks(), [kid], 'dropped once its last token expired');
      const audit = (await h.call('GET', '/api/v1/audit?action=signingkey.rotate')).json() as {
        items: Array<{ reason: string }>;
      };
      assert.equal(audit.items[0]?.reason, 'quarterly');
    });
  });
}
