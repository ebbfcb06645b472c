import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import { Registry } from 'prom-client';
import { Guard } from '../../src/guard/guard.js';
import { GuardMetrics } from '../../src/guard/metrics.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { connect, readBody, startHttp, tempDir } from './helpers.js';

type Mode = 'allow' | 'deny' | 'ignore' | 'status500' | 'malformed' | 'hold';

/**
 * The AuthEngine in front of a real HTTP auth endpoint: caches, single-flight, timeout,
 * revocation, break-glass. The endpoint counts what it receives.
 */
describe('auth engine with the http authenticator', () => {
  const clock = new FakeClock();
  const tmp = tempDir('engine');
  const metrics = new GuardMetrics(new Registry());
  const audited: Array<{ action: string; actor: string; listener?: string }> = [];
  let slowStarts = 0;
  const state = {
    mode: 'allow' as Mode,
    requests: [] as Array<Record<string, unknown>>,
    held: [] as http.ServerResponse[],
  };
  const arrived = new EventEmitter();
  let server: Awaited<ReturnType<typeof startHttp>>;
  let guard: Guard;

  before(async () => {
    server = await startHttp(async (req, res) => {
      state.requests.push(JSON.parse(await readBody(req)) as Record<string, unknown>);
      arrived.emit('request');
      const json = (o: unknown) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(o));
      switch (state.mode) {
        case 'status500':
          res.writeHead(500).end();
          return;
        case 'malformed':
          res.writeHead(200).end('{"result": ');
          return;
        case 'hold':
          state.held.push(res);
          return;
        default:
          json({ result: state.mode });
      }
    });
    guard = new Guard(
      {
        authenticators: {
          http: {
            hook: { url: `${server.url}/auth`, limits: { timeoutMs: 3000, ratePerSec: 1000, burst: 1000 } },
          },
        },
        listeners: { mqtt: { authn: ['hook'] } },
      },
      {
        clock,
        dataDir: tmp.dir,
        metrics,
        auditLog: { append: (e) => audited.push(e) },
        admission: { beginSlowStart: () => slowStarts++ },
      },
    );
    await guard.start();
  });

  after(async () => {
    for (const r of state.held) r.destroy();
    await guard.close();
    await server.close();
    tmp.cleanup();
  });

  beforeEach(() => {
    state.mode = 'allow';
    state.requests.length = 0;
  });

  it('POSTs clientId, username, password, peerAddress and listener; allow admits', async () => {
    const d = await guard.authenticate(connect('dev-a', { username: 'ua', password: 'pa' }));
    assert.equal(d.ok, true);
    assert.deepEqual(state.requests, [
      { clientId: 'dev-a', username: 'ua', password: 'pa', peerAddress: '127.0.0.1', listener: 'mqtt' },
    ]);
  });

  it('deny → 0x86; ignore (end of chain) → 0x86; status 500 and a malformed answer → 0x88', async () => {
    const cases: Array<[Mode, number]> = [
      ['deny', ReasonCode.BadUserNameOrPassword],
      ['ignore', ReasonCode.BadUserNameOrPassword],
      ['status500', ReasonCode.ServerUnavailable],
      ['malformed', ReasonCode.ServerUnavailable],
    ];
    for (const [mode, code] of cases) {
      state.mode = mode;
      const d = await guard.authenticate(connect(`dev-${mode}`, { username: 'u', password: 'p' }));
      assert.ok(!d.ok, mode);
      assert.equal(d.reasonCode, code, mode);
    }
  });

  it('positive cache for positiveTtlSec, then the backend is asked again', async () => {
    const c = connect('dev-ttl', { username: 'u', password: 'p' });
    await guard.authenticate(c);
    await guard.authenticate(c);
    assert.equal(state.requests.length, 1);
    clock.advance(3600_000);
    await guard.authenticate(c);
    assert.equal(state.requests.length, 2);
  });

  it('negative cache for negativeTtlSec: a wrong password retried every second costs one call a minute', async () => {
    state.mode = 'deny';
    const c = connect('dev-neg', { username: 'u', password: 'wrong' });
    for (let i = 0; i < 59; i++) {
      const d = await guard.authenticate(c);
      assert.ok(!d.ok);
      clock.advance(1000);
    }
    assert.equal(state.requests.length, 1);
    clock.advance(1000);
    await guard.authenticate(c);
    assert.equal(state.requests.length, 2);
  });

  it('single-flight: 50 identical concurrent checks make one backend call', async () => {
    state.mode = 'hold';
    const c = connect('dev-sf', { username: 'u', password: 'p-sf' });
    const all = Promise.all(Array.from({ length: 50 }, () => guard.authenticate(c)));
    await once(arrived, 'request');
    const res = state.held.pop()!;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":"allow"}');
    const ds = await all;
    assert.ok(ds.every((d) => d.ok));
    assert.equal(state.requests.length, 1);
  });

  it('a backend that never answers times out on the clock → 0x88', async () => {
    state.mode = 'hold';
    const p = guard.authenticate(connect('dev-slow', { username: 'u', password: 'p-slow' }));
    await once(arrived, 'request');
    clock.advance(3000);
    const d = await p;
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.ServerUnavailable);
  });

  it('stale-if-error: a device known within 24 h gets in while the backend fails; other credentials do not', async () => {
    const c = connect('dev-stale', { username: 'u', password: 'p-stale' });
    assert.equal((await guard.authenticate(c)).ok, true);
    clock.advance(5 * 3600_000);
    state.mode = 'status500';
    assert.equal((await guard.authenticate(c)).ok, true);
    const other = await guard.authenticate(connect('dev-stale', { username: 'u', password: 'p-other' }));
    assert.ok(!other.ok);
    assert.equal(other.reasonCode, ReasonCode.ServerUnavailable);
    clock.advance(20 * 3600_000); // 25 h since the backend last confirmed it
    const late = await guard.authenticate(c);
    assert.ok(!late.ok);
    assert.equal(late.reasonCode, ReasonCode.ServerUnavailable);
  });

  it('a backend deny replaces a cached allow (password changed)', async () => {
    const c = connect('dev-chg', { username: 'u', password: 'p-chg' });
    await guard.authenticate(c);
    clock.advance(3600_000);
    state.mode = 'deny';
    assert.equal((await guard.authenticate(c)).ok, false);
    state.mode = 'status500';
    clock.advance(61_000);
    const d = await guard.authenticate(c);
    assert.ok(!d.ok, 'no stale admit after the backend said no');
    assert.equal(d.reasonCode, ReasonCode.ServerUnavailable);
  });

  it('revocation by client id beats the cache (0x8A) and purges it', async () => {
    const c = connect('dev-rev', { username: 'u', password: 'p-rev' });
    assert.equal((await guard.authenticate(c)).ok, true);
    guard.revoke({ clientId: 'dev-rev' });
    const d = await guard.authenticate(c);
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.Banned);
    guard.unrevoke({ clientId: 'dev-rev' });
    await guard.authenticate(c);
    assert.equal(state.requests.length, 2, 'the cached allow was purged');
  });

  it('break-glass bypass admits without the backend (own topics only) and ends at its TTL', async () => {
    state.mode = 'status500';
    const c = connect('dev-bg', { username: 'u', password: 'p-bg' });
    assert.equal((await guard.authenticate(c)).ok, false);
    guard.bypassAuthn('mqtt', { ttlMs: 30 * 60_000, reason: 'INC-42 pg credential', actor: 'alice' });
    const d = await guard.authenticate(c);
    assert.ok(d.ok);
    assert.equal(d.superuser, false);
    assert.equal(guard.authorizePublish('dev-bg', 'devices/dev-bg/t'), true);
    assert.equal(guard.authorizePublish('dev-bg', 'devices/other/t'), false);
    guard.revoke({ clientId: 'dev-bg-revoked' });
    assert.equal((await guard.authenticate(connect('dev-bg-revoked'))).ok, false, 'denylist still applies');
    const slowStartsBefore = slowStarts;
    clock.advance(30 * 60_000);
    // The expiry is acted on at the TTL itself, before any client connects to notice it.
    assert.deepEqual(
      audited.map((e) => [e.action, e.actor, e.listener]),
      [['bypass-expired', 'ttl', 'mqtt']],
    );
    assert.equal(slowStarts, slowStartsBefore + 1, 'the fleet kept out comes back through slow start');
    const active = (await metrics.bypassActive.get()).values.find((v) => v.labels.listener === 'mqtt');
    assert.equal(active?.value, 0);
    assert.equal((await guard.authenticate(c)).ok, false);
    assert.equal(guard.bypassStatus('mqtt'), null);
    const bypassed = (await metrics.authTotal.get()).values.find((v) => v.labels.outcome === 'bypass');
    assert.equal(bypassed?.value, 1);
  });

  it('a listener without guard config is refused (fail closed)', async () => {
    const d = await guard.authenticate(connect('dev-x', { listener: 'unconfigured' }));
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.NotAuthorized);
  });

  it('nothing in the data dir contains a raw password', () => {
    const files = readdirSync(tmp.dir, { recursive: true }) as string[];
    assert.ok(files.includes('guard-known-good.db'));
    assert.ok(files.includes('guard.secret'));
    for (const f of files) {
      if (statSync(join(tmp.dir, f)).isDirectory()) continue; // authz/ (the rules file's)
      const bytes = readFileSync(join(tmp.dir, f));
      for (const secret of ['p-stale', 'p-ttl', 'p-sf', 'p-chg'])
        assert.equal(bytes.includes(secret), false, `${f} holds ${secret}`);
    }
  });
});
