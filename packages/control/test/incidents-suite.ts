/**
 * Incidents, runbooks and the status page, run against every storage driver
 * (incidents-sqlite.test.ts, incidents-postgres.test.ts): repository, alert grouping, the API
 * with its roles and audit, timeline with kill-switch actions, postmortem, summary, status.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { AlertEvent } from '../src/alerts/types.js';
import { IncidentManager } from '../src/incidents/manager.js';
import { RunbookLibrary } from '../src/incidents/runbooks.js';
import { type Driver, errorOf, type Harness, startControlPlane } from './harness.js';

const MIN = 60_000;

function alert(h: Harness, extra: Partial<AlertEvent> = {}): AlertEvent {
  const at = h.clock.now();
  return {
    ruleId: 'auth-failure-ratio',
    name: 'Auth failure ratio high',
    state: 'firing',
    severity: 'warning',
    incidentType: 'security',
    runbook: 'auth-failing-fleet-wide',
    labels: { listener: 'tcp' },
    value: 0.43,
    threshold: 0.2,
    startedAt: at - 30_000,
    at,
    summary: 'auth failures 43 % of attempts over 1 min (threshold 20 %)',
    ...extra,
  };
}

async function key(h: Harness, role: 'viewer' | 'operator'): Promise<string> {
  const res = await h.call('POST', '/api/v1/keys', { body: { name: `${role} key`, role } });
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { key: string }).key;
}

/** Polls `probe` until it returns a value (generous deadline; no timing assertion). */
async function until<T>(probe: () => Promise<T | undefined>, deadlineMs = 20_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) assert.fail('condition not reached before the deadline');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function incidentsSuite(driver: Driver): void {
  describe(`incidents (${driver.name})`, () => {
    async function start(t: TestContext): Promise<Harness | null> {
      if (!(await driver.available(t))) return null;
      const h = await startControlPlane(t, driver);
      h.clock.advance(Date.UTC(2026, 10, 2, 9, 0, 0) - h.clock.now());
      return h;
    }

    it('repository: insert, optimistic update, timeline order, alert upsert, windows', async (t) => {
      const h = await start(t);
      if (!h) return;
      const repo = h.storage.incidents;
      const i = await repo.insert({
        type: 'mass-disconnect',
        severity: 'warning',
        title: 't',
        commander: null,
        runbook: 'mass-disconnect',
        components: ['broker', 'auth'],
        source: 'manual',
        startedAt: 1_000,
        detectedAt: 5_000,
        createdBy: 'me',
      });
      assert.equal(i.state, 'detected');
      assert.deepEqual(i.components, ['broker', 'auth']);
      assert.equal(
        await repo.update(i.id, { state: 'acknowledged', acknowledgedAt: 6_000 }, 6_000, 'mitigated'),
        false,
      );
      assert.equal(
        await repo.update(i.id, { state: 'acknowledged', acknowledgedAt: 6_000 }, 6_000, 'detected'),
        true,
      );
      assert.equal((await repo.get(i.id))!.acknowledgedAt, 6_000);
      assert.equal((await repo.findOpen('mass-disconnect'))!.id, i.id);
      assert.equal(await repo.findOpen('security'), null);
      await repo.appendTimeline({
        incidentId: i.id,
        at: 9,
        kind: 'note',
        actor: 'a',
        text: 'second',
        details: null,
      });
      await repo.appendTimeline({
        incidentId: i.id,
        at: 7,
        kind: 'update',
        actor: 'a',
        text: 'first',
        details: { status: 'investigating' },
      });
      assert.deepEqual(
        (await repo.timeline([i.id])).map((e) => e.text),
        ['first', 'second'],
      );
      assert.deepEqual(
        (await repo.timeline([i.id], 'update')).map((e) => e.details),
        [{ status: 'investigating' }],
      );
      const a = {
        incidentId: i.id,
        alertKey: 'r{a="1"}',
        ruleId: 'r',
        name: 'R',
        severity: 'warning' as const,
        labels: { a: '1' },
        firing: true,
        startedAt: 1_000,
        firstFiredAt: 5_000,
        lastEventAt: 5_000,
        value: 0.5,
        threshold: 0.2,
        summary: 's',
      };
      await repo.upsertAlert(a);
      await repo.upsertAlert({ ...a, firing: false, lastEventAt: 8_000, value: 0.1 });
      const [stored] = await repo.alerts(i.id);
      assert.equal(stored!.firing, false);
      assert.equal(stored!.value, 0.1);
      assert.equal(stored!.firstFiredAt, 5_000);
      assert.equal((await repo.findAlert('r{a="1"}'))!.incidentId, i.id);
      assert.deepEqual(
        (await repo.startedBetween(0, 1_001)).map((x) => x.id),
        [i.id],
      );
      assert.deepEqual(await repo.startedBetween(1_001, 2_000), []);
      await repo.update(i.id, { state: 'resolved', resolvedAt: 10_000 }, 10_000, 'acknowledged');
      assert.deepEqual(await repo.activeBetween(10_001, 20_000), []);
      assert.equal((await repo.activeBetween(9_000, 20_000)).length, 1);
      assert.equal(await repo.findAlert('r{a="1"}'), null, 'a resolved incident holds no alerts');
      const page1 = await repo.list({}, 1, null);
      assert.equal(page1.items.length, 1);
      assert.equal(page1.nextCursor, null);
    });

    it('groups alerts: one incident per type, duplicates dropped, resolved alerts on the timeline', async (t) => {
      const h = await start(t);
      if (!h) return;
      const first = alert(h);
      await h.cp.incidents.onAlert(first);
      h.clock.advance(5_000);
      await h.cp.incidents.onAlert(alert(h, { value: 0.5 })); // same series: duplicate
      h.clock.advance(5_000);
      await h.cp.incidents.onAlert(
        alert(h, {
          ruleId: 'auth-backend-breaker-open',
          name: 'Auth backend breaker open',
          severity: 'critical',
          startedAt: first.startedAt - 10_000,
          labels: { backend: 'postgres' },
        }),
      );
      const list = (await h.call('GET', '/api/v1/incidents?state=open')).json() as {
        items: Array<{
          id: number;
          severity: string;
          startedAt: string;
          runbook: { slug: string; title: string };
        }>;
      };
      assert.equal(list.items.length, 1, 'both alerts joined one incident');
      const inc = list.items[0]!;
      assert.equal(inc.severity, 'critical', 'severity rises to the worst alert');
      assert.equal(
        inc.startedAt,
        new Date(first.startedAt - 10_000).toISOString(),
        'earliest abnormal sample',
      );
      assert.equal(inc.runbook.slug, 'auth-failing-fleet-wide');
      assert.equal(inc.runbook.title, 'Broker auth failing fleet-wide');
      h.clock.advance(60_000);
      await h.cp.incidents.onAlert(alert(h, { state: 'resolved', value: 0.01 }));
      await h.cp.incidents.onAlert(alert(h, { state: 'resolved', value: 0.01 })); // duplicate resolve
      const detail = (await h.call('GET', `/api/v1/incidents/${inc.id}`)).json() as {
        incident: { state: string; durations: { ttdMs: number } };
        alerts: Array<{ ruleId: string; firing: boolean }>;
        timeline: Array<{ kind: string; text: string }>;
      };
      assert.equal(detail.incident.state, 'detected', 'a resolved alert does not resolve the incident');
      assert.equal(detail.incident.durations.ttdMs, 40_000);
      assert.deepEqual(
        detail.alerts.map((a) => [a.ruleId, a.firing]),
        [
          ['auth-failure-ratio', false],
          ['auth-backend-breaker-open', true],
        ],
      );
      const alerts = detail.timeline.filter((e) => e.kind === 'alert').map((e) => e.text);
      assert.equal(alerts.length, 3, alerts.join('\n'));
      assert.match(alerts[2]!, /Auth failure ratio high resolved/);
      // Another type opens its own incident; after resolving, the same type opens a new one.
      await h.cp.incidents.onAlert(
        alert(h, {
          ruleId: 'connected-devices-drop',
          incidentType: 'mass-disconnect',
          runbook: 'mass-disconnect',
          labels: {},
        }),
      );
      assert.equal(
        ((await h.call('GET', '/api/v1/incidents?state=open')).json() as { items: unknown[] }).items.length,
        2,
      );
      assert.equal(
        (await h.call('POST', `/api/v1/incidents/${inc.id}/resolve`, { body: {} })).statusCode,
        200,
      );
      await h.cp.incidents.onAlert(
        alert(h, { ruleId: 'auth-backend-breaker-open', labels: { backend: 'postgres' } }),
      );
      const open = (await h.call('GET', '/api/v1/incidents?state=open&type=security')).json() as {
        items: Array<{ id: number }>;
      };
      assert.equal(open.items.length, 1);
      assert.notEqual(open.items[0]!.id, inc.id);
      const audit = (await h.call('GET', '/api/v1/audit?action=incident.create')).json() as {
        items: Array<{ actor: { id: string } }>;
      };
      assert.equal(audit.items.length, 3);
      assert.ok(audit.items.every((e) => e.actor.id === 'system'));
    });

    it('a storm that trips the generic rule first ends up with the specific runbook', async (t) => {
      const h = await start(t);
      if (!h) return;
      await h.cp.incidents.onAlert(
        alert(h, {
          ruleId: 'new-connection-burst',
          name: 'New connection burst',
          incidentType: 'mass-disconnect',
          runbook: 'mass-disconnect',
          labels: {},
        }),
      );
      h.clock.advance(5_000);
      await h.cp.incidents.onAlert(alert(h, { incidentType: 'mass-disconnect', severity: 'critical' }));
      const items = (
        (await h.call('GET', '/api/v1/incidents')).json() as {
          items: Array<{ id: number; runbook: { slug: string }; components: string[] }>;
        }
      ).items;
      assert.equal(items.length, 1);
      assert.equal(items[0]!.runbook.slug, 'auth-failing-fleet-wide');
      assert.deepEqual(items[0]!.components, ['broker', 'auth']);
      const d = (await h.call('GET', `/api/v1/incidents/${items[0]!.id}`)).json() as {
        timeline: Array<{ text: string }>;
      };
      assert.ok(
        d.timeline.some(
          (e) =>
            e.text === 'Runbook mass-disconnect → auth-failing-fleet-wide (alert Auth failure ratio high)',
        ),
      );
    });

    it('two control planes seeing the same alert storm open one incident', async (t) => {
      const h = await start(t);
      if (!h) return;
      // Two managers with their own queues over one database: what two processes sharing
      // PostgreSQL are. Grouping is serialised in the database, not in memory.
      const other = new IncidentManager({
        storage: h.storage,
        clock: h.clock,
        runbooks: new RunbookLibrary(),
      });
      const events = [
        alert(h),
        alert(h, { ruleId: 'auth-backend-latency', labels: { backend: 'pg' } }),
        alert(h, { ruleId: 'auth-backend-breaker-open', labels: { backend: 'pg' } }),
      ];
      await Promise.all(events.flatMap((e) => [h.cp.incidents.onAlert(e), other.onAlert(e)]));
      const items = ((await h.call('GET', '/api/v1/incidents')).json() as { items: Array<{ id: number }> })
        .items;
      assert.equal(items.length, 1);
      const d = (await h.call('GET', `/api/v1/incidents/${items[0]!.id}`)).json() as {
        alerts: unknown[];
        timeline: Array<{ kind: string }>;
      };
      assert.equal(d.alerts.length, 3);
      assert.equal(
        d.timeline.filter((e) => e.kind === 'alert').length,
        3,
        'duplicates dropped across processes',
      );
    });

    it('the control plane subscribes incidents to its alert engine', async (t) => {
      const h = await start(t);
      if (!h) return;
      const labels = { campaign: 'fw-2.1', wave: '2' };
      h.cp.alerts.engine.raise('ota-gate-failed', { labels, value: 0.12, startedAt: h.clock.now() - 20_000 });
      const incident = await until(async () => {
        const items = (
          (await h.call('GET', '/api/v1/incidents')).json() as { items: Array<Record<string, unknown>> }
        ).items;
        return items[0];
      });
      assert.equal(incident.type, 'bad-firmware-push');
      assert.equal((incident.runbook as { slug: string }).slug, 'bad-firmware-push');
      assert.deepEqual(incident.components, ['ota']);
      assert.equal((incident.durations as { ttdMs: number }).ttdMs, 20_000);
      h.clock.advance(MIN);
      h.cp.alerts.engine.clear('ota-gate-failed', labels);
      await until(async () => {
        const d = (await h.call('GET', `/api/v1/incidents/${incident.id}`)).json() as {
          alerts: Array<{ firing: boolean }>;
        };
        return d.alerts[0]?.firing === false ? true : undefined;
      });
    });

    it('lifecycle over the API: roles, 409 on illegal transitions, TTx, audit', async (t) => {
      const h = await start(t);
      if (!h) return;
      const viewer = await key(h, 'viewer');
      const operator = await key(h, 'operator');
      const body = {
        type: 'mass-disconnect',
        title: 'Fleet drops in eu-west',
        severity: 'critical',
        startedAt: new Date(h.clock.now() - 2 * MIN).toISOString(),
      };
      assert.equal((await h.call('POST', '/api/v1/incidents', { key: viewer, body })).statusCode, 403);
      assert.equal((await h.call('GET', '/api/v1/incidents', { key: null })).statusCode, 401);
      const bad = await h.call('POST', '/api/v1/incidents', {
        key: operator,
        body: { ...body, type: 'meteor' },
      });
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).field, 'type');
      const badTime = await h.call('POST', '/api/v1/incidents', {
        key: operator,
        body: { ...body, startedAt: 'yesterday' },
      });
      assert.equal(errorOf(badTime).field, 'startedAt');
      const created = await h.call('POST', '/api/v1/incidents', {
        key: operator,
        body,
        headers: { 'x-breakwater-reason': 'pager' },
      });
      assert.equal(created.statusCode, 201, created.body);
      const inc = created.json() as { id: number; ref: string; state: string; components: string[] };
      assert.equal(inc.state, 'detected');
      assert.deepEqual(inc.components, ['broker']);
      assert.equal(
        (await h.call('POST', `/api/v1/incidents/${inc.id}/mitigate`, { key: viewer, body: {} })).statusCode,
        403,
      );

      h.clock.advance(3 * MIN);
      const ack = await h.call('POST', `/api/v1/incidents/${inc.ref}/ack`, {
        key: operator,
        body: { commander: 'alice' },
      });
      assert.equal(ack.statusCode, 200, ack.body);
      assert.equal((ack.json() as { commander: string }).commander, 'alice');
      const again = await h.call('POST', `/api/v1/incidents/${inc.id}/ack`, { key: operator, body: {} });
      assert.equal(again.statusCode, 409);
      assert.equal(errorOf(again).code, 'BW_ERR_INCIDENT_TRANSITION');
      h.clock.advance(10 * MIN);
      assert.equal(
        (
          await h.call('POST', `/api/v1/incidents/${inc.id}/mitigate`, {
            key: operator,
            body: { note: 'admission paced it' },
          })
        ).statusCode,
        200,
      );
      h.clock.advance(45 * MIN);
      const resolved = (
        await h.call('POST', `/api/v1/incidents/${inc.id}/resolve`, { key: operator, body: {} })
      ).json() as {
        durations: { ttdMs: number; ttaMs: number; ttmMs: number; ttrMs: number };
      };
      assert.deepEqual(resolved.durations, {
        ttdMs: 2 * MIN,
        ttaMs: 3 * MIN,
        ttmMs: 15 * MIN,
        ttrMs: 60 * MIN,
      });
      const back = await h.call('POST', `/api/v1/incidents/${inc.id}/mitigate`, { key: operator, body: {} });
      assert.equal(back.statusCode, 409);
      assert.equal((await h.call('GET', '/api/v1/incidents/999')).statusCode, 404);
      assert.equal(errorOf(await h.call('GET', '/api/v1/incidents/abc')).field, 'id');

      const audit = (await h.call('GET', `/api/v1/audit?targetType=incident&targetId=${inc.id}`)).json() as {
        items: Array<{ action: string; reason: string | null }>;
      };
      assert.deepEqual(audit.items.map((e) => e.action).reverse(), [
        'incident.create',
        'incident.acknowledge',
        'incident.mitigate',
        'incident.resolve',
      ]);
      assert.equal(audit.items.at(-1)!.reason, 'pager');

      const summary = (await h.call('GET', '/api/v1/incidents/summary?quarter=2026Q4')).json() as {
        incidents: number;
        ttr: { count: number; medianMs: number; p90Ms: number };
      };
      assert.equal(summary.incidents, 1);
      assert.deepEqual(summary.ttr, { count: 1, medianMs: 60 * MIN, p90Ms: 60 * MIN });
      const empty = (await h.call('GET', '/api/v1/incidents/summary?quarter=2026Q3')).json() as {
        incidents: number;
      };
      assert.equal(empty.incidents, 0);
      assert.equal(errorOf(await h.call('GET', '/api/v1/incidents/summary?quarter=2026Q5')).field, 'quarter');
    });

    it('timeline collects notes, updates and kill-switch actions; postmortem and messages show them', async (t) => {
      const h = await start(t);
      if (!h) return;
      await h.cp.incidents.onAlert(alert(h));
      const id = ((await h.call('GET', '/api/v1/incidents')).json() as { items: Array<{ id: number }> })
        .items[0]!.id;
      h.clock.advance(MIN);
      await h.call('POST', `/api/v1/incidents/${id}/ack`, { body: {} });
      // A kill switch from another module (control audit log) and a break-glass bypass (broker log).
      h.clock.advance(MIN);
      await h.storage.audit.append({
        at: h.clock.now(),
        actorId: 'key_x',
        actorName: 'oncall',
        action: 'revocation.create',
        targetType: 'device',
        targetId: 'dev-7',
        reason: 'leaked secret',
        details: null,
      });
      await h.storage.audit.append({
        at: h.clock.now(),
        actorId: 'key_x',
        actorName: 'oncall',
        action: 'device.create',
        targetType: 'device',
        targetId: 'dev-8',
        reason: null,
        details: null,
      });
      appendFileSync(
        join(h.dataDir, 'audit.log'),
        `${JSON.stringify({ at: new Date(h.clock.now() + 1000).toISOString(), actor: 'root@host', action: 'bypass-authn', listener: 'tcp', reason: 'auth DB down', until: new Date(h.clock.now() + 30 * MIN).toISOString() })}\n{"torn`,
      );
      h.clock.advance(MIN);
      assert.equal(
        (
          await h.call('POST', `/api/v1/incidents/${id}/notes`, {
            body: { text: 'DB credential rotated wrong' },
          })
        ).statusCode,
        201,
      );
      const upd = await h.call('POST', `/api/v1/incidents/${id}/updates`, {
        body: {
          status: 'investigating',
          message: 'Some devices cannot connect.',
          title: 'Devices cannot connect',
        },
      });
      assert.equal(upd.statusCode, 201, upd.body);
      assert.equal(
        errorOf(
          await h.call('POST', `/api/v1/incidents/${id}/updates`, {
            body: { status: 'panic', message: 'x' },
          }),
        ).field,
        'status',
      );
      assert.equal(
        errorOf(await h.call('POST', `/api/v1/incidents/${id}/notes`, { body: { text: 'x', txt: 'x' } }))
          .field,
        'txt',
      );

      const detail = (await h.call('GET', `/api/v1/incidents/${id}`)).json() as {
        timeline: Array<{ kind: string; source: string; text: string }>;
      };
      const kinds = detail.timeline.map((e) => `${e.kind}/${e.source}`);
      assert.deepEqual(kinds, [
        'state/incident',
        'alert/incident',
        'state/incident',
        'action/control-audit',
        'action/broker-audit',
        'note/incident',
        'update/incident',
      ]);
      assert.match(detail.timeline[3]!.text, /revocation\.create device dev-7: leaked secret/);
      assert.match(detail.timeline[4]!.text, /authn bypass on listener tcp/);

      const pm = await h.call('GET', `/api/v1/incidents/${id}/postmortem`);
      assert.equal(pm.statusCode, 200);
      assert.match(String(pm.headers['content-type']), /^text\/markdown/);
      assert.ok(pm.body.startsWith('# Postmortem draft: INC-'), pm.body.slice(0, 80));
      const wrapped = (await h.call('GET', `/api/v1/incidents/${id}/postmortem?format=json`)).json() as {
        ref: string;
        markdown: string;
      };
      assert.equal(wrapped.ref, `INC-${id}`);
      assert.equal(wrapped.markdown, pm.body);
      for (const heading of [
        '## Summary',
        '## Impact',
        '## Timeline',
        '## Detection',
        '## Response',
        '## Root cause',
        '## What went well',
        '## What went badly',
        '## Action items',
      ]) {
        assert.ok(pm.body.includes(heading), heading);
      }
      assert.ok(pm.body.includes('DB credential rotated wrong'), 'timeline note in the postmortem');
      assert.ok(pm.body.includes('revocation.create device dev-7'), 'kill-switch action in the postmortem');
      assert.ok(pm.body.includes('| owner | due date |') || /owner \| due date/.test(pm.body));
      assert.match(pm.body, /Time to detect \(TTD\): \*\*30 s\*\*/);
      assert.match(pm.body, /Detected by alert \*\*Auth failure ratio high\*\*/);

      const customer = (await h.call('GET', `/api/v1/incidents/${id}/messages?audience=customer`)).json() as {
        subject: string;
        body: string;
      };
      assert.match(customer.body, /Some devices cannot connect\./);
      assert.doesNotMatch(
        customer.body,
        /auth-failure-ratio|oncall|revocation/,
        'no internals for customers',
      );
      const regulator = (
        await h.call('GET', `/api/v1/incidents/${id}/messages?audience=regulator`)
      ).json() as { body: string };
      assert.match(regulator.body, /Incident reference: INC-\d+/);
      assert.match(regulator.body, /\[to fill/);
      const internal = (await h.call('GET', `/api/v1/incidents/${id}/messages`)).json() as {
        audience: string;
        body: string;
      };
      assert.equal(internal.audience, 'internal');
      assert.match(internal.body, /Runbook: auth-failing-fleet-wide/);
      assert.equal(
        errorOf(await h.call('GET', `/api/v1/incidents/${id}/messages?audience=press`)).field,
        'audience',
      );
    });

    it('runbooks are served with metadata; status page is public and derived from incidents', async (t) => {
      const h = await start(t);
      if (!h) return;
      const list = (await h.call('GET', '/api/v1/runbooks')).json() as {
        items: Array<{ slug: string; sections: string[] }>;
      };
      assert.deepEqual(
        list.items.map((r) => r.slug),
        [
          'auth-failing-fleet-wide',
          'bad-firmware-push',
          'capacity-cost',
          'data-quality',
          'mass-disconnect',
          'security',
          'socket-fd-exhaustion',
        ],
      );
      const one = (await h.call('GET', '/api/v1/runbooks/auth-failing-fleet-wide')).json() as {
        markdown: string;
        incidentTypes: string[];
      };
      assert.match(one.markdown, /breakwater listener bypass-authn/);
      assert.deepEqual(one.incidentTypes, ['security', 'mass-disconnect']);
      assert.equal((await h.call('GET', '/api/v1/runbooks/nope')).statusCode, 404);
      assert.equal((await h.call('GET', '/api/v1/runbooks/..%2Fetc')).statusCode, 400);

      const quiet = (await h.call('GET', '/status.json', { key: null })).json() as {
        overall: string;
        history: unknown[];
      };
      assert.equal(quiet.overall, 'operational');
      assert.equal(quiet.history.length, 90);
      await h.cp.incidents.onAlert(alert(h, { severity: 'critical' }));
      const id = ((await h.call('GET', '/api/v1/incidents')).json() as { items: Array<{ id: number }> })
        .items[0]!.id;
      const hidden = (await h.call('GET', '/status.json', { key: null })).json() as {
        overall: string;
        components: Array<{ id: string; state: string }>;
        activeIncidents: unknown[];
      };
      assert.equal(hidden.overall, 'outage');
      assert.deepEqual(
        hidden.components.map((c) => `${c.id}:${c.state}`),
        ['broker:outage', 'auth:outage', 'control-plane:operational', 'ota:operational'],
      );
      assert.deepEqual(hidden.activeIncidents, [], 'not published before a customer-facing update');
      await h.call('POST', `/api/v1/incidents/${id}/updates`, {
        body: { status: 'investigating', message: 'Devices <b>cannot</b> connect.' },
      });
      h.clock.advance(MIN);
      await h.call('POST', `/api/v1/incidents/${id}/mitigate`, { body: {} });
      const shown = (await h.call('GET', '/status.json', { key: null })).json() as {
        overall: string;
        activeIncidents: Array<{ title: string; updates: Array<{ message: string }> }>;
        history: Array<{ state: string; incidents: Array<{ id: string }> }>;
      };
      assert.equal(shown.overall, 'degraded', 'mitigated: degraded, no longer an outage');
      assert.equal(shown.activeIncidents[0]!.title, 'Auth failure ratio high (listener=tcp)');
      assert.equal(shown.history[0]!.state, 'outage');
      assert.equal(shown.history[0]!.incidents[0]!.id, `INC-${id}`);
      const html = await h.call('GET', '/status', { key: null });
      assert.equal(html.statusCode, 200);
      assert.match(String(html.headers['content-type']), /^text\/html/);
      assert.ok(html.body.includes('Devices &lt;b&gt;cannot&lt;/b&gt; connect.'), 'escaped');
      assert.doesNotMatch(html.body, /<script|<link|src="http|href="http/, 'no scripts, no external assets');
    });
  });
}
