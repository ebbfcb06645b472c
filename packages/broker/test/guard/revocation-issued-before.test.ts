/**
 * "Tokens issued before T" revocation: RevocationList cutoffs (per client id and global), the
 * jwt authenticator's `iat`, refusal on CONNECT (0x8A) and the live sessions it ends.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import { type CryptoKey, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { Guard } from '../../src/guard/guard.js';
import { RevocationList } from '../../src/guard/revocation.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { connect, tempDir } from './helpers.js';

describe('RevocationList: issued-before cutoffs', () => {
  it('a per-client cutoff refuses older tokens of that client only; the client id itself is not revoked', () => {
    const list = new RevocationList();
    list.revoke({ clientId: 'a', issuedBefore: 1000 });
    assert.equal(list.check('a', undefined, undefined, 999), 'token issued before revocation');
    assert.equal(list.check('a', undefined, undefined, 1000), null, 'issued at T is not before T');
    assert.equal(list.check('a', undefined, undefined), null, 'non-token credentials are untouched');
    assert.equal(list.check('b', undefined, undefined, 1), null);
  });

  it('the latest cutoff applies; unrevoke removes exactly one; global cutoffs cover every client', () => {
    const list = new RevocationList();
    list.revoke({ clientId: 'a', issuedBefore: 1000 });
    list.revoke({ clientId: 'a', issuedBefore: 2000 });
    assert.equal(list.cutoffFor('a'), 2000);
    list.unrevoke({ clientId: 'a', issuedBefore: 2000 });
    assert.equal(list.cutoffFor('a'), 1000);
    list.unrevoke({ clientId: 'a', issuedBefore: 1000 });
    assert.equal(list.cutoffFor('a'), 0);
    list.revoke({ issuedBefore: 5000 });
    assert.equal(list.check('anyone', undefined, undefined, 4999), 'token issued before revocation');
    assert.equal(list.check('anyone', undefined, undefined, 5000), null);
    list.unrevoke({ issuedBefore: 5000 });
    assert.equal(list.check('anyone', undefined, undefined, 1), null);
  });
});

describe('guard: tokens issued before T', () => {
  async function setup(t: TestContext) {
    const clock = new FakeClock();
    const tmp = tempDir('jwt-iat');
    t.after(tmp.cleanup);
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
    const pemFile = join(tmp.dir, 'issuer.pem');
    writeFileSync(pemFile, await exportSPKI(publicKey));
    const guard = new Guard(
      {
        authenticators: { jwt: { pem: { publicKeyFile: pemFile, algorithms: ['EdDSA'] } } },
        listeners: { mqtt: { authn: ['pem'] } },
      },
      { clock, dataDir: tmp.dir },
    );
    t.after(() => guard.close());
    const kicked: Array<{ clientId: string; reasonCode: number }> = [];
    guard.attach({
      disconnectClient: (clientId, reasonCode) => {
        kicked.push({ clientId, reasonCode });
        return true;
      },
    });
    const sign = (key: CryptoKey, sub: string, iatSec: number | null) => {
      const jwt = new SignJWT({ sub })
        .setProtectedHeader({ alg: 'EdDSA' })
        .setExpirationTime(Math.floor(clock.now() / 1000) + 600);
      if (iatSec !== null) jwt.setIssuedAt(iatSec);
      return jwt.sign(key);
    };
    return {
      clock,
      guard,
      kicked,
      sign: (sub: string, iatSec: number | null) => sign(privateKey, sub, iatSec),
    };
  }

  it('refuses a token with iat < T (CONNACK 0x8A) and admits one with iat >= T', async (t) => {
    const { clock, guard, sign } = await setup(t);
    const nowSec = Math.floor(clock.now() / 1000);
    guard.revoke({ clientId: 'dev-1', issuedBefore: nowSec * 1000 });
    const old = await guard.authenticate(connect('dev-1', { password: await sign('dev-1', nowSec - 10) }));
    assert.ok(!old.ok);
    assert.equal(old.reasonCode, ReasonCode.Banned);
    assert.match(old.reasonString, /issued before/);
    const fresh = await guard.authenticate(connect('dev-1', { password: await sign('dev-1', nowSec) }));
    assert.equal(fresh.ok, true);
    const noIat = await guard.authenticate(connect('dev-1', { password: await sign('dev-1', null) }));
    assert.equal(noIat.ok, false, 'a token without iat counts as issued before any cutoff');
    const other = await guard.authenticate(connect('dev-2', { password: await sign('dev-2', nowSec - 10) }));
    assert.equal(other.ok, true, 'the cutoff is scoped to dev-1');
    guard.unrevoke({ clientId: 'dev-1', issuedBefore: nowSec * 1000 });
    const again = await guard.authenticate(connect('dev-1', { password: await sign('dev-1', nowSec - 10) }));
    assert.equal(again.ok, true, 'unrevoke admits it again');
  });

  it('revoke kicks exactly the live sessions whose token is older than T (0x87), globally or per client', async (t) => {
    const { clock, guard, kicked, sign } = await setup(t);
    const nowSec = Math.floor(clock.now() / 1000);
    for (const [id, iat] of [
      ['old-1', nowSec - 100],
      ['old-2', nowSec - 50],
      ['new-1', nowSec],
    ] as const) {
      assert.equal((await guard.authenticate(connect(id, { password: await sign(id, iat) }))).ok, true);
    }
    assert.deepEqual(guard.sessionsMatching({ clientId: 'old-1', issuedBefore: nowSec * 1000 }), ['old-1']);
    assert.deepEqual(guard.sessionsMatching({ clientId: 'new-1', issuedBefore: nowSec * 1000 }), []);
    guard.revoke({ issuedBefore: nowSec * 1000 });
    assert.deepEqual(
      kicked.map((k) => k.clientId).sort(),
      ['old-1', 'old-2'],
      'only sessions with tokens issued before T',
    );
    assert.ok(kicked.every((k) => k.reasonCode === ReasonCode.NotAuthorized));
    const refused = await guard.authenticate(
      connect('old-2', { password: await sign('old-2', nowSec - 50) }),
    );
    assert.ok(!refused.ok);
    assert.equal(refused.reasonCode, ReasonCode.Banned);
  });
});
