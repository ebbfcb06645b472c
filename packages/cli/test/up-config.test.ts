import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '@breakwater/broker';
import { resolveUpConfig } from '../src/up-config.js';

const dir = mkdtempSync(join(tmpdir(), 'bw-upcfg-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function yaml(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('resolveUpConfig: flags over config file over defaults', () => {
  test('no file: default listeners, each port changed by its flag', () => {
    const up = resolveUpConfig({}, '/srv');
    assert.deepEqual(
      up.listeners.map((l) => [l.name, l.type, l.port, l.portSource]),
      [
        ['mqtt', 'tcp', 1883, '--mqtt-port'],
        ['ws', 'ws', 8083, '--ws-port'],
      ],
    );
    assert.equal(up.config.http.port, 8080);
    assert.equal(up.httpPortSource, '--http-port');
    assert.equal(up.config.dataDir, '/srv/data');
    assert.equal(up.config.storage.file, '/srv/data/breakwater.db');
  });

  test('port 0 flags, host, data dir and log level', () => {
    const up = resolveUpConfig(
      { mqttPort: 0, wsPort: 0, httpPort: 0, host: '127.0.0.1', dataDir: 'state', logLevel: 'debug' },
      '/srv',
    );
    assert.deepEqual(
      up.listeners.map((l) => [l.port, l.host]),
      [
        [0, '127.0.0.1'],
        [0, '127.0.0.1'],
      ],
    );
    assert.equal(up.config.http.port, 0);
    assert.equal(up.config.http.host, '127.0.0.1');
    assert.equal(up.config.dataDir, '/srv/state', '--data-dir is relative to the working directory');
    assert.equal(up.config.log.level, 'debug');
  });

  test('flags win over the file; keys the flags do not touch keep the file value', () => {
    const file = yaml(
      'both.yaml',
      [
        'listeners:',
        '  - { name: plain, type: tcp, port: 1999 }',
        '  - { name: plain2, type: tcp, port: 2999 }',
        'http: { port: 9999 }',
        'mqtt: { offlineQueueLimit: 5 }',
        'dataDir: from-file',
      ].join('\n'),
    );
    const up = resolveUpConfig({ config: file, mqttPort: 2000 }, '/srv');
    assert.equal(up.source, file);
    assert.deepEqual(
      up.listeners.map((l) => [l.name, l.port, l.portSource]),
      [
        ['plain', 2000, '--mqtt-port'],
        ['plain2', 2999, `listeners[1].port in ${file}`],
      ],
    );
    assert.equal(up.config.http.port, 9999);
    assert.equal(up.config.mqtt.offlineQueueLimit, 5);
    assert.equal(up.config.dataDir, join(dir, 'from-file'), 'file paths are relative to the file');
  });

  test('--mqtt-port adds a TCP listener when the file configures only WebSocket', () => {
    const file = yaml('ws-only.yaml', 'listeners:\n  - { name: browser, type: ws, port: 9001 }\n');
    const up = resolveUpConfig({ config: file, mqttPort: 0 }, '/srv');
    assert.deepEqual(
      up.listeners.map((l) => [l.name, l.type, l.port]),
      [
        ['browser', 'ws', 9001],
        ['mqtt', 'tcp', 0],
      ],
    );
  });

  test('--mqtts-port without a TLS listener in the file is an error naming the flag', () => {
    assert.throws(
      () => resolveUpConfig({ mqttsPort: 8883 }, '/srv'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message ===
          'config error in command-line flags: --mqtts-port needs a listener of type "tls" with tls.cert and tls.key in a config file (--config)',
    );
  });

  test('--cluster sets cluster.servers (comma-separated, nats:// added); the file sets the rest', () => {
    const file = yaml('cluster.yaml', 'cluster:\n  replicas: 3\n  prefix: fleet_a\n');
    const { config } = resolveUpConfig(
      { config: file, cluster: 'nats://10.0.0.1:4222, 10.0.0.2:4222' },
      '/srv',
    );
    assert.deepEqual(config.cluster.servers, ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222']);
    assert.equal(config.cluster.replicas, 3);
    assert.equal(config.cluster.prefix, 'fleet_a');
    // Without the flag or the section: a single node.
    assert.deepEqual(resolveUpConfig({}, '/srv').config.cluster.servers, []);
  });

  test('a bad cluster key is an error naming the key and the file', () => {
    const file = yaml('cluster-bad.yaml', 'cluster:\n  replicas: 9\n  servers: [http://x]\n  peers: []\n');
    assert.throws(
      () => resolveUpConfig({ config: file }, '/srv'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.includes(file) &&
        err.message.includes('cluster.replicas') &&
        err.message.includes('cluster.servers') &&
        err.message.includes('cluster.peers'),
    );
  });

  test('--mqtts-port and --wss-port set the TLS listeners from the file', () => {
    writeFileSync(join(dir, 'c.pem'), 'x');
    writeFileSync(join(dir, 'k.pem'), 'x');
    const file = yaml(
      'tls.yaml',
      [
        'listeners:',
        '  - { name: mqtts, type: tls, port: 8883, tls: { cert: c.pem, key: k.pem } }',
        '  - { name: wss, type: wss, port: 8084, tls: { cert: c.pem, key: k.pem } }',
      ].join('\n'),
    );
    const up = resolveUpConfig({ config: file, mqttsPort: 0, wssPort: 0 }, '/srv');
    assert.deepEqual(
      up.listeners.map((l) => [l.name, l.port, l.portSource, l.path]),
      [
        ['mqtts', 0, '--mqtts-port', undefined],
        ['wss', 0, '--wss-port', '/mqtt'],
      ],
    );
  });
});
