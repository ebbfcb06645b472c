/**
 * Over a real HTTP socket (port 0): a minted token verifies against the JWKS fetched with
 * jose.createRemoteJWKSet, exactly as the broker's jwt authenticator does; rotation keeps old
 * tokens verifiable until they expire; API errors arrive as JSON on the wire.
 */
import assert from 'node:assert/strict';
import { it, type TestContext } from 'node:test';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import { type Harness, sqliteDriver, startControlPlane } from './harness.js';

async function listening(t: TestContext): Promise<{ h: Harness; base: string }> {
  const h = await startControlPlane(t, sqliteDriver);
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = h.app.server.address() as { port: number };
  return { h, base: `http://127.0.0.1:${port}` };
}

// Test-only: these tests read a few fields of several response shapes.
// biome-ignore lint/suspicious/noExplicitAny: loosely typed JSON access in assertions
type Json = Record<string, any>;

async function post(
  base: string,
  path: string,
  key: string | null,
  body: unknown,
  type = 'application/json',
) {
  const headers: Record<string, string> = { 'content-type': type };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

it('a minted token verifies against the JWKS served over HTTP; rotation keeps old tokens valid', async (t) => {
  const { h, base } = await listening(t);
  const { body: created } = await post(base, '/api/v1/devices', h.adminKey, { id: 'sock-1' });
  const minted = await post(base, '/api/v1/tokens', h.adminKey, { deviceId: 'sock-1', ttl: 900 });
  assert.equal(minted.status, 201);
  const verifyOpts = {
    issuer: 'breakwater',
    audience: 'breakwater-mqtt',
    algorithms: ['EdDSA'],
    currentDate: new Date(h.clock.now()),
  };
  const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
  const { payload } = await jwtVerify(minted.body.token, jwks, verifyOpts);
  assert.equal(payload.sub, 'sock-1');

  // The device exchanges its secret for a token over the wire as well.
  const exchanged = await post(base, '/api/v1/device-token', null, {
    deviceId: 'sock-1',
    secret: created.secret,
  });
  assert.equal(exchanged.status, 200);
  assert.equal((await jwtVerify(exchanged.body.token, jwks, verifyOpts)).payload.sub, 'sock-1');

  const rotated = await post(base, '/api/v1/tokens/keys/rotate', h.adminKey, {});
  assert.equal(rotated.status, 200);
  const after = await post(base, '/api/v1/tokens', h.adminKey, { deviceId: 'sock-1', ttl: 60 });
  assert.equal(after.body.kid, rotated.body.kid);
  // A verifier that fetches the JWKS after the rotation knows both keys.
  const fresh = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
  assert.equal((await jwtVerify(minted.body.token, fresh, verifyOpts)).protectedHeader.kid, minted.body.kid);
  assert.equal((await jwtVerify(after.body.token, fresh, verifyOpts)).protectedHeader.kid, rotated.body.kid);

  // Once the old key's last token has expired, the old key leaves the JWKS.
  h.clock.advance(3600_000 + 1000);
  const later = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
  await assert.rejects(
    jwtVerify(minted.body.token, later, { ...verifyOpts, currentDate: new Date(minted.body.iat) }),
    (err) => err instanceof joseErrors.JWKSNoMatchingKey,
  );
});

it('errors over the wire: 401 JSON, 400 naming the field, CSV import', async (t) => {
  const { h, base } = await listening(t);
  const unauth = await fetch(`${base}/api/v1/devices`);
  assert.equal(unauth.status, 401);
  assert.match(unauth.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(((await unauth.json()) as Json).error.code, 'BW_ERR_API_UNAUTHENTICATED');
  const bad = await post(base, '/api/v1/devices', h.adminKey, { id: 'ok', tags: ['fine', '#bad'] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, 'tags[1]');
  const csv = await post(base, '/api/v1/devices/import', h.adminKey, 'id,cohort\nw1,a\nw2,b\n', 'text/csv');
  assert.equal(csv.status, 201);
  assert.equal(csv.body.imported, 2);
  const list = await fetch(`${base}/api/v1/devices?cohort=b`, {
    headers: { authorization: `Bearer ${h.adminKey}` },
  });
  assert.deepEqual(
    ((await list.json()) as Json).items.map((d: { id: string }) => d.id),
    ['w2'],
  );
});
