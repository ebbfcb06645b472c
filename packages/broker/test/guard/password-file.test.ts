import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import {
  type PasswordFileAuthenticator,
  upsertPasswordEntry,
} from '../../src/guard/authenticators/password-file.js';
import { Guard } from '../../src/guard/guard.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { connect, tempDir } from './helpers.js';

const fast = { ln: 8, r: 8, p: 1 };

function setup(t: { after: (fn: () => unknown) => void }, file: string, dataDir: string, clock: FakeClock) {
  const guard = new Guard(
    {
      authenticators: {
        passwordFile: { local: { path: file, pollIntervalMs: 1000 } },
        anonymous: { anon: {} },
      },
      listeners: { mqtt: { authn: ['local'] }, open: { authn: ['local', 'anon'] } },
    },
    { clock, dataDir },
  );
  t.after(() => guard.close());
  return { guard, auth: () => guard.authenticator('local') as PasswordFileAuthenticator };
}

describe('password-file authenticator', () => {
  it('upsertPasswordEntry writes scrypt PHC entries (mode 0600) and replaces existing users', async (t) => {
    const tmp = tempDir('pwfile');
    t.after(tmp.cleanup);
    const file = join(tmp.dir, 'passwd');
    await upsertPasswordEntry(file, 'alice', 'one', fast);
    await upsertPasswordEntry(file, 'bob', 'two', fast);
    await upsertPasswordEntry(file, 'alice', 'three', fast);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^alice:\$scrypt\$ln=8,r=8,p=1\$/);
    assert.match(lines[1]!, /^bob:\$scrypt\$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    await assert.rejects(upsertPasswordEntry(file, 'bad:name', 'x', fast), /invalid user name/);
  });

  it('allows, denies (0x86) and passes unknown users down the chain', async (t) => {
    const tmp = tempDir('pwfile');
    t.after(tmp.cleanup);
    const file = join(tmp.dir, 'passwd');
    await upsertPasswordEntry(file, 'alice', 'secret', fast);
    const { guard } = setup(t, file, tmp.dir, new FakeClock());
    assert.equal(
      (await guard.authenticate(connect('d1', { username: 'alice', password: 'secret' }))).ok,
      true,
    );
    const bad = await guard.authenticate(connect('d1', { username: 'alice', password: 'Secret' }));
    assert.ok(!bad.ok);
    assert.equal(bad.reasonCode, ReasonCode.BadUserNameOrPassword);
    assert.equal((await guard.authenticate(connect('d2', { username: 'mallory', password: 'x' }))).ok, false);
    assert.equal(
      (await guard.authenticate(connect('d2', { username: 'mallory', password: 'x', listener: 'open' }))).ok,
      true,
      'unknown user passed on to the anonymous authenticator',
    );
  });

  it('reloads the file when it changes (stat polling on the clock)', async (t) => {
    const tmp = tempDir('pwfile');
    t.after(tmp.cleanup);
    const file = join(tmp.dir, 'passwd');
    await upsertPasswordEntry(file, 'alice', 'old', fast);
    const clock = new FakeClock();
    const { guard, auth } = setup(t, file, tmp.dir, clock);
    assert.equal((await guard.authenticate(connect('d1', { username: 'alice', password: 'old' }))).ok, true);
    await upsertPasswordEntry(file, 'alice', 'new', fast);
    await upsertPasswordEntry(file, 'carol', 'c', fast);
    clock.advance(1000); // the poll timer fires a reload
    await auth().reload(); // joins the reload in flight
    assert.equal(auth().userCount, 2);
    assert.equal((await guard.authenticate(connect('d1', { username: 'alice', password: 'old' }))).ok, false);
    assert.equal((await guard.authenticate(connect('d1', { username: 'alice', password: 'new' }))).ok, true);
    assert.equal((await guard.authenticate(connect('d3', { username: 'carol', password: 'c' }))).ok, true);
  });

  it('unreadable at start → 0x88 (not a deny) until it can be read; unreadable later keeps the last good users', async (t) => {
    const tmp = tempDir('pwfile');
    t.after(tmp.cleanup);
    const file = join(tmp.dir, 'passwd');
    // A directory in place of the file: unreadable even for root (chmod 000 is not).
    mkdirSync(file);
    const clock = new FakeClock();
    const { guard, auth } = setup(t, file, tmp.dir, clock);
    const d = await guard.authenticate(connect('d1', { username: 'alice', password: 'pw' }));
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.ServerUnavailable);
    rmSync(file, { recursive: true });
    await upsertPasswordEntry(file, 'alice', 'pw', fast);
    await auth().reload();
    assert.equal((await guard.authenticate(connect('d1', { username: 'alice', password: 'pw' }))).ok, true);
    rmSync(file);
    mkdirSync(file);
    await auth().reload();
    assert.equal(auth().userCount, 1);
    assert.equal((await guard.authenticate(connect('d1', { username: 'alice', password: 'pw' }))).ok, true);
  });
});
