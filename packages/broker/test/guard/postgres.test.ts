import assert from 'node:assert/strict';
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { FakeClock, isReachable } from '@breakwater/testkit';
import bcrypt from 'bcryptjs';
import type { PostgresAuthenticator } from '../../src/guard/authenticators/postgres.js';
import { Guard } from '../../src/guard/guard.js';
import { hashPasswordScrypt } from '../../src/guard/password-hash.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { connect, tempDir } from './helpers.js';
import { PG, PgFixture } from './pg-fixture.js';

const reachable = await isReachable(PG.host, PG.port);
if (!reachable && process.env.CI === 'true') throw new Error('PostgreSQL must be up in CI');

describe('postgres authenticator (real PostgreSQL)', {
  skip: !reachable && 'PostgreSQL not reachable at 127.0.0.1:5432',
}, () => {
  const clock = new FakeClock();
  const db = new PgFixture();
  const tmp = tempDir('pg');
  let guard: Guard;
  let queries = 0;

  before(async () => {
    await db.create();
    const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
    const salt = randomBytes(16);
    await db.addUser('scrypt-user', await hashPasswordScrypt('pw-scrypt', { ln: 10, r: 8, p: 1 }));
    await db.addUser(
      'pbkdf2-user',
      `$pbkdf2-sha512$i=2000,l=64$${b64(salt)}$${b64(pbkdf2Sync('pw-pbkdf2', salt, 2000, 64, 'sha512'))}`,
    );
    await db.addUser('bcrypt-user', bcrypt.hashSync('pw-bcrypt', 4));
    const msalt = randomBytes(12);
    await db.addUser(
      'mosq-user',
      `$7$101$${msalt.toString('base64')}$${pbkdf2Sync('pw-mosq', msalt, 101, 64, 'sha512').toString('base64')}`,
    );
    await db.addUser(
      'emqx-user',
      createHash('sha256').update('s4lt').update('pw-emqx').digest('hex'),
      's4lt',
    );
    await db.addUser('admin', bcrypt.hashSync('pw-admin', 4), null, true);
    // Django's pbkdf2_sha256 (Python hashlib.pbkdf2_hmac vector, see password-hash.test.ts).
    await db.addUser(
      'django-user',
      'pbkdf2_sha256$260000$sEdXlnXYY8Kz$Bb+M27Adu1E0QmWLVYsa0ZLLOpPszM3Q0hioB3OHSmA=',
    );
    // EMQX pbkdf2 column layout: hex digest in password_hash, the salt column as PBKDF2's salt.
    await db.addUser(
      'emqx-pbkdf2-user',
      'ba0be17b5e8b2cad121a6de96c8a41d3bd527f7d1de1262105c82705f9f595ba',
      'f3c1a2b4d5e6f708192a3b4c5d6e7f80',
    );
    guard = new Guard(
      {
        authenticators: {
          postgres: {
            pg: {
              ...PG,
              user: db.name,
              password: 'right',
              query: db.query,
              hash: { algorithm: 'sha256', saltPosition: 'prefix' },
              // The fake clock never refills the bucket: bank enough for every check of this suite.
              limits: { ratePerSec: 1000, burst: 1000 },
            },
            emqxPbkdf2: {
              ...PG,
              user: db.name,
              password: 'right',
              query: db.query,
              hash: { algorithm: 'pbkdf2', macFun: 'sha512', iterations: 1000, dkLength: 32 },
              limits: { ratePerSec: 1000, burst: 1000 },
            },
            broken: { ...PG, user: db.name, query: `SELECT nope FROM ${db.table} WHERE username = $1` },
            slow: {
              ...PG,
              user: db.name,
              query: `SELECT password_hash, pg_sleep(5) FROM ${db.table} WHERE username = $1`,
              statementTimeoutMs: 200,
            },
          },
        },
        listeners: {
          mqtt: { authn: ['pg'] },
          emqx: { authn: ['emqxPbkdf2'] },
          bad: { authn: ['broken'] },
          slow: { authn: ['slow'] },
        },
      },
      { clock, dataDir: tmp.dir },
    );
    const pool = (guard.authenticator('pg') as PostgresAuthenticator).pool;
    const query = pool.query.bind(pool) as (...a: unknown[]) => unknown;
    (pool as unknown as { query: unknown }).query = (...a: unknown[]) => {
      queries++;
      return query(...a);
    };
    await guard.start();
  });

  after(async () => {
    await guard?.close();
    await db.drop();
    tmp.cleanup();
  });

  it('verifies every stored hash format, and refuses wrong passwords with 0x86', async () => {
    for (const [user, password] of [
      ['scrypt-user', 'pw-scrypt'],
      ['pbkdf2-user', 'pw-pbkdf2'],
      ['bcrypt-user', 'pw-bcrypt'],
      ['mosq-user', 'pw-mosq'],
      ['emqx-user', 'pw-emqx'],
      ['django-user', 'django-pw'],
    ] as const) {
      const ok = await guard.authenticate(connect(`c-${user}`, { username: user, password }));
      assert.equal(ok.ok, true, user);
      const bad = await guard.authenticate(
        connect(`c-${user}`, { username: user, password: `${password}!` }),
      );
      assert.ok(!bad.ok, user);
      assert.equal(bad.reasonCode, ReasonCode.BadUserNameOrPassword, user);
    }
  });

  it("EMQX's pbkdf2 column layout (hash.algorithm pbkdf2, the salt column as PBKDF2's salt)", async () => {
    const ok = await guard.authenticate(
      connect('c-emqx-pbkdf2', { username: 'emqx-pbkdf2-user', password: 'emqx-pw', listener: 'emqx' }),
    );
    assert.equal(ok.ok, true);
    const bad = await guard.authenticate(
      connect('c-emqx-pbkdf2', { username: 'emqx-pbkdf2-user', password: 'emqx-pX', listener: 'emqx' }),
    );
    assert.ok(!bad.ok);
    assert.equal(bad.reasonCode, ReasonCode.BadUserNameOrPassword);
    // emqx-user's row holds a salted sha256 digest: read as pbkdf2 it is simply the wrong hash.
    const other = await guard.authenticate(
      connect('c-emqx-user', { username: 'emqx-user', password: 'pw-emqx', listener: 'emqx' }),
    );
    assert.ok(!other.ok);
    assert.equal(other.reasonCode, ReasonCode.BadUserNameOrPassword);
  });

  it('an unknown user ends the chain with 0x86; is_superuser grants the authz bypass', async () => {
    const d = await guard.authenticate(connect('ghost', { username: 'ghost', password: 'x' }));
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.BadUserNameOrPassword);
    const admin = await guard.authenticate(
      connect('ops-console', { username: 'admin', password: 'pw-admin' }),
    );
    assert.ok(admin.ok);
    assert.equal(admin.superuser, true);
    assert.equal(guard.authorizeSubscribe('ops-console', '#'), true);
    assert.equal(guard.authorizeSubscribe('c-bcrypt-user', '#'), false);
  });

  it('a second identical attempt is answered from the cache (no query)', async () => {
    const before = queries;
    const d = await guard.authenticate(
      connect('c-scrypt-user', { username: 'scrypt-user', password: 'pw-scrypt' }),
    );
    assert.equal(d.ok, true);
    const wrong = await guard.authenticate(
      connect('c-scrypt-user', { username: 'scrypt-user', password: 'pw-scrypt!' }),
    );
    assert.equal(wrong.ok, false);
    assert.equal(queries, before);
  });

  it('oversize username or password is refused before hashing or querying', async () => {
    const before = queries;
    const big = 'x'.repeat(4097);
    for (const c of [
      connect('big', { username: big, password: 'x' }),
      connect('big', { username: 'u', password: big }),
    ]) {
      const d = await guard.authenticate(c);
      assert.ok(!d.ok);
      assert.equal(d.reasonCode, ReasonCode.BadUserNameOrPassword);
    }
    assert.equal(queries, before);
  });

  it('SQL error → 0x88 (server unavailable), not a deny', async () => {
    const d = await guard.authenticate(
      connect('c1', { username: 'bcrypt-user', password: 'pw-bcrypt', listener: 'bad' }),
    );
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.ServerUnavailable);
    assert.ok(d.userProperties?.['retry-after-ms']);
  });

  it('statement timeout (pg_sleep) → 0x88', async () => {
    const d = await guard.authenticate(
      connect('c1', { username: 'bcrypt-user', password: 'pw-bcrypt', listener: 'slow' }),
    );
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.ServerUnavailable);
  });
});
