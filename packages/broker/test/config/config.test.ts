import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { FLAGS_SOURCE, loadConfigFile, validateConfig } from '../../src/config/load.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { BreakwaterError } from '../../src/errors.js';
import { defaultLimits } from '../../src/options.js';

const dir = mkdtempSync(join(tmpdir(), 'bw-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function writeYaml(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.ok(err instanceof BreakwaterError);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('config: defaults', () => {
  test('an empty config gets every default, and the result is frozen all the way down', () => {
    const config = validateConfig({}, { baseDir: '/srv/bw' });
    assert.deepEqual(config.mqtt, { ...defaultLimits });
    assert.deepEqual(config.listeners, [
      { name: 'mqtt', type: 'tcp', host: '0.0.0.0', port: 1883 },
      { name: 'ws', type: 'ws', host: '0.0.0.0', port: 8083, path: '/mqtt' },
    ]);
    assert.deepEqual(config.http, { enabled: true, host: '0.0.0.0', port: 8080 });
    assert.equal(config.dataDir, '/srv/bw/data');
    assert.deepEqual(config.storage, { driver: 'sqlite', file: '/srv/bw/data/breakwater.db' });
    assert.equal(config.log.level, 'info');
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.mqtt));
    assert.ok(Object.isFrozen(config.listeners[0]));
    assert.throws(() => {
      (config.mqtt as { maxPacketSize: number }).maxPacketSize = 1;
    }, TypeError);
  });

  test('the caller’s raw object is not mutated by defaulting', () => {
    const raw = { mqtt: { maxPacketSize: 1000 } };
    validateConfig(raw);
    assert.deepEqual(raw, { mqtt: { maxPacketSize: 1000 } });
  });

  test('every BrokerLimits field is a mqtt.* key with the same default', () => {
    const keys = Object.keys(ConfigSchema.properties.mqtt.properties).sort();
    assert.deepEqual(keys, Object.keys(defaultLimits).sort());
    // A valid non-default value of each type (queueOverflow is an enum).
    const sample: Record<string, unknown> = { queueOverflow: 'drop-oldest' };
    for (const key of keys) {
      const d = defaultLimits[key as keyof typeof defaultLimits];
      const value =
        sample[key] ?? (typeof d === 'string' ? 'x/{clientId}/' : typeof d === 'boolean' ? !d : 7);
      const config = validateConfig({ mqtt: { [key]: value } });
      assert.equal(config.mqtt[key as keyof typeof defaultLimits], value, key);
    }
  });

  test('control.deviceEventsPerDevice: 200 by default; 0, a fraction or text is refused naming the key', () => {
    assert.equal(validateConfig({}).control.deviceEventsPerDevice, 200);
    assert.equal(
      validateConfig({ control: { deviceEventsPerDevice: 50 } }).control.deviceEventsPerDevice,
      50,
    );
    for (const bad of [0, 2.5, 'many', 1_000_000]) {
      assert.throws(
        () => validateConfig({ control: { deviceEventsPerDevice: bad } }),
        (err: unknown) => err instanceof ConfigError && /control\.deviceEventsPerDevice/.test(err.message),
        String(bad),
      );
    }
  });

  test('cluster.shared*: the group consumer settings; 0, a fraction, text or out of range is refused naming the key', () => {
    const c = validateConfig({}).cluster;
    assert.deepEqual(
      [c.sharedAckWaitMs, c.sharedMaxAckPending, c.sharedInFlightPerNode, c.sharedInactiveMs],
      [5000, 1024, 64, 60_000],
    );
    const good = {
      sharedAckWaitMs: 8000,
      sharedMaxAckPending: 4096,
      sharedInFlightPerNode: 8,
      sharedInactiveMs: 300_000,
    };
    assert.deepEqual(
      Object.fromEntries(
        Object.keys(good).map((k) => [k, validateConfig({ cluster: good }).cluster[k as keyof typeof good]]),
      ),
      good,
    );
    const bad: Record<keyof typeof good, unknown[]> = {
      sharedAckWaitMs: [0, 999, 2.5, '5s', 600_001],
      sharedMaxAckPending: [0, -1, 1.5, 'lots', 1_000_001],
      sharedInFlightPerNode: [0, 0.5, 'many', 65_536],
      sharedInactiveMs: [0, 4999, 60_000.5, '1m'],
    };
    for (const [key, values] of Object.entries(bad)) {
      for (const value of values) {
        assert.throws(
          () => validateConfig({ cluster: { [key]: value } }),
          (err: unknown) => err instanceof ConfigError && new RegExp(`cluster\\.${key}\\b`).test(err.message),
          `${key}: ${String(value)}`,
        );
      }
    }
  });

  test('mqtt.intakeBudgetMs and cluster.liveConnections: bad values are refused naming the key', () => {
    const c = validateConfig({});
    assert.equal(c.cluster.liveConnections, 4);
    assert.equal(validateConfig({ mqtt: { intakeBudgetMs: 25 } }).mqtt.intakeBudgetMs, 25);
    assert.equal(validateConfig({ mqtt: { intakeBudgetMs: null } }).mqtt.intakeBudgetMs, null);
    assert.equal(validateConfig({ cluster: { liveConnections: 1 } }).cluster.liveConnections, 1);
    const bad: [string, string, unknown][] = [
      ['mqtt', 'intakeBudgetMs', -1],
      ['mqtt', 'intakeBudgetMs', 2.5],
      ['mqtt', 'intakeBudgetMs', '10ms'],
      ['mqtt', 'intakeBudgetMs', 10_001],
      ['cluster', 'liveConnections', 0],
      ['cluster', 'liveConnections', 1.5],
      ['cluster', 'liveConnections', 17],
      ['cluster', 'liveConnections', 'four'],
    ];
    for (const [section, key, value] of bad) {
      assert.throws(
        () => validateConfig({ [section]: { [key]: value } }),
        (err: unknown) =>
          err instanceof ConfigError && new RegExp(`${section}\\.${key}\\b`).test(err.message),
        `${section}.${key}: ${String(value)}`,
      );
    }
  });

  test('mqtt.queueOverflow takes one of its policies only; drop-new is the default', () => {
    assert.equal(validateConfig({}).mqtt.queueOverflow, 'drop-new');
    assert.equal(validateConfig({ mqtt: { queueOverflow: 'disconnect' } }).mqtt.queueOverflow, 'disconnect');
    assert.throws(
      () => validateConfig({ mqtt: { queueOverflow: 'lose-quietly' } }),
      (err: unknown) => err instanceof ConfigError && /mqtt\.queueOverflow/.test(err.message),
    );
  });

  test('a YAML file with limits, listeners and storage; relative paths resolve against the file', () => {
    writeFileSync(join(dir, 'cert.pem'), 'not really a cert');
    writeFileSync(join(dir, 'key.pem'), 'not really a key');
    const file = writeYaml(
      'full.yaml',
      [
        'listeners:',
        '  - { name: plain, type: tcp, port: 1884, host: 127.0.0.1 }',
        '  - { name: secure, type: tls, port: 8884, tls: { cert: cert.pem, key: key.pem } }',
        '  - { name: browser, type: ws, port: 8084 }',
        'mqtt:',
        '  maxPacketSize: 65536',
        '  offlineQueueLimit: 50',
        'dataDir: state',
        'storage: { driver: memory }',
        'log: { level: debug }',
        '',
      ].join('\n'),
    );
    const config = loadConfigFile(file);
    assert.equal(config.mqtt.maxPacketSize, 65536);
    assert.equal(config.mqtt.offlineQueueLimit, 50);
    assert.equal(config.mqtt.receiveMaximum, defaultLimits.receiveMaximum);
    assert.equal(config.listeners[0]?.host, '127.0.0.1');
    assert.equal(config.listeners[1]?.host, '0.0.0.0');
    assert.deepEqual(config.listeners[1]?.tls, {
      cert: join(dir, 'cert.pem'),
      key: join(dir, 'key.pem'),
      requestCert: false,
    });
    assert.equal(config.listeners[2]?.path, '/mqtt', 'ws path defaults to /mqtt');
    assert.equal(config.dataDir, join(dir, 'state'));
    assert.equal(config.storage.driver, 'memory');
    assert.equal(config.log.level, 'debug');
  });

  test('an empty file is the default config', () => {
    const config = loadConfigFile(writeYaml('empty.yaml', ''));
    assert.equal(config.listeners.length, 2);
  });
});

