import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError } from '@breakwater/broker';
import { resolveUpConfig } from '../src/up-config.js';

// `control` section of breakwater.yaml as `breakwater up` resolves it, and the jwt authenticator
// defaulting to the control plane's own JWKS.

function configFile(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'bw-up-control-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'breakwater.yaml');
  writeFileSync(file, yaml);
  return file;
}

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

test('default: SQLite at <dataDir>/control.db', () => {
  const up = resolveUpConfig({ dataDir: '/var/lib/bw' }, '/tmp');
  assert.deepEqual(up.control, { driver: 'sqlite', file: '/var/lib/bw/control.db' });
  assert.deepEqual(up.localJwks, []);
});

test('a relative control.storage.file resolves against the config file directory', () => {
  const file = configFile('control:\n  storage:\n    file: db/fleet.db\n');
  const up = resolveUpConfig({ config: file });
  assert.deepEqual(up.control, { driver: 'sqlite', file: join(file, '..', 'db', 'fleet.db') });
});

test('postgres takes a URL and an optional schema', () => {
  const file = configFile(
    'control:\n  storage:\n    driver: postgres\n    url: postgres://bw:secret@db:5432/fleet\n    schema: fleet_cp\n',
  );
  assert.deepEqual(resolveUpConfig({ config: file }).control, {
    driver: 'postgres',
    url: 'postgres://bw:secret@db:5432/fleet',
    schema: 'fleet_cp',
  });
});

test('cross-key errors name the key', () => {
  assert.deepEqual(
    problems(() => resolveUpConfig({ config: configFile('control:\n  storage:\n    driver: postgres\n') })),
    ['control.storage.url is required with driver "postgres"'],
  );
  assert.deepEqual(
    problems(() =>
      resolveUpConfig({
        config: configFile('control:\n  storage:\n    url: postgres://db/fleet\n'),
      }),
    ),
    ['control.storage.url is only allowed with driver "postgres"'],
  );
  const schemaProblems = problems(() =>
    resolveUpConfig({ config: configFile('control:\n  storage:\n    driver: mysql\n') }),
  );
  assert.match(schemaProblems[0]!, /^control\.storage\.driver must be one of/);
});

test('control disabled (or HTTP disabled): no control plane', () => {
  assert.equal(resolveUpConfig({ config: configFile('control:\n  enabled: false\n') }).control, null);
  assert.equal(resolveUpConfig({ config: configFile('http:\n  enabled: false\n') }).control, null);
});

test('a jwt authenticator without a key source verifies against the local JWKS', () => {
  const file = configFile(
    [
      'http: { host: 0.0.0.0, port: 9080 }',
      'guard:',
      '  authenticators:',
      '    jwt:',
      '      fleet: {}',
      '      partner: { jwksUrl: "https://idp.example/jwks.json", issuer: partner }',
      '  listeners:',
      '    mqtt: { authn: [fleet, partner] }',
    ].join('\n'),
  );
  const up = resolveUpConfig({ config: file });
  assert.deepEqual(up.localJwks, ['fleet']);
  const jwt = up.config.guard.authenticators.jwt;
  assert.equal(jwt.fleet!.jwksUrl, 'http://127.0.0.1:9080/.well-known/jwks.json');
  assert.equal(jwt.fleet!.issuer, 'breakwater');
  assert.equal(jwt.fleet!.audience, 'breakwater-mqtt');
  assert.equal(jwt.partner!.jwksUrl, 'https://idp.example/jwks.json', 'an explicit source is kept');
  assert.equal(jwt.partner!.audience, undefined);

  // Without the control plane there is no local JWKS: the guard's own rule applies.
  const off = configFile(
    'control: { enabled: false }\nguard:\n  authenticators:\n    jwt:\n      fleet: {}\n  listeners:\n    mqtt: { authn: [fleet] }\n',
  );
  assert.match(
    problems(() => resolveUpConfig({ config: off })).join('\n'),
    /set exactly one of jwksUrl, publicKeyFile/,
  );
});
