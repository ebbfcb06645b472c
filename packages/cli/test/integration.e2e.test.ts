/**
 * `breakwater up` with an `integration:` section, as a child process: QoS 1 telemetry published
 * while the webhook sink is down is buffered before its PUBACK, survives kill -9 of the broker,
 * and is delivered by itself when the broker is back and the sink answers again. SIGHUP reloads
 * the rules. `breakwater sinks|rules|dlq` talk to the running server.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli } from './cli-process.js';
import { connect, startUp, tempDir, waitFor } from './up-helpers.js';

describe('breakwater up: data integration', () => {
  it('buffers through a sink outage and a kill -9, drains by itself, reloads rules on SIGHUP', async () => {
    const received: Array<{ topic: string; payload: string; id: number }> = [];
    let up = false;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (!up) return void res.writeHead(503).end();
        received.push(
          ...(JSON.parse(Buffer.concat(chunks).toString()) as { messages: typeof received }).messages,
        );
        res.writeHead(200).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`;

    const dir = tempDir();
    const configFile = join(dir, 'breakwater.yaml');
    const writeConfig = (extraRule: boolean) =>
      writeFileSync(
        configFile,
        JSON.stringify({
          integration: {
            sinks: { webhook: { hook: { url: hookUrl, retry: { initialMs: 100, maxMs: 500 } } } },
            rules: [
              { id: 'telemetry', filter: 'devices/+/telemetry', sinks: ['hook'] },
              ...(extraRule ? [{ id: 'alarms', filter: 'devices/+/alarm', sinks: ['hook'] }] : []),
            ],
          },
        }),
      );
    writeConfig(false);
    const first = await startUp(dir, ['--config', configFile]);
    const device = await connect(first.mqttUrl, { clientId: 'dev-1', protocolVersion: 5 });
    for (let seq = 0; seq < 20; seq++) {
      await device.publishAsync('devices/dev-1/telemetry', JSON.stringify({ seq }), { qos: 1 });
    }
    // Over HTTP, not the CLI: each CLI run is a process start (seconds on a loaded machine).
    const key = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
    const res = await fetch(`${first.controlBase}/api/v1/sinks`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const sink = ((await res.json()) as { items: Array<{ name: string; queued: number }> }).items[0]!;
    assert.deepEqual([sink.name, sink.queued], ['hook', 20]);
    // kill -9: no shutdown, no flush beyond what the PUBACKs already waited for.
    first.cli.child.kill('SIGKILL');
    await first.cli.exited;
    device.end(true);

    const second = await startUp(dir, ['--config', configFile]);
    const api2 = ['--url', second.controlBase, '--api-key-file', join(dir, 'admin.key')];
    up = true;
    await waitFor(async () => (received.length >= 20 ? true : null), '20 messages at the webhook');
    assert.deepEqual(
      [...new Set(received.map((m) => (JSON.parse(m.payload) as { seq: number }).seq))].sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i),
    );

    writeConfig(true);
    second.cli.child.kill('SIGHUP');
    const rules = await waitFor(async () => {
      const r = await runCli(['rules', 'list', ...api2]);
      return r.stdout.includes('alarms') ? r : null;
    }, 'the reloaded rule');
    assert.match(rules.stdout, /^ID\s+FILTER/m);
    assert.match(rules.stdout, /alarms\s+devices\/\+\/alarm\s+-\s+hook\s+yes\s+config/);
    const badReplay = await runCli(['dlq', 'replay', ...api2]);
    assert.equal(badReplay.code, 1);
    assert.match(
      badReplay.stderr,
      /name the dead letters.*\(HTTP 400, field ids\) \[BW_ERR_API_VALIDATION\]/,
    );
  });
});
