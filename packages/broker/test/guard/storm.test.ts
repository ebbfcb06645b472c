import assert from 'node:assert/strict';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { FakeClock, isReachable } from '@breakwater/testkit';
import { Registry } from 'prom-client';
import type { PostgresAuthenticator } from '../../src/guard/authenticators/postgres.js';
import { BreakerState } from '../../src/guard/circuit-breaker.js';
import { Guard, type GuardDecision } from '../../src/guard/guard.js';
import { GuardMetrics } from '../../src/guard/metrics.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { connect, tempDir } from './helpers.js';
import { PG, PgFixture } from './pg-fixture.js';

const reachable = await isReachable(PG.host, PG.port);
if (!reachable && process.env.CI === 'true') throw new Error('PostgreSQL must be up in CI');

const RATE = 5;
const BURST = 5;
const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
const hashFor = (password: string) => {
  const salt = randomBytes(8);
  return `$pbkdf2-sha256$i=500,l=32$${b64(salt)}$${b64(pbkdf2Sync(password, salt, 500, 32, 'sha256'))}`;
};

/**
 * The incident of issue 3, replayed against a real PostgreSQL: the broker's credential breaks (its
 * role loses SELECT) while the fleet hammers the listener. The backend must never see more than
 * the cap; known devices get in via stale-if-error; wrong passwords are answered by the negative
 * cache; devices never seen get 0x88 (retry later), never 0x86 (which tells an SDK to give up).
 */