describe('config: errors name the key and the file', () => {
  test('unknown key, with a did-you-mean', () => {
    const file = writeYaml('typo.yaml', 'listners: []\n');
    const err = configError(() => loadConfigFile(file));
    assert.equal(err.code, 'BW_ERR_CONFIG_INVALID');
    assert.equal(err.message, `config error in ${file}: unknown key "listners" (did you mean "listeners"?)`);
  });

  test('unknown nested key, with the full path', () => {
    const err = configError(() =>
      validateConfig({ mqtt: { maxPaketSize: 10 } }, { source: '/x/breakwater.yaml' }),
    );
    assert.equal(
      err.message,
      'config error in /x/breakwater.yaml: unknown key "mqtt.maxPaketSize" (did you mean "mqtt.maxPacketSize"?)',
    );
  });

  test('unknown key that is a known rename gets the hint instead', () => {
    const err = configError(() => validateConfig({ logLevel: 'debug' }, { source: '/x/b.yaml' }));
    assert.equal(err.message, 'config error in /x/b.yaml: unknown key "logLevel" (use log.level)');
  });

  test('bad value: key, expectation and the value given', () => {
    const file = writeYaml('bad.yaml', 'mqtt:\n  maxPacketSize: big\n');
    const err = configError(() => loadConfigFile(file));
    assert.equal(
      err.message,
      `config error in ${file}: mqtt.maxPacketSize must be an integer between 1 and 268435455 (got "big")`,
    );
  });

  test('bad values inside a list name the index; all problems are reported at once', () => {
    const err = configError(() =>
      validateConfig(
        { listeners: [{ name: 'a', type: 'tcpp', port: 70000 }], http: { port: -1 } },
        { source: 'f.yaml' },
      ),
    );
    assert.deepEqual(err.problems, [
      'listeners[0].type must be one of "tcp", "tls", "ws", "wss" (got "tcpp")',
      'listeners[0].port must be an integer between 0 and 65535 (got 70000)',
      'http.port must be an integer between 0 and 65535 (got -1)',
    ]);
    assert.match(err.message, /^config error in f\.yaml:\n {2}- listeners\[0\]\.type/);
  });

  test('a listen backlog outside 1..65535 names the listener key', () => {
    const err = configError(() =>
      validateConfig({ listeners: [{ name: 'a', type: 'tcp', port: 0, backlog: 0 }] }, { source: 'f.yaml' }),
    );
    assert.deepEqual(err.problems, ['listeners[0].backlog must be an integer between 1 and 65535 (got 0)']);
  });

  test('a tcp listener engine other than handle or net names the listener key', () => {
    const err = configError(() =>
      validateConfig(
        { listeners: [{ name: 'a', type: 'tcp', port: 0, engine: 'uv' }] },
        { source: 'f.yaml' },
      ),
    );
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0]!, /^listeners\[0\]\.engine must be one of/);
    assert.match(err.problems[0]!, /handle/);
    const ok = validateConfig(
      { listeners: [{ name: 'a', type: 'tcp', port: 0, engine: 'net' }] },
      { source: 'f.yaml' },
    );
    assert.equal(ok.listeners[0]!.engine, 'net');
  });

  test('a missing required key', () => {
    const err = configError(() =>
      validateConfig({ listeners: [{ name: 'a', type: 'tcp' }] }, { source: 'f.yaml' }),
    );
    assert.deepEqual(err.problems, ['listeners[0].port is required']);
  });

  test('cross-field rules: tls needs certificates, path only on ws, names unique', () => {
    const err = configError(() =>
      validateConfig(
        {
          listeners: [
            { name: 'a', type: 'tls', port: 1 },
            { name: 'a', type: 'tcp', port: 2, path: '/mqtt' },
          ],
        },
        { source: 'f.yaml' },
      ),
    );
    assert.deepEqual(err.problems, [
      'listeners[0].tls is required for type "tls"',
      'listeners[1].name "a" is already used by listeners[0]',
      'listeners[1].path is only allowed for type "ws" or "wss"',
    ]);
  });

  test('a certificate file that cannot be read names the key and the path', () => {
    const err = configError(() =>
      validateConfig(
        { listeners: [{ name: 's', type: 'tls', port: 1, tls: { cert: 'nope.pem', key: 'nope.key' } }] },
        { source: 'f.yaml', baseDir: dir },
      ),
    );
    assert.deepEqual(err.problems, [
      `listeners[0].tls.cert: cannot read ${join(dir, 'nope.pem')} (ENOENT)`,
      `listeners[0].tls.key: cannot read ${join(dir, 'nope.key')} (ENOENT)`,
    ]);
  });

  test('invalid YAML: BW_ERR_CONFIG_FILE with the file and the line', () => {
    const file = writeYaml('broken.yaml', 'mqtt:\n  maxPacketSize: 10\n   bad: [\n');
    const err = configError(() => loadConfigFile(file));
    assert.equal(err.code, 'BW_ERR_CONFIG_FILE');
    assert.match(
      err.message,
      new RegExp(`^config error in ${file}: invalid YAML: .* at line \\d+, column \\d+$`),
    );
  });

  test('a duplicated key in YAML is an error, not a silent override', () => {
    const file = writeYaml('dup.yaml', 'dataDir: a\ndataDir: b\n');
    const err = configError(() => loadConfigFile(file));
    assert.equal(err.code, 'BW_ERR_CONFIG_FILE');
    assert.match(err.message, /invalid YAML: Map keys must be unique/);
  });

  test('a YAML file that is not a mapping', () => {
    const file = writeYaml('list.yaml', '- 1\n- 2\n');
    const err = configError(() => loadConfigFile(file));
    assert.equal(
      err.message,
      `config error in ${file}: the configuration must be a mapping of keys to values (got [1,2])`,
    );
  });

  test('a missing file: BW_ERR_CONFIG_FILE naming it', () => {
    const file = join(dir, 'does-not-exist.yaml');
    const err = configError(() => loadConfigFile(file));
    assert.equal(err.code, 'BW_ERR_CONFIG_FILE');
    assert.equal(err.message, `config error in ${file}: file not found`);
  });

  test('without a file, messages name the command-line flags', () => {
    const err = configError(() => validateConfig({ http: { port: 'x' } }));
    assert.equal(err.source, FLAGS_SOURCE);
    assert.match(err.message, /^config error in command-line flags: http\.port must be/);
  });

  test('the override hook runs before the cross-field checks and the freeze', () => {
    const config = validateConfig(
      {},
      {
        override: (c) => {
          c.listeners.push({ name: 'extra', type: 'ws', host: '127.0.0.1', port: 0 });
        },
      },
    );
    assert.equal(config.listeners[2]?.path, '/mqtt');
    assert.ok(Object.isFrozen(config.listeners[2]));
  });
});
