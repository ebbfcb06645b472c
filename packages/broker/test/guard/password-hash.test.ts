import assert from 'node:assert/strict';
import { createHash, pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { GuardError } from '../../src/guard/errors.js';
import { hashPasswordScrypt, verifyPassword } from '../../src/guard/password-hash.js';

const pw = (s: string) => Buffer.from(s, 'utf8');
const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

describe('verifyPassword: every supported hash format', () => {
  it('PHC scrypt written by hashPasswordScrypt, and one computed independently', async () => {
    const h = await hashPasswordScrypt('s3cret', { ln: 10, r: 8, p: 1 });
    assert.match(h, /^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    assert.equal(await verifyPassword(pw('s3cret'), h), true);
    assert.equal(await verifyPassword(pw('s3creT'), h), false);

    const salt = randomBytes(16);
    const hash = scryptSync('hunter2', salt, 32, { N: 2 ** 6, r: 4, p: 2 });
    const phc = `$scrypt$ln=6,r=4,p=2$${b64(salt)}$${b64(hash)}`;
    assert.equal(await verifyPassword(pw('hunter2'), phc), true);
    assert.equal(await verifyPassword(pw('hunter3'), phc), false);
  });

  it('pbkdf2-sha256 and -sha512, PHC (i=) and passlib (ab64) forms, incl. the passlib reference vector', async () => {
    // passlib documentation vector: pbkdf2_sha256, 6400 rounds, password "password".
    const passlib = '$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M';
    assert.equal(await verifyPassword(pw('password'), passlib), true);
    assert.equal(await verifyPassword(pw('Password'), passlib), false);

    for (const digest of ['sha256', 'sha512'] as const) {
      const salt = randomBytes(16);
      const len = digest === 'sha256' ? 32 : 64;
      const hash = pbkdf2Sync('pa55', salt, 1000, len, digest);
      const phc = `$pbkdf2-${digest}$i=1000,l=${len}$${b64(salt)}$${b64(hash)}`;
      assert.equal(await verifyPassword(pw('pa55'), phc), true, digest);
      assert.equal(await verifyPassword(pw('pa56'), phc), false, digest);
      const ab64 = `$pbkdf2-${digest}$1000$${b64(salt).replaceAll('+', '.')}$${b64(hash).replaceAll('+', '.')}`;
      assert.equal(await verifyPassword(pw('pa55'), ab64), true, `${digest} ab64`);
    }
  });

  it('bcrypt $2a$/$2b$/$2y$, incl. the OpenBSD reference vector', async () => {
    assert.equal(
      await verifyPassword(pw('U*U'), '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'),
      true,
    );
    assert.equal(
      await verifyPassword(pw('U*V'), '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'),
      false,
    );
    const h2b = bcrypt.hashSync('device-pw', 4);
    assert.match(h2b, /^\$2b\$04\$/);
    assert.equal(await verifyPassword(pw('device-pw'), h2b), true);
    assert.equal(await verifyPassword(pw('device-px'), h2b), false);
    const h2y = h2b.replace('$2b$', '$2y$');
    assert.equal(await verifyPassword(pw('device-pw'), h2y), true);
  });

  it('Mosquitto $7$ (PBKDF2-SHA512 over the decoded salt) and $6$ (sha512(password || salt))', async () => {
    const salt = randomBytes(12);
    const hash = pbkdf2Sync('mosq-pw', salt, 101, 64, 'sha512');
    const line = `$7$101$${salt.toString('base64')}$${hash.toString('base64')}`;
    assert.equal(await verifyPassword(pw('mosq-pw'), line), true);
    assert.equal(await verifyPassword(pw('mosq-pX'), line), false);

    const salt6 = randomBytes(12);
    const h6 = createHash('sha512').update('old-pw').update(salt6).digest();
    const line6 = `$6$${salt6.toString('base64')}$${h6.toString('base64')}`;
    assert.equal(await verifyPassword(pw('old-pw'), line6), true);
    assert.equal(await verifyPassword(pw('old-pX'), line6), false);
  });

  it('EMQX salted sha256/sha512 with the salt as prefix or suffix, incl. the EMQX documentation vector', async () => {
    // EMQX docs (Redis authn): password "public", salt "slat_foo123", sha256, suffix.
    const doc = '44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abb5';
    const suffix = { algorithm: 'sha256', saltPosition: 'suffix', salt: 'slat_foo123' } as const;
    assert.equal(await verifyPassword(pw('public'), doc, suffix), true);
    assert.equal(
      await verifyPassword(pw('public'), doc.toUpperCase(), suffix),
      true,
      'hex compares case-insensitively',
    );
    assert.equal(await verifyPassword(pw('public'), doc, { ...suffix, saltPosition: 'prefix' }), false);

    const prefix512 = createHash('sha512').update('NaCl').update('pw512').digest('hex');
    const o512 = { algorithm: 'sha512', saltPosition: 'prefix', salt: 'NaCl' } as const;
    assert.equal(await verifyPassword(pw('pw512'), prefix512, o512), true);
    assert.equal(await verifyPassword(pw('pw513'), prefix512, o512), false);

    const unsalted = createHash('sha256').update('plainhash').digest('hex');
    assert.equal(
      await verifyPassword(pw('plainhash'), unsalted, { algorithm: 'sha256', saltPosition: 'disable' }),
      true,
    );
  });

  it('unknown or malformed hashes and absurd work factors throw BW_ERR_AUTH_HASH_FORMAT (never a silent deny)', async () => {
    for (const bad of [
      'plaintext-password',
      '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
      '$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA',
      '$pbkdf2-sha256$i=999999999$c2FsdA$aGFzaA',
      '$7$abc$c2FsdA$aGFzaA',
      '$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW',
      'abcd',
    ]) {
      await assert.rejects(verifyPassword(pw('x'), bad), (e: unknown) => {
        assert.ok(e instanceof GuardError, bad);
        assert.equal(e.code, 'BW_ERR_AUTH_HASH_FORMAT');
        return true;
      });
    }
  });
});
