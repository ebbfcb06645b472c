import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import { AttemptLimiter } from '../src/devices/rate-limit.js';
import { hashDeviceSecret, verifyDeviceSecret } from '../src/devices/secret.js';
import { ApiError } from '../src/errors.js';
import { fieldPath } from '../src/http/errors.js';
import { requireTargeted } from '../src/selector.js';
import { SqliteControlStorage } from '../src/storage/sqlite.js';
import { TokenIssuer } from '../src/tokens/issuer.js';
import { decryptPrivateKey, encryptPrivateKey, loadOrCreateKek } from '../src/tokens/key-encryption.js';

it('an empty selector is refused for actions unless all: true', () => {
  assert.throws(
    () => requireTargeted({}),
    (err) => err instanceof ApiError && err.code === 'BW_ERR_API_VALIDATION' && err.field === 'selector',
  );
  assert.doesNotThrow(() => requireTargeted({ all: true }));
  assert.doesNotThrow(() => requireTargeted({ cohort: 'canary' }));
});

it('device secrets: PHC scrypt strings that verify only the right secret', async () => {
  const hash = await hashDeviceSecret('bws_abc');
  assert.match(hash, /^\$scrypt\$ln=10,r=8,p=1\$/);
  assert.equal(await verifyDeviceSecret('bws_abc', hash), true);
  assert.equal(await verifyDeviceSecret('bws_abd', hash), false);
  assert.equal(await verifyDeviceSecret('bws_abc', hash.replace('ln=10', 'ln=30')), false, 'cost bound');
  assert.equal(await verifyDeviceSecret('bws_abc', 'garbage'), false);
});

it('attempt limiter: fixed window per id, bounded memory', () => {
  const clock = new FakeClock();
  const l = new AttemptLimiter({ clock, max: 2, windowMs: 10_000, maxTracked: 2 });
  assert.equal(l.take('a'), 0);
  assert.equal(l.take('a'), 0);
  assert.equal(l.take('a'), 10);
  assert.equal(l.take('b'), 0, 'per id');
  clock.advance(4000);
  assert.equal(l.take('a'), 6);
  l.take('c'); // evicts the oldest entry ('a')
  assert.equal(l.take('a'), 0, 'evicted ids start a new window');
});

it('validation field paths', () => {
  assert.equal(fieldPath('/tags/0'), 'tags[0]');
  assert.equal(fieldPath('/3/id', 'rows'), 'rows[3].id');
  assert.equal(fieldPath('/selector/ids/2'), 'selector.ids[2]');
  assert.equal(fieldPath('/a~1b'), 'a/b');
});

it('signing keys are encrypted at rest; the KEK file is 0600; a wrong KEK is BW_ERR_SIGNING_KEY', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bw-kek-'));
  const storage = SqliteControlStorage.open({ file: join(dir, 'control.db') });
  t.after(async () => {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  });
  const kek = loadOrCreateKek(dir);
  assert.equal((await stat(join(dir, 'signing-keys.kek'))).mode & 0o777, 0o600);
  assert.deepEqual(loadOrCreateKek(dir), kek, 'read back, not regenerated');
  const clock = new FakeClock();
  const issuer = new TokenIssuer({ storage, kek, clock });
  await issuer.init();
  const [row] = await storage.signingKeys.list();
  assert.ok(row && !row.privateKey.includes('"d"'), 'no plaintext private key in storage');
  assert.match(row.privateKey, /^v1\./);
  const other = new TokenIssuer({ storage, kek: Buffer.alloc(32, 7), clock });
  await assert.rejects(
    other.mint('d1', 60),
    (err) => err instanceof ApiError && err.code === 'BW_ERR_SIGNING_KEY',
  );
  const sealed = encryptPrivateKey(kek, 'kid-a', 'secret');
  assert.equal(decryptPrivateKey(kek, 'kid-a', sealed), 'secret');
  assert.throws(() => decryptPrivateKey(kek, 'kid-b', sealed), /cannot decrypt/, 'bound to its kid');
});
