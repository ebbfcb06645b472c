import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import type { JwtAuthenticator } from '../../src/guard/authenticators/jwt.js';
import { Guard } from '../../src/guard/guard.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { connect, startHttp, tempDir } from './helpers.js';

interface Key {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function makeKey(kid: string, alg: 'ES256' | 'EdDSA' | 'RS256'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('jwt authenticator (JWKS over a real HTTP server)', () => {
  const clock = new FakeClock();
  const nowSec = () => Math.floor(clock.now() / 1000);
  const tmp = tempDir('jwt');
  const jwks = { keys: [] as JWK[], status: 200, fetches: 0 };
  let server: Awaited<ReturnType<typeof startHttp>>;
  let guard: Guard;
  let k1: Key;
  let k2: Key;
  let rogue: Key;

  const sign = (key: Key, claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
    new SignJWT({ iss: 'https://issuer.test', aud: 'breakwater', ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
      .setIssuedAt(nowSec())
      .setExpirationTime(nowSec() + 600)
      .sign(key.privateKey);

  before(async () => {
    k1 = await makeKey('k1', 'ES256');
    k2 = await makeKey('k2', 'EdDSA');
    rogue = await makeKey('k1', 'ES256'); // same kid as k1, different key pair
    jwks.keys = [k1.jwk];
    server = await startHttp((_req, res) => {
      jwks.fetches++;
      res.writeHead(jwks.status, { 'content-type': 'application/json' });
      res.end(jwks.status === 200 ? JSON.stringify({ keys: jwks.keys }) : '{"error":"down"}');
    });
    guard = new Guard(
      {
        authenticators: {
          jwt: {
            fleet: {
              jwksUrl: `${server.url}/.well-known/jwks.json`,
              issuer: 'https://issuer.test',
              audience: 'breakwater',
              algorithms: ['ES256', 'EdDSA'],
              refreshIntervalSec: 900,
            },
          },
        },
        listeners: { mqtt: { authn: ['fleet'] } },
      },
      { clock, dataDir: tmp.dir },
    );
    await guard.start();
  });

  after(async () => {
    await guard.close();
    await server.close();
    tmp.cleanup();
  });

  it('admits a valid token whose sub is the client id and returns its exp and jti', async () => {
    const token = await sign(k1, { sub: 'dev-1', jti: 'tok-1' });
    const d = await guard.authenticate(connect('dev-1', { password: token }));
    assert.equal(d.ok, true);
    assert.ok(d.ok);
    assert.equal(d.expiresAt, (nowSec() + 600) * 1000);
    assert.equal(d.tokenId, 'tok-1');
  });

  it('refuses with 0x86: expired, not yet valid, sub mismatch, wrong issuer/audience', async () => {
    const cases = {
      expired: await new SignJWT({ sub: 'dev-1' })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer('https://issuer.test')
        .setAudience('breakwater')
        .setExpirationTime(nowSec() - 31) // beyond the 30 s skew
        .sign(k1.privateKey),
      notYetValid: await sign(k1, { sub: 'dev-1', nbf: nowSec() + 120 }),
      otherSubject: await sign(k1, { sub: 'dev-2' }),
      wrongIssuer: await sign(k1, { sub: 'dev-1', iss: 'https://evil.test' }),
      wrongAudience: await sign(k1, { sub: 'dev-1', aud: 'someone-else' }),
    };
    for (const [name, token] of Object.entries(cases)) {
      const d = await guard.authenticate(connect('dev-1', { password: token }));
      assert.equal(d.ok, false, name);
      assert.ok(!d.ok);
      assert.equal(d.reasonCode, ReasonCode.BadUserNameOrPassword, name);
    }
  });

  it('tolerates clock skew within clockSkewSec', async () => {
    const token = await new SignJWT({ sub: 'dev-1' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer('https://issuer.test')
      .setAudience('breakwater')
      .setExpirationTime(nowSec() - 10)
      .sign(k1.privateKey);
    assert.equal((await guard.authenticate(connect('dev-1', { password: token }))).ok, true);
  });

  it('refuses forged, alg:none, wrong-key, HS256 and malformed tokens', async () => {
    const good = await sign(k1, { sub: 'dev-1' });
    const [h, p, s] = good.split('.') as [string, string, string];
    const forgedPayload = `${h}.${b64url({ sub: 'dev-1', iss: 'https://issuer.test', aud: 'breakwater', exp: nowSec() + 9999, admin: true })}.${s}`;
    const flipped = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
    const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'dev-1', iss: 'https://issuer.test', aud: 'breakwater', exp: nowSec() + 60 })}.`;
    const hs256 = `${b64url({ alg: 'HS256', kid: 'k1' })}.${p}.${Buffer.from('sig').toString('base64url')}`;
    const wrongKey = await sign(rogue, { sub: 'dev-1' });
    const cases = {
      forgedPayload,
      flipped,
      none,
      hs256,
      wrongKey,
      malformed: 'eyJhbGciOiJFUzI1NiJ9.bm90LWpzb24.c2ln',
    };
    for (const [name, token] of Object.entries(cases)) {
      const d = await guard.authenticate(connect('dev-1', { password: token }));
      assert.ok(!d.ok, name);
      assert.equal(d.reasonCode, ReasonCode.BadUserNameOrPassword, name);
    }
  });

  it('a password that is not a JWT passes down the chain (here: end of chain → 0x86)', async () => {
    const d = await guard.authenticate(connect('dev-1', { username: 'u', password: 'plain password' }));
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.BadUserNameOrPassword);
  });

  it('unknown kid refreshes the JWKS at most once per unknownKidRefreshSec; a rotated-in key then verifies', async () => {
    const stranger = await makeKey('k-unknown', 'ES256');
    const before = jwks.fetches;
    const d1 = await guard.authenticate(
      connect('dev-1', { password: await sign(stranger, { sub: 'dev-1' }) }),
    );
    assert.ok(!d1.ok);
    assert.equal(jwks.fetches, before + 1);
    const d2 = await guard.authenticate(
      connect('dev-1', { password: await sign(stranger, { sub: 'dev-1' }) }),
    );
    assert.ok(!d2.ok);
    assert.equal(jwks.fetches, before + 1, 'no second fetch inside the window');

    jwks.keys = [k1.jwk, k2.jwk]; // rotation: the issuer publishes k2
    clock.advance(61_000);
    const d3 = await guard.authenticate(connect('dev-1', { password: await sign(k2, { sub: 'dev-1' }) }));
    assert.equal(d3.ok, true);
    assert.equal(jwks.fetches, before + 2);
  });

  it('keeps its keys when a background refresh fails', async () => {
    jwks.status = 503;
    const auth = guard.authenticator('fleet') as JwtAuthenticator;
    const before = jwks.fetches;
    clock.advance(900_000); // fires the background refresh
    assert.equal(await auth.refresh(), false);
    assert.ok(jwks.fetches > before);
    const d = await guard.authenticate(connect('dev-1', { password: await sign(k1, { sub: 'dev-1' }) }));
    assert.equal(d.ok, true);
    jwks.status = 200;
  });

  it('a revoked token id is refused with 0x8A before verification', async () => {
    guard.revoke({ tokenId: 'stolen' });
    const d = await guard.authenticate(
      connect('dev-1', { password: await sign(k1, { sub: 'dev-1', jti: 'stolen' }) }),
    );
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.Banned);
  });
});

describe('jwt authenticator: key sources', () => {
  it('JWKS endpoint down at start → 0x88 (not a deny), admitted once a refresh succeeds', async (t) => {
    const clock = new FakeClock();
    const tmp = tempDir('jwt-down');
    const key = await makeKey('k', 'EdDSA');
    let up = false;
    const server = await startHttp((_req, res) => {
      if (!up) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [key.jwk] }));
    });
    const guard = new Guard(
      {
        authenticators: {
          jwt: { j: { jwksUrl: server.url, algorithms: ['EdDSA'], refreshIntervalSec: 60 } },
        },
        listeners: { mqtt: { authn: ['j'] } },
      },
      { clock, dataDir: tmp.dir },
    );
    t.after(async () => {
      await guard.close();
      await server.close();
      tmp.cleanup();
    });
    await guard.start(); // must not throw
    const token = await new SignJWT({ sub: 'd' })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k' })
      .setExpirationTime(Math.floor(clock.now() / 1000) + 3600)
      .sign(key.privateKey);
    const d = await guard.authenticate(connect('d', { password: token }));
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.ServerUnavailable);
    assert.ok(Number(d.userProperties?.['retry-after-ms']) > 0);
    up = true;
    clock.advance(60_000);
    assert.equal(await (guard.authenticator('j') as JwtAuthenticator).refresh(), true);
    assert.equal((await guard.authenticate(connect('d', { password: token }))).ok, true);
  });

  it('PEM public key file, token in the username field, sub check disabled', async (t) => {
    const clock = new FakeClock();
    const tmp = tempDir('jwt-pem');
    t.after(tmp.cleanup);
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const pemFile = join(tmp.dir, 'issuer.pem');
    writeFileSync(pemFile, await exportSPKI(publicKey));
    const guard = new Guard(
      {
        authenticators: {
          jwt: {
            pem: {
              publicKeyFile: pemFile,
              algorithms: ['RS256'],
              tokenField: 'username',
              subjectClaim: false,
            },
          },
        },
        listeners: { mqtt: { authn: ['pem'] } },
      },
      { clock, dataDir: tmp.dir },
    );
    t.after(() => guard.close());
    const token = await new SignJWT({ sub: 'someone-else' })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime(Math.floor(clock.now() / 1000) + 60)
      .sign(privateKey);
    assert.equal((await guard.authenticate(connect('dev-9', { username: token }))).ok, true);
    const d = await guard.authenticate(connect('dev-9', { password: token }));
    assert.equal(d.ok, false, 'token in the wrong field is not read');
  });

  it('rejects alg none in the allow-list at config time', () => {
    const tmp = tempDir('jwt-cfg');
    try {
      assert.throws(
        () =>
          new Guard(
            { authenticators: { jwt: { j: { jwksUrl: 'http://127.0.0.1:1/', algorithms: ['none'] } } } },
            { dataDir: tmp.dir },
          ),
        /BW_ERR_GUARD_CONFIG|invalid guard configuration/,
      );
    } finally {
      tmp.cleanup();
    }
  });
});
