import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { CliProcess } from './cli-process.js';

// Break-glass and passwd end to end: `breakwater up` as a child process with a guard whose auth
// backend is down, driven by the real `breakwater listener …` and `breakwater passwd` commands.

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = fileURLToPath(new URL('../bin/breakwater.js', import.meta.url));

/** Runs the CLI to completion with the given stdin and extra environment. */
function run(args: string[], o: { stdin?: string; env?: Record<string, string> } = {}) {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', bin, ...args], {
    cwd: root,
    env: { ...process.env, BREAKWATER_ADMIN_TOKEN: '', ...o.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  child.stdin.end(o.stdin ?? '');
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  );
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bw-cli-admin-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** CONNACK reason code of one MQTT 5 connect attempt (0 = admitted). */
async function connectCode(url: string): Promise<number> {
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: 'dev-c',
    username: 'dev-c',
    password: 'pw',
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once('connect', () => resolve(0));
      client.once('error', (err: Error & { code?: number }) =>
        typeof err.code === 'number' ? resolve(err.code) : reject(err),
      );
    });
  } finally {
    await client.endAsync(true);
  }
}

describe('breakwater passwd', () => {
  test('adds a user from stdin (mode 0600); bad input exits 1 with a clear error', async () => {
    const file = join(tempDir(), 'passwords');
    const ok = await run(['passwd', file, 'dev-1'], { stdin: 's3cret\n' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(readFileSync(file, 'utf8'), /^dev-1:\$scrypt\$/m);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const empty = await run(['passwd', file, 'dev-2'], { stdin: '' });
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /empty password \[BW_ERR_PASSWORD_FILE\]/);
    const badUser = await run(['passwd', file, 'bad user'], { stdin: 'x\n' });
    assert.equal(badUser.code, 1);
    assert.match(badUser.stderr, /invalid user name/);
  });
});

describe('breakwater listener bypass-authn / restore-authn (against breakwater up)', () => {
  test('a client whose backend is down gets 0x88, is admitted during the bypass, refused again after restore', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const config = join(dir, 'breakwater.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        listeners: [{ name: 'mqtt', type: 'tcp', host: '127.0.0.1', port: 0 }],
        http: { host: '127.0.0.1', port: 0 },
        storage: { driver: 'memory' },
        dataDir,
        log: { level: 'warn' },
        guard: {
          // Nothing listens on port 1: every auth call fails.
          authenticators: { http: { down: { url: 'http://127.0.0.1:1/auth' } } },
          listeners: { mqtt: { authn: ['down'] } },
        },
      }),
    );
    const up = new CliProcess(['up', '--config', config]);
    after(() => up.stop());
    const [mqttUrl] = await up.waitForStdout(/mqtt:\/\/127\.0\.0\.1:\d+/);
    const [metricsUrl] = await up.waitForStdout(/http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const [, printedToken] = await up.waitForStdout(/admin token \(created [^)]*\): (\S+)/);
    const url = metricsUrl.replace(/\/metrics$/, '');
    const tokenFile = join(dataDir, 'admin.token');
    assert.equal(readFileSync(tokenFile, 'utf8').trim(), printedToken);
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);

    assert.equal(await connectCode(mqttUrl), 0x88, 'backend down: server unavailable, not a deny');

    const admin = ['--url', url, '--token-file', tokenFile];
    const noToken = await run([
      'listener',
      'bypass-authn',
      'mqtt',
      '--ttl',
      '30m',
      '--reason',
      'pg down',
      '--url',
      url,
      '--token-file',
      join(dir, 'nope'),
    ]);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /cannot read .*nope.*\[BW_ERR_ADMIN_TOKEN\]/);
    const wrongTokenFile = join(dir, 'wrong.token');
    writeFileSync(wrongTokenFile, 'not-the-admin-token-at-all\n');
    const wrong = await run([
      'listener',
      'bypass-authn',
      'mqtt',
      '--ttl',
      '30m',
      '--reason',
      'pg down',
      '--url',
      url,
      '--token-file',
      wrongTokenFile,
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /401: missing or invalid admin token/);
    const badTtl = await run([
      'listener',
      'bypass-authn',
      'mqtt',
      '--ttl',
      'forever',
      '--reason',
      'pg down',
      ...admin,
    ]);
    assert.equal(badTtl.code, 1);
    assert.match(badTtl.stderr, /--ttl forever: use a duration such as 90s, 30m or 2h/);
    const unknown = await run([
      'listener',
      'bypass-authn',
      'nosuch',
      '--ttl',
      '30m',
      '--reason',
      'pg down',
      ...admin,
    ]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /404: no listener named "nosuch"/);
    const missingReason = await run(['listener', 'bypass-authn', 'mqtt', '--ttl', '30m', ...admin]);
    assert.equal(missingReason.code, 1);
    assert.match(missingReason.stderr, /--reason/);

    const bypass = await run([
      'listener',
      'bypass-authn',
      'mqtt',
      '--ttl',
      '30m',
      '--reason',
      'pg credential rotated wrong',
      ...admin,
    ]);
    assert.equal(bypass.code, 0, bypass.stderr);
    assert.match(bypass.stdout, /authentication bypassed on listener mqtt until \d{4}-/);
    assert.equal(await connectCode(mqttUrl), 0, 'admitted without the backend');
    const metrics = await (await fetch(metricsUrl)).text();
    assert.match(metrics, /^breakwater_auth_bypass_active\{listener="mqtt"\} 1$/m);
    assert.match(metrics, /^breakwater_auth_total\{listener="mqtt",method="bypass",outcome="bypass"\} 1$/m);
    assert.match(metrics, /^# HELP breakwater_admission_refused_total /m);
    const audit = readFileSync(join(dataDir, 'audit.log'), 'utf8').trim().split('\n');
    const entry = JSON.parse(audit[0]!) as Record<string, string>;
    assert.equal(entry.action, 'bypass-authn');
    assert.equal(entry.reason, 'pg credential rotated wrong');
    assert.match(entry.actor!, /@/);
    assert.ok(Date.parse(entry.until!) > Date.parse(entry.at!));

    const status = await run(['listener', 'authn', 'mqtt', '--url', url], {
      env: { BREAKWATER_ADMIN_TOKEN: printedToken! },
    });
    assert.equal(status.code, 0, status.stderr);
    assert.equal(
      (JSON.parse(status.stdout) as { bypass: { reason: string } }).bypass.reason,
      'pg credential rotated wrong',
    );

    const restore = await run(['listener', 'restore-authn', 'mqtt', ...admin]);
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /authentication restored on listener mqtt/);
    assert.equal(await connectCode(mqttUrl), 0x88, 'back to the (still broken) backend');
    assert.equal(readFileSync(join(dataDir, 'audit.log'), 'utf8').trim().split('\n').length, 2);
  });

  test('the admin API is unreachable: exit 1 naming the URL', async () => {
    const dir = tempDir();
    const tokenFile = join(dir, 'admin.token');
    writeFileSync(tokenFile, 'some-token-long-enough-0123\n');
    const r = await run([
      'listener',
      'restore-authn',
      'mqtt',
      '--url',
      'http://127.0.0.1:1',
      '--token-file',
      tokenFile,
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /broker admin API cannot be reached: http:\/\/127\.0\.0\.1:1 .*\[BW_ERR_ADMIN_UNREACHABLE\]/,
    );
  });
});