describe('auth storm with a broken Postgres credential', {
  skip: !reachable && 'PostgreSQL not reachable',
}, () => {
  const clock = new FakeClock();
  const db = new PgFixture();
  const tmp = tempDir('storm');
  const metrics = new GuardMetrics(new Registry());
  const config = () => ({
    authenticators: {
      postgres: {
        pg: {
          ...PG,
          user: db.name,
          password: 'right',
          query: db.query,
          limits: {
            ratePerSec: RATE,
            burst: BURST,
            maxInFlight: 4,
            breaker: { minRequests: 5, openMs: 5000 },
          },
        },
      },
    },
    listeners: { mqtt: { authn: ['pg'] } },
  });
  let guard: Guard;
  const seen: string[] = []; // usernames of every query the backend received
  const startedAt = clock.now();

  const countQueries = (g: Guard) => {
    const pool = (g.authenticator('pg') as PostgresAuthenticator).pool;
    const query = pool.query.bind(pool) as (...a: unknown[]) => unknown;
    (pool as unknown as { query: unknown }).query = (text: unknown, values: unknown[]) => {
      seen.push(String(values[0]));
      return query(text, values);
    };
  };
  const capAllows = () => BURST + RATE * ((clock.now() - startedAt) / 1000);

  const old = Array.from({ length: 60 }, (_, i) => `old-${i}`); // authenticated 2 h ago (stale, not fresh)
  const recent = Array.from({ length: 30 }, (_, i) => `recent-${i}`); // authenticated minutes ago (fresh)
  const wrong = Array.from({ length: 20 }, (_, i) => `wrong-${i}`); // tried a wrong password seconds ago

  /** Sequentially, one token's worth of fake time apart, so the healthy phases stay under the cap. */
  const paced = async (ids: string[], password: (id: string) => string) => {
    const out: GuardDecision[] = [];
    for (const id of ids) {
      out.push(await guard.authenticate(connect(id, { username: id, password: password(id) })));
      clock.advance(1000 / RATE);
    }
    return out;
  };

  before(async () => {
    await db.create();
    for (const id of [...old, ...recent, ...wrong]) await db.addUser(id, hashFor(`pw-${id}`));
    guard = new Guard(config(), { clock, dataDir: tmp.dir, metrics });
    countQueries(guard);
    await guard.start();
  });

  after(async () => {
    await guard?.close();
    await db.drop();
    tmp.cleanup();
  });

  it('storm: queries ≤ cap, known devices stale-admitted, wrong passwords from the negative cache, unknown → 0x88', async () => {
    // Healthy backend: the old devices log in, then 2 h pass (beyond the 1 h positive TTL).
    assert.ok((await paced(old, (id) => `pw-${id}`)).every((d) => d.ok));
    clock.advance(2 * 3600_000);
    assert.ok((await paced(recent, (id) => `pw-${id}`)).every((d) => d.ok));
    const wrongFirst = await paced(wrong, () => 'not-the-password');
    assert.ok(wrongFirst.every((d) => !d.ok && d.reasonCode === ReasonCode.BadUserNameOrPassword));
    assert.equal(seen.length, old.length + recent.length + wrong.length);

    await db.breakCredential();
    const stormStart = seen.length;
    const results = {
      old: [] as GuardDecision[],
      recent: [] as GuardDecision[],
      wrong: [] as GuardDecision[],
      ghost: [] as GuardDecision[],
    };
    let ghost = 0;
    // 10 waves of 390 concurrent attempts, one second apart: 3,900 attempts in 10 s.
    for (let wave = 0; wave < 10; wave++) {
      const batch: Array<Promise<void>> = [];
      for (let i = 0; i < 3; i++) {
        for (const id of old)
          batch.push(
            guard
              .authenticate(connect(id, { username: id, password: `pw-${id}` }))
              .then((d) => void results.old.push(d)),
          );
        for (const id of recent)
          batch.push(
            guard
              .authenticate(connect(id, { username: id, password: `pw-${id}` }))
              .then((d) => void results.recent.push(d)),
          );
        for (const id of wrong)
          batch.push(
            guard
              .authenticate(connect(id, { username: id, password: 'not-the-password' }))
              .then((d) => void results.wrong.push(d)),
          );
      }
      for (let g = 0; g < 60; g++) {
        const id = `ghost-${ghost++}`;
        batch.push(
          guard
            .authenticate(connect(id, { username: id, password: 'whatever' }))
            .then((d) => void results.ghost.push(d)),
        );
      }
      await Promise.all(batch);
      clock.advance(1000);
    }
    const total = Object.values(results).reduce((n, r) => n + r.length, 0);
    assert.equal(total, 3900);

    // The cap held over the whole run, and the storm itself reached the backend only a little.
    assert.ok(seen.length <= capAllows(), `${seen.length} queries > cap ${capAllows()}`);
    const stormQueries = seen.length - stormStart;
    assert.ok(stormQueries > 0, 'the backend was tried (and failed) during the storm');
    assert.ok(stormQueries <= BURST + RATE * 10, `${stormQueries} storm queries`);
    assert.equal((await metrics.breakerState.get()).values[0]!.value, BreakerState.Open);

    // Known devices: all in (stale-if-error for the old ones, fresh cache for the recent ones).
    assert.ok(
      results.old.every((d) => d.ok),
      'every previously authenticated device was admitted',
    );
    assert.ok(results.recent.every((d) => d.ok));
    // Wrong passwords: 0x86 from the negative cache, none of them reached the backend.
    assert.ok(results.wrong.every((d) => !d.ok && d.reasonCode === ReasonCode.BadUserNameOrPassword));
    assert.equal(seen.slice(stormStart).filter((u) => u.startsWith('wrong-')).length, 0);
    // Devices never seen: 0x88 (backend unavailable) or 0x89 (its limiter full) with a retry
    // hint — both mean "come back later" — never 0x86, which tells an SDK to give up.
    const retryLater: number[] = [ReasonCode.ServerUnavailable, ReasonCode.ServerBusy];
    assert.ok(
      results.ghost.every(
        (d) => !d.ok && retryLater.includes(d.reasonCode) && d.userProperties?.['retry-after-ms'],
      ),
      JSON.stringify(results.ghost.find((d) => !d.ok && !retryLater.includes(d.reasonCode))),
    );
    assert.ok(results.ghost.some((d) => !d.ok && d.reasonCode === ReasonCode.ServerUnavailable));

    const outcomes = new Map((await metrics.authTotal.get()).values.map((v) => [v.labels.outcome, v.value]));
    assert.equal(outcomes.get('stale_admit'), 60 * 30);
    assert.equal(outcomes.get('cache_hit'), 30 * 30);
    assert.equal(outcomes.get('negative_cache_hit'), 20 * 30);
    assert.equal((outcomes.get('error') ?? 0) + (outcomes.get('busy') ?? 0), 600);
  });

  it('after a restart (new Guard, same data dir) known-good devices still get in while the backend is broken', async () => {
    await guard.close();
    guard = new Guard(config(), { clock, dataDir: tmp.dir, metrics: new GuardMetrics(new Registry()) });
    countQueries(guard);
    await guard.start();
    const d = await guard.authenticate(connect('old-7', { username: 'old-7', password: 'pw-old-7' }));
    assert.equal(d.ok, true);
    const recentD = await guard.authenticate(
      connect('recent-3', { username: 'recent-3', password: 'pw-recent-3' }),
    );
    assert.equal(recentD.ok, true);
    const wrongPw = await guard.authenticate(connect('old-7', { username: 'old-7', password: 'nope' }));
    assert.ok(!wrongPw.ok);
    assert.equal(
      wrongPw.reasonCode,
      ReasonCode.ServerUnavailable,
      'other credentials for a known device are not admitted',
    );
  });

  it('once the credential is repaired the breaker closes after a probe and logins hit the backend again', async () => {
    await db.restoreCredential();
    clock.advance(120_000);
    const before = seen.length;
    const d = await guard.authenticate(connect('wrong-1', { username: 'wrong-1', password: 'pw-wrong-1' }));
    assert.equal(d.ok, true);
    assert.equal(seen.length, before + 1);
    assert.equal(guard.gate('pg')!.breaker.state, BreakerState.Closed);
  });
});
