// `breakwater passwd --format` through the CLI's main() in-process (argument parsing included),
// and the Mosquitto format checked against a real Mosquitto 2 broker reading the file we wrote.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { verifyPassword } from '@breakwater/broker';
import mqtt from 'mqtt';
import { main } from '../src/index.js';

const MOSQUITTO = '/usr/sbin/mosquitto';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bw-cli-passwd-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `breakwater <args>` in-process with `input` on stdin. */
async function cli(args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const code = await main(['node', 'breakwater', ...args], {
    stdout,
    stderr,
    stdin: Readable.from([Buffer.from(input)]),
    env: {},
  });
  return { code, stdout: out, stderr: err };
}

function entry(file: string, user: string): string {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  assert.ok(line, `${user} in ${file}`);
  return line.slice(user.length + 1);
}

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** CONNACK return code of a v3.1.1 connect (0 accepted, 5 not authorized). */
async function connectCode(port: number, username: string, password: string): Promise<number> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    protocolVersion: 4,
    username,
    password,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once('connect', () => resolve(0));
      client.once('error', (e: Error & { code?: number }) =>
        typeof e.code === 'number' ? resolve(e.code) : reject(e),
      );
    });
  } finally {
    await client.endAsync(true);
  }
}

describe('breakwater passwd --format', () => {
  test('bcrypt and pbkdf2 entries verify; --cost is bounded; unknown formats are refused', async () => {
    const file = join(tempDir(), 'passwords');
    const b = await cli(['passwd', '--format', 'bcrypt', '--cost', '5', file, 'dev-b'], 'pw-b\n');
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /dev-b updated in .* \(bcrypt\)/);
    const p = await cli(['passwd', '--format', 'pbkdf2-sha256', '--cost', '2000', file, 'dev-p'], 'pw-p\n');
    assert.equal(p.code, 0, p.stderr);
    assert.match(entry(file, 'dev-b'), /^\$2b\$05\$.{53}$/);
    assert.match(entry(file, 'dev-p'), /^\$pbkdf2-sha256\$2000\$/);
    assert.equal(await verifyPassword(Buffer.from('pw-b'), entry(file, 'dev-b')), true);
    assert.equal(await verifyPassword(Buffer.from('pw-p'), entry(file, 'dev-p')), true);

    const tooHigh = await cli(['passwd', '--format', 'bcrypt', '--cost', '40', file, 'dev-x'], 'x\n');
    assert.equal(tooHigh.code, 1);
    assert.match(tooHigh.stderr, /cost 40 is outside 4\.\.16 \[BW_ERR_AUTH_HASH_FORMAT\]/);
    const scryptCost = await cli(['passwd', '--cost', '5', file, 'dev-x'], 'x\n');
    assert.equal(scryptCost.code, 1);
    assert.match(scryptCost.stderr, /--cost applies to bcrypt/);
    const unknown = await cli(['passwd', '--format', 'md5', file, 'dev-x'], 'x\n');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /'md5' is invalid/);
    assert.equal(readFileSync(file, 'utf8').includes('dev-x:'), false, 'refused entries are not written');
  });

  test('--format mosquitto writes $7$ entries that a real Mosquitto 2 broker accepts', async (t) => {
    if (!existsSync(MOSQUITTO)) {
      if (process.env.CI === 'true')
        throw new Error(`${MOSQUITTO} missing (CI=true: scripts/setup-test.sh installs it)`);
      t.skip(`${MOSQUITTO} is not installed`);
      return;
    }
    const dir = tempDir();
    const file = join(dir, 'passwords');
    const r = await cli(['passwd', '--format', 'mosquitto', '--cost', '1000', file, 'dev-m'], 'pässwörd-m\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(entry(file, 'dev-m'), /^\$7\$1000\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);

    const port = await freePort();
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous false',
        `password_file ${file}`,
        'persistence false',
        'log_dest stderr',
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        '',
      ].join('\n'),
    );
    const mosq = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    t.after(() => {
      mosq.kill('SIGKILL');
    });
    let log = '';
    mosq.stderr.setEncoding('utf8').on('data', (d: string) => {
      log += d;
    });
    // Mosquitto logs "… running" once its listener is open.
    const deadline = Date.now() + 10_000;
    while (!/running/.test(log) && Date.now() < deadline && mosq.exitCode === null)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.match(log, /running/, `mosquitto did not start: ${log}`);
    assert.equal(await connectCode(port, 'dev-m', 'pässwörd-m'), 0);
    assert.equal(await connectCode(port, 'dev-m', 'wrong'), 5);
  });
});
