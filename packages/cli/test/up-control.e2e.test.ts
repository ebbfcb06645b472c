import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { connect, events, startUp, tempDir, waitFor } from './up-helpers.js';

// `breakwater up` serves the control plane (issue 5): the real executable as a child process,
// real sockets on port 0.

describe('breakwater up: control plane', () => {
  test('serves the control plane: admin key from the data dir, presence feed marks a device online', async () => {
    const dataDir = tempDir();
    const { cli, mqttUrl, httpBase, controlBase } = await startUp(dataDir);
    assert.equal(controlBase, httpBase, 'the control API is on the HTTP port');
    const keyFile = join(dataDir, 'admin.key');
    const key = readFileSync(keyFile, 'utf8').trim();
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const [, printed] = await cli.waitForStdout(
      /admin API key \(created (\S+), mode 0600; shown only now\): (\S+)/,
    );
    assert.equal(printed, keyFile);
    assert.match(
      cli.stdout,
      new RegExp(`shown only now\\): ${key}\n`),
      'the key printed is the one in the file',
    );
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${httpBase}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      });

    assert.equal((await fetch(`${httpBase}/api/v1/devices`)).status, 401, 'no key, no answer');
    const created = await api('/api/v1/devices', {
      method: 'POST',
      body: JSON.stringify({ id: 'e2e-sensor', tags: ['eu'] }),
    });
    assert.equal(created.status, 201);
    // The broker's admin API on the same instance still answers (its token, not the API key).
    const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    const authn = await fetch(`${httpBase}/api/v1/listeners/mqtt/authn`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(authn.status, 200);
    assert.equal((await fetch(`${httpBase}/.well-known/jwks.json`)).status, 200);

    interface Device {
      connectionState: string;
      lastSeen: string | null;
      lastDisconnectReason: string | null;
    }
    const deviceIn = (state: string) =>
      waitFor(async () => {
        const d = (await (await api('/api/v1/devices/e2e-sensor')).json()) as Device;
        return d.connectionState === state ? d : null;
      }, `e2e-sensor ${state}`);
    const client = await connect(mqttUrl, { protocolVersion: 5, clientId: 'e2e-sensor' });
    const online = await deviceIn('online');
    assert.ok(online.lastSeen, 'last seen is set');

    await client.endAsync();
    const offline = await deviceIn('offline');
    assert.ok(offline.lastDisconnectReason, 'the disconnect reason is recorded');

    // A restart does not create (or print) another key.
    cli.child.kill('SIGTERM');
    assert.equal((await cli.exited).code, 0);
    const second = await startUp(dataDir);
    assert.doesNotMatch(second.cli.stdout, /admin API key/);
    assert.equal(readFileSync(keyFile, 'utf8').trim(), key);
  });

  test('a jwt authenticator without a key source verifies against the local JWKS', async () => {
    const dataDir = tempDir();
    const file = join(dataDir, 'breakwater.yaml');
    writeFileSync(
      file,
      'guard:\n  authenticators:\n    jwt:\n      fleet: {}\n  listeners:\n    mqtt:\n      authn: [fleet]\n',
    );
    const { mqttUrl, httpBase } = await startUp(dataDir, ['--config', file]);
    const key = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
    const post = async (path: string, body: unknown) =>
      fetch(`${httpBase}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.equal((await post('/api/v1/devices', { id: 'jwt-dev' })).status, 201);
    const minted = (await (await post('/api/v1/tokens', { deviceId: 'jwt-dev', ttl: 600 })).json()) as {
      token: string;
    };

    const client = await connect(mqttUrl, {
      protocolVersion: 5,
      clientId: 'jwt-dev',
      username: 'jwt-dev',
      password: minted.token,
    });
    assert.ok(client.connected);

    const refused = mqtt.connect(mqttUrl, {
      protocolVersion: 5,
      clientId: 'jwt-dev-2',
      username: 'jwt-dev-2',
      password: minted.token, // sub is jwt-dev, not this client id
      reconnectPeriod: 0,
    });
    after(() => refused.end(true));
    const [err] = (await once(events(refused), 'error')) as [{ code?: number }];
    assert.equal(err.code, 0x86, 'bad user name or password');
  });
});
