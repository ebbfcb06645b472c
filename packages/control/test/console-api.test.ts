/**
 * The control plane's side of the web console (issue 14): API key → session token exchange and
 * what the token may do, the SSE stream (snapshot, then deltas), the console's static files, the
 * device search filters and bulk kick, and the game-day report listing.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { errorOf, sqliteDriver, startControlPlane } from './harness.js';

interface SessionBody {
  token: string;
  expiresAt: string;
  key: { id: string; name: string; role: string };
}

describe('console session tokens', () => {
  it('an API key is exchanged for a bwc_ token that acts with the key role until it expires', async (t) => {
    const h = await startControlPlane(t, sqliteDriver, { console: { dir: null, sessionTtlSec: 600 } });
    const bad = await h.call('POST', '/api/v1/console/session', { key: null, body: { apiKey: 'bwk_nope' } });
    assert.equal(bad.statusCode, 401);
    assert.equal(errorOf(bad).field, 'apiKey');
    const missing = await h.call('POST', '/api/v1/console/session', { key: null, body: {} });
    assert.equal(missing.statusCode, 400);
    assert.equal(errorOf(missing).field, 'apiKey');

    const created = (
      await h.call('POST', '/api/v1/keys', { body: { name: 'night shift', role: 'viewer' } })
    ).json() as { apiKey: { id: string }; key: string };
    const viewer = { id: created.apiKey.id, key: created.key };
    const res = await h.call('POST', '/api/v1/console/session', { key: null, body: { apiKey: viewer.key } });
    assert.equal(res.statusCode, 201, res.body);
    const session = res.json() as SessionBody;
    assert.match(session.token, /^bwc_[\w-]+\.[\w-]+$/);
    assert.deepEqual(session.key, { id: viewer.id, name: 'night shift', role: 'viewer' });
    assert.equal(Date.parse(session.expiresAt), h.clock.now() + 600_000);

    assert.equal((await h.call('GET', '/api/v1/devices', { key: session.token })).statusCode, 200);
    const write = await h.call('POST', '/api/v1/devices', { key: session.token, body: { id: 'd1' } });
    assert.equal(write.statusCode, 403, 'a viewer session cannot write');
    const tampered = `${session.token.slice(0, -2)}xx`;
    assert.equal((await h.call('GET', '/api/v1/devices', { key: tampered })).statusCode, 401);

    const login = (await h.call('GET', '/api/v1/audit?action=console.login')).json() as {
      items: Array<{ actor: { name: string } }>;
    };
    assert.equal(login.items[0]?.actor.name, 'night shift', 'the login is audited');

    const check = await h.cp.verifyBearer(session.token, 'operator');
    assert.deepEqual(check, {
      ok: false,
      status: 403,
      message: `needs role operator; key ${viewer.id} is viewer`,
    });
    assert.equal((await h.cp.verifyBearer(session.token, 'viewer')).ok, true);

    h.clock.advance(600_001);
    const expired = await h.call('GET', '/api/v1/devices', { key: session.token });
    assert.equal(expired.statusCode, 401);
    assert.match(errorOf(expired).message, /log in again/);
  });

  it('revoking the API key ends its console sessions at once', async (t) => {
    const h = await startControlPlane(t, sqliteDriver, { console: { dir: null } });
    const created = (
      await h.call('POST', '/api/v1/keys', { body: { name: 'op', role: 'operator' } })
    ).json() as {
      apiKey: { id: string };
      key: string;
    };
    const op = { id: created.apiKey.id, key: created.key };
    const { token } = (
      await h.call('POST', '/api/v1/console/session', { key: null, body: { apiKey: op.key } })
    ).json() as SessionBody;
    assert.equal((await h.call('GET', '/api/v1/devices', { key: token })).statusCode, 200);
    assert.equal((await h.call('DELETE', `/api/v1/keys/${op.id}`)).statusCode, 200);
    const after = await h.call('GET', '/api/v1/devices', { key: token });
    assert.equal(after.statusCode, 401);
    assert.match(errorOf(after).message, /revoked/);
  });
});

describe('console stream', () => {
  it('sends a snapshot with the thresholds, then a delta per second with the newest values', async (t) => {
    const h = await startControlPlane(t, sqliteDriver, { console: { dir: null } });
    const history = h.cp.alerts.history;
    const now = h.clock.now();
    for (let s = 30; s >= 1; s--)
      history.record('breakwater_connections', { listener: 'mqtt' }, now - s * 1000, 5);
    const base = await h.app.listen({ port: 0, host: '127.0.0.1' });
    // Aborted in the test body: app.close() (the harness's after hook) waits for open connections.
    const controller = new AbortController();
    try {
      const res = await fetch(`${base}/api/v1/console/stream`, {
        headers: { authorization: `Bearer ${h.adminKey}` },
        signal: controller.signal,
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      const nextEvent = async (): Promise<{ event: string; data: Record<string, unknown> }> => {
        for (;;) {
          const end = buffer.indexOf('\n\n');
          if (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (data) return { event, data: JSON.parse(data) as Record<string, unknown> };
            continue;
          }
          const { value, done } = await reader.read();
          assert.ok(!done, 'stream ended early');
          buffer += value;
        }
      };
      const snapshot = await nextEvent();
      assert.equal(snapshot.event, 'snapshot');
      const live = snapshot.data.live as { t: number[]; series: Record<string, Array<number | null>> };
      assert.equal(live.t.length, live.series.connections?.length, 'one value per bucket');
      assert.ok(live.series.connections?.includes(5), 'history reaches the snapshot');
      assert.equal((snapshot.data.thresholds as { authFailPct: number }).authFailPct, 20);
      assert.equal(typeof snapshot.data.auditSeq, 'number');

      history.record('breakwater_connections', { listener: 'mqtt' }, now, 7);
      h.clock.advance(1000);
      const delta = await nextEvent();
      assert.equal(delta.event, 'delta');
      assert.equal((delta.data.values as Record<string, number>).connections, 7);
    } finally {
      controller.abort();
    }
  });

  it('needs a credential', async (t) => {
    const h = await startControlPlane(t, sqliteDriver, { console: { dir: null } });
    assert.equal((await h.call('GET', '/api/v1/console/stream', { key: null })).statusCode, 401);
  });
});

describe('console static files', () => {
  it('serves the built bundle under a strict CSP, gzipped when asked; 503 without a build', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'bw-console-dist-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'assets'), { recursive: true });
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>console</title>');
    await writeFile(join(dir, 'assets/app.js'), 'console.log(1)');
    const h = await startControlPlane(t, sqliteDriver, { console: { dir } });
    const redirect = await h.call('GET', '/console', { key: null });
    assert.equal(redirect.statusCode, 302);
    assert.equal(redirect.headers.location, '/console/');
    const index = await h.call('GET', '/console/', { key: null });
    assert.equal(index.statusCode, 200);
    assert.match(String(index.headers['content-type']), /text\/html/);
    assert.match(String(index.headers['content-security-policy']), /script-src 'self'/);
    assert.match(index.body, /<title>console<\/title>/);
    const js = await h.app.inject({ url: '/console/assets/app.js', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(js.rawPayload).toString(), 'console.log(1)');
    assert.equal((await h.call('GET', '/console/assets/nope.js', { key: null })).statusCode, 404);

    const none = await startControlPlane(t, sqliteDriver, { console: { dir: null } });
    const missing = await none.call('GET', '/console/', { key: null });
    assert.equal(missing.statusCode, 503);
    assert.match(missing.body, /npm run build -w @breakwater\/console/);
  });
});

describe('device search and kick', () => {
  it('q searches ids case-insensitively, lastDisconnectReason filters, includeTotal counts', async (t) => {
    const h = await startControlPlane(t, sqliteDriver, { console: { dir: null } });
    const rows = ['Pump-A1', 'pump-b2', 'valve_1', 'valve-2'].map((id) => ({ id, tags: ['eu'] }));
    assert.equal((await h.call('POST', '/api/v1/devices/import', { body: rows })).statusCode, 201);
    h.cp.presence.disconnected('pump-b2', h.clock.now(), 'KeepAliveTimeout');
    await h.cp.presence.flush();
    const list = async (q: string) =>
      (await h.call('GET', `/api/v1/devices?${q}`)).json() as {
        items: Array<{ id: string }>;
        total?: number;
      };
    assert.deepEqual(
      (await list('q=PUMP')).items.map((d) => d.id),
      ['Pump-A1', 'pump-b2'],
    );
    // `_` is a literal, not LIKE's any-character.
    assert.deepEqual(
      (await list('q=e_1')).items.map((d) => d.id),
      ['valve_1'],
    );
    assert.deepEqual(
      (await list('lastDisconnectReason=KeepAliveTimeout')).items.map((d) => d.id),
      ['pump-b2'],
    );
    const paged = await list('q=v&limit=1&includeTotal=true');
    assert.equal(paged.items.length, 1);
    assert.equal(paged.total, 2);
    assert.equal((await list('q=v&limit=1')).total, undefined);
    const bad = await h.call('GET', '/api/v1/devices?q=a/b');
    assert.equal(bad.statusCode, 400);
    assert.equal(errorOf(bad).field, 'q');
  });

  it('kick is audited and says when no broker is attached; ids are validated', async (t) => {
    const h = await startControlPlane(t, sqliteDriver, { console: { dir: null } });
    const res = await h.call('POST', '/api/v1/devices/kick', {
      body: { ids: ['d1', 'd2'], reason: 'stuck' },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), {
      requested: 2,
      disconnected: [],
      warnings: ['no broker attached: nobody was disconnected'],
    });
    const audit = (await h.call('GET', '/api/v1/audit?action=device.kick')).json() as {
      items: Array<{ reason: string; details: { ids: string[] } }>;
    };
    assert.equal(audit.items[0]?.reason, 'stuck');
    assert.deepEqual(audit.items[0]?.details.ids, ['d1', 'd2']);
    const empty = await h.call('POST', '/api/v1/devices/kick', { body: { ids: [] } });
    assert.equal(empty.statusCode, 400);
    assert.equal(errorOf(empty).field, 'ids');
  });
});

describe('game-day runs', () => {
  it('lists the runs in the reports dir (matrix cells too) and hands out a report', async (t) => {
    const h0 = await startControlPlane(t, sqliteDriver, { console: { dir: null } });
    const reports = join(h0.dataDir, 'reports');
    const write = async (run: string, startedAt: string, passed: boolean) => {
      await mkdir(join(reports, run), { recursive: true });
      await writeFile(
        join(reports, run, 'report.json'),
        JSON.stringify({
          scenario: { name: 'auth-storm', title: 'Auth storm' },
          params: { devices: 200, cell: 'on/fleet/warm' },
          passed,
          startedAt,
          finishedAt: startedAt,
        }),
      );
      await writeFile(join(reports, run, 'report.html'), '<h1>report</h1>');
    };
    await write('auth-storm-1', '2026-12-01T10:00:00.000Z', true);
    await write('matrix-1/on-naive-cold', '2026-12-02T10:00:00.000Z', false);
    await mkdir(join(reports, 'not-a-run'), { recursive: true });
    const h = await startControlPlane(t, sqliteDriver, {
      console: { dir: null },
      gamedayReportsDir: reports,
    });
    const list = (await h.call('GET', '/api/v1/gamedays')).json() as {
      items: Array<{ run: string; passed: boolean; devices: number; hasHtml: boolean }>;
    };
    assert.deepEqual(
      list.items.map((r) => [r.run, r.passed]),
      [
        ['matrix-1/on-naive-cold', false],
        ['auth-storm-1', true],
      ],
    );
    assert.equal(list.items[0]?.hasHtml, true);
    const report = await h.call('GET', '/api/v1/gamedays/report?run=auth-storm-1');
    assert.equal(report.statusCode, 200);
    assert.equal((report.json() as { scenario: { title: string } }).scenario.title, 'Auth storm');
    const html = await h.call('GET', '/api/v1/gamedays/report.html?run=matrix-1/on-naive-cold');
    assert.equal(html.body, '<h1>report</h1>');
    const outside = await h.call('GET', '/api/v1/gamedays/report?run=../secrets');
    assert.equal(outside.statusCode, 400);
    assert.equal(errorOf(outside).field, 'run');
    assert.equal((await h.call('GET', '/api/v1/gamedays/report?run=nope')).statusCode, 404);
  });
});
