import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import mqtt, { type IDisconnectPacket } from 'mqtt';
import { CliProcess, runCli } from './cli-process.js';
import { connect, events, tempDir } from './up-helpers.js';

// `breakwater up` end to end: the real executable as a child process, real sockets on port 0.

async function startCli(dataDir: string, extra: string[] = []) {
  const cli = new CliProcess([
    'up',
    '--host',
    '127.0.0.1',
    '--mqtt-port',
    '0',
    '--ws-port',
    '0',
    '--http-port',
    '0',
    '--data-dir',
    dataDir,
    '--log-level',
    'warn',
    ...extra,
  ]);
  after(() => cli.stop());
  // Generous: from source (tsx) on a loaded 2-core machine a start can take well over 20 s.
  const [mqttUrl] = await cli.waitForStdout(/mqtt:\/\/127\.0\.0\.1:\d+/, 90_000);
  const [wsUrl] = await cli.waitForStdout(/ws:\/\/127\.0\.0\.1:\d+\/mqtt/, 90_000);
  const [metricsUrl] = await cli.waitForStdout(/http:\/\/127\.0\.0\.1:\d+\/metrics/, 90_000);
  return { cli, mqttUrl, wsUrl, metricsUrl, httpBase: metricsUrl.replace(/\/metrics$/, '') };
}

describe('breakwater up (child process)', () => {
  test('prints real URLs for port 0, serves MQTT over TCP and WebSocket, /metrics, /readyz', async () => {
    const dataDir = tempDir();
    const { mqttUrl, wsUrl, metricsUrl, httpBase } = await startCli(dataDir);
    assert.doesNotMatch(mqttUrl, /:0$/, 'the printed URL shows the port really bound');

    const sub = await connect(wsUrl, { protocolVersion: 5, clientId: 'e2e-sub' });
    await sub.subscribeAsync('e2e/#', { qos: 1 });
    const pub = await connect(mqttUrl, { protocolVersion: 4, clientId: 'e2e-pub' });
    const received = once(events(sub), 'message');
    await pub.publishAsync('e2e/hello', 'over tcp, out over ws', { qos: 1 });
    const [topic, payload] = await received;
    assert.equal(topic, 'e2e/hello');
    assert.equal(String(payload), 'over tcp, out over ws');

    const metrics = await (await fetch(metricsUrl)).text();
    assert.match(metrics, /^breakwater_connections\{listener="mqtt"\} 1$/m);
    assert.match(metrics, /^breakwater_connections\{listener="ws"\} 1$/m);
    assert.match(metrics, /^process_open_fds \d+$/m);
    assert.equal((await fetch(`${httpBase}/readyz`)).status, 200);
    assert.equal((await fetch(`${httpBase}/healthz`)).status, 200);
    assert.ok(existsSync(join(dataDir, 'breakwater.db')), 'SQLite database under --data-dir');
  });

  test('SIGTERM: MQTT 5 clients get DISCONNECT 0x8B, the process exits 0', async () => {
    const { cli, mqttUrl, wsUrl } = await startCli(tempDir());
    const v5 = await connect(mqttUrl, { protocolVersion: 5, clientId: 'e2e-v5' });
    const v5ws = await connect(wsUrl, { protocolVersion: 5, clientId: 'e2e-v5-ws' });
    const v3 = await connect(mqttUrl, { protocolVersion: 4, clientId: 'e2e-v3' });
    const disconnect = once(events(v5), 'disconnect') as Promise<[IDisconnectPacket]>;
    const disconnectWs = once(events(v5ws), 'disconnect') as Promise<[IDisconnectPacket]>;
    const v3closed = once(events(v3), 'close');

    cli.child.kill('SIGTERM');
    const [packet] = await disconnect;
    assert.equal(packet.reasonCode, 0x8b, 'server shutting down');
    const [packetWs] = await disconnectWs;
    assert.equal(packetWs.reasonCode, 0x8b, 'over WebSocket too');
    await v3closed;
    const { code, signal } = await cli.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, cli.stderr);
    assert.equal(cli.stderr, '');
  });

  test('SIGINT (Ctrl-C) shuts down the same way', async () => {
    const { cli, mqttUrl } = await startCli(tempDir());
    const v5 = await connect(mqttUrl, { protocolVersion: 5, clientId: 'e2e-sigint' });
    const disconnect = once(events(v5), 'disconnect') as Promise<[IDisconnectPacket]>;
    cli.child.kill('SIGINT');
    const [packet] = await disconnect;
    assert.equal(packet.reasonCode, 0x8b);
    assert.deepEqual(await cli.exited, { code: 0, signal: null });
  });

  test('a QoS 1 message queued for an offline session survives a SIGTERM restart', async () => {
    const dataDir = tempDir();
    const first = await startCli(dataDir);
    const sub = await connect(first.mqttUrl, {
      protocolVersion: 5,
      clientId: 'e2e-durable',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await sub.subscribeAsync('durable/#', { qos: 1 });
    await sub.endAsync();
    const pub = await connect(first.mqttUrl, { protocolVersion: 5, clientId: 'e2e-durable-pub' });
    await pub.publishAsync('durable/x', 'kept', { qos: 1 });
    await pub.endAsync();
    first.cli.child.kill('SIGTERM');
    assert.equal((await first.cli.exited).code, 0);

    const second = await startCli(dataDir);
    const client = mqtt.connect(second.mqttUrl, {
      protocolVersion: 5,
      clientId: 'e2e-durable',
      clean: false,
      reconnectPeriod: 0,
      properties: { sessionExpiryInterval: 3600 },
    });
    after(() => client.end(true));
    const [topic, payload] = await once(events(client), 'message');
    assert.equal(topic, 'durable/x');
    assert.equal(String(payload), 'kept');
  });

  test('a taken port: one line on stderr naming the port and the flag, exit 1', async () => {
    const squatter = net.createServer();
    squatter.listen(0, '127.0.0.1');
    await once(squatter, 'listening');
    after(() => squatter.close());
    const taken = (squatter.address() as net.AddressInfo).port;

    for (const [flag, others] of [
      ['--mqtt-port', ['--ws-port', '0', '--http-port', '0']],
      ['--ws-port', ['--mqtt-port', '0', '--http-port', '0']],
      ['--http-port', ['--mqtt-port', '0', '--ws-port', '0']],
    ] as const) {
      const { code, stderr } = await runCli([
        'up',
        '--host',
        '127.0.0.1',
        flag,
        String(taken),
        ...others,
        '--data-dir',
        tempDir(),
      ]);
      assert.equal(code, 1, flag);
      const lines = stderr.split('\n').filter((l) => l.length > 0);
      assert.equal(lines.length, 1, `one line for ${flag}: ${stderr}`);
      assert.match(lines[0]!, new RegExp(`port is already in use: ${taken} .*change it with ${flag}`));
      assert.match(lines[0]!, /BW_ERR_PORT_IN_USE/);
    }
  });

  test('a bad flag value names the flag, exit 1', async () => {
    const { code, stderr } = await runCli(['up', '--mqtt-port', 'abc']);
    assert.equal(code, 1);
    assert.match(stderr, /--mqtt-port <n>' argument 'abc' is invalid/);
    assert.match(stderr, /between 0 and 65535/);
  });

  test('a config error names the file and the key, exit 1', async () => {
    const dir = tempDir();
    const file = join(dir, 'breakwater.yaml');
    writeFileSync(file, 'mqtt:\n  maxPacketSize: big\n');
    const { code, stderr } = await runCli(['up', '--config', file, '--data-dir', dir]);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`config error in ${file}: mqtt\\.maxPacketSize must be an integer`));
  });
});
