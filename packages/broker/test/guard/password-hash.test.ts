import assert from 'node:assert/strict';
import { createHash, pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { GuardError } from '../../src/guard/errors.js';
import {
  hashPassword,
  hashPasswordScrypt,
  MAX_PBKDF2_ITERATIONS,
  passwordFormats,
  verifyPassword,
} from '../../src/guard/password-hash.js';

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

  it('Mosquitto $7$ and $6$ lines written by the real mosquitto_passwd (2.x)', async () => {
    // `mosquitto_passwd -b -c file device-1 'correct horse'` (default: sha512-pbkdf2, 101 iterations)
    const m7 =
      '$7$101$zGeT/EEDDEuPLF3E$NQ59ZULxYVwiOknxdNykFJyjRVwbcIWWYl/Ntcq8mi4X4jHgEMwS11ph6P++G1Obny9pj9a0ghvYUkkpUG5TzA==';
    assert.equal(await verifyPassword(pw('correct horse'), m7), true);
    assert.equal(await verifyPassword(pw('correct horsE'), m7), false);
    // `mosquitto_passwd -b -I 1000 file device-2 'pässwörd €'`: UTF-8 password, 1000 iterations.
    const m7i =
      '$7$1000$RSrECEnorMVhZgVl$F8VR5Z02Yb5u5ChnR5XzNdl0H66bK0BR6kNNT5Q6v7jeHCrEss2JkvUi419CaCadAYl6LuuoQntZV4QtXmNIww==';
    assert.equal(await verifyPassword(pw('pässwörd €'), m7i), true);
    assert.equal(await verifyPassword(pw('passwörd €'), m7i), false);
    // `mosquitto_passwd -b -H sha512 file legacy old-secret` (the Mosquitto 1.x format).
    const m6 =
      '$6$Q4bFcA1JExvnPBhn$Z5xOj/HMFZsnZwhWdnVEQmmfUO6lnXELlJunU+pJBiZcHGTqVrfFWQsZB4CvEwqeK7RrynNEfbuee5BptkLUDA==';
    assert.equal(await verifyPassword(pw('old-secret'), m6), true);
    assert.equal(await verifyPassword(pw('old-secreT'), m6), false);
  });

  it('bcrypt $2y$ from the PHP manual (password_verify example)', async () => {
    const php = '$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a';
    assert.equal(await verifyPassword(pw('rasmuslerdorf'), php), true);
    assert.equal(await verifyPassword(pw('rasmuslerdorF'), php), false);
  });

  it('Django pbkdf2_sha256 / pbkdf2_sha1 (salt used as text; vectors from Python hashlib.pbkdf2_hmac)', async () => {
    const d256 = 'pbkdf2_sha256$260000$sEdXlnXYY8Kz$Bb+M27Adu1E0QmWLVYsa0ZLLOpPszM3Q0hioB3OHSmA=';
    assert.equal(await verifyPassword(pw('django-pw'), d256), true);
    assert.equal(await verifyPassword(pw('django-pW'), d256), false);
    const d1 = 'pbkdf2_sha1$10000$abc123saltXY$ycxvskd9Hr3k1RH1LvofBhzk5M8=';
    assert.equal(await verifyPassword(pw('legacy-pw'), d1), true);
    assert.equal(await verifyPassword(pw('legacy-pX'), d1), false);
  });

  it("EMQX column layout: sha512 prefix (hex), sha256 suffix (base64), pbkdf2 with the salt column (EMQX's emqx_passwd, vectors from Python hashlib)", async () => {
    const prefix = { algorithm: 'sha512', saltPosition: 'prefix', salt: 'NaCl-42' } as const;
    const hex512 =
      '0d6c4dd9a3c74c5bc43bc2e256224813624645aa171f0b77d2e92d4b6062f3100470aac1105c5569fe6597cf723f5a11450bc9d5f23ebc885a56b068eb2c887c';
    assert.equal(await verifyPassword(pw('emqx-pw'), hex512, prefix), true);
    assert.equal(await verifyPassword(pw('emqx-pw'), hex512, { ...prefix, salt: 'NaCl-43' }), false);

    const b64suffix = {
      algorithm: 'sha256',
      saltPosition: 'suffix',
      encoding: 'base64',
      salt: 'NaCl-42',
    } as const;
    assert.equal(
      await verifyPassword(pw('emqx-pw'), '3VWLBe6Tk5pTliysI0a98PROP0I1TJE72kGy+kTfFFM=', b64suffix),
      true,
    );
    assert.equal(
      await verifyPassword(pw('emqx-pX'), '3VWLBe6Tk5pTliysI0a98PROP0I1TJE72kGy+kTfFFM=', b64suffix),
      false,
    );

    // EMQX pbkdf2: salt column text as the salt (not decoded), hex digest; default dk = mac size.
    const salt = 'f3c1a2b4d5e6f708192a3b4c5d6e7f80';
    const p256 = {
      algorithm: 'pbkdf2',
      saltPosition: 'disable',
      macFun: 'sha256',
      iterations: 4096,
      salt,
    } as const;
    const h256 = '738d0a4d24da3637707bbb44e63b71957b6927a4cfb756bc56d015e1e2e059d1';
    assert.equal(await verifyPassword(pw('emqx-pw'), h256, p256), true);
    assert.equal(
      await verifyPassword(pw('emqx-pw'), h256.toUpperCase(), p256),
      true,
      'hex is case-insensitive',
    );
    assert.equal(await verifyPassword(pw('emqx-pX'), h256, p256), false);
    assert.equal(await verifyPassword(pw('emqx-pw'), h256, { ...p256, iterations: 4095 }), false);
    const p512 = { ...p256, macFun: 'sha512', iterations: 1000, dkLength: 32 } as const;
    const h512 = 'ba0be17b5e8b2cad121a6de96c8a41d3bd527f7d1de1262105c82705f9f595ba';
    assert.equal(await verifyPassword(pw('emqx-pw'), h512, p512), true);
    // A digest whose length does not fit the configured algorithm is a configuration problem.
    await assert.rejects(verifyPassword(pw('emqx-pw'), h512, { ...p512, dkLength: 64 }), /holds 32 bytes/);
    await assert.rejects(verifyPassword(pw('emqx-pw'), h256, prefix), /a sha512 digest has 64/);
  });

  it('hashPassword writes every format verifyPassword reads back; mosquitto/passlib shapes', async () => {
    const cheap = { scrypt: { ln: 6, r: 8, p: 1 }, bcryptCost: 4, iterations: 1000 };
    for (const format of passwordFormats) {
      const h = await hashPassword('migrate-me ✓', format, cheap);
      assert.equal(await verifyPassword(pw('migrate-me ✓'), h), true, `${format}: ${h}`);
      assert.equal(await verifyPassword(pw('migrate-me ✗'), h), false, format);
    }
    assert.match(
      await hashPassword('x', 'mosquitto', cheap),
      /^\$7\$1000\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/,
    );
    assert.match(await hashPassword('x', 'bcrypt', cheap), /^\$2b\$04\$/);
    assert.match(
      await hashPassword('x', 'pbkdf2-sha512', cheap),
      /^\$pbkdf2-sha512\$1000\$[A-Za-z0-9./]+\$[A-Za-z0-9./]+$/,
    );
    await assert.rejects(hashPassword('x', 'bcrypt', { bcryptCost: 40 }), /cost 40 is outside 4\.\.16/);
    await assert.rejects(
      hashPassword('x', 'mosquitto', { iterations: MAX_PBKDF2_ITERATIONS + 1 }),
      /above the limit/,
    );
    await assert.rejects(hashPassword('y'.repeat(73), 'bcrypt', cheap), /72 bytes/);
  });

  it('unknown or malformed hashes and absurd work factors throw BW_ERR_AUTH_HASH_FORMAT (never a silent deny)', async () => {
    for (const bad of [
      'plaintext-password',
      '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
      '$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA',
      '$pbkdf2-sha256$i=999999999$c2FsdA$aGFzaA',
      '$7$abc$c2FsdA$aGFzaA',
      '$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW',
      '$2b$10$tooshort',
      'abcd',
      'pbkdf2_sha256$999999999$salt$Bb+M27Adu1E0QmWLVYsa0ZLLOpPszM3Q0hioB3OHSmA=',
      'pbkdf2_sha256$x$salt$Bb+M27Adu1E0QmWLVYsa0ZLLOpPszM3Q0hioB3OHSmA=',
      `$7$101$c2FsdA$${'A'.repeat(2000)}`,
      '',
    ]) {
      await assert.rejects(verifyPassword(pw('x'), bad), (e: unknown) => {
        assert.ok(e instanceof GuardError, bad);
        assert.equal(e.code, 'BW_ERR_AUTH_HASH_FORMAT');
        return true;
      });
    }
    // The message names the bound, so an operator knows what to fix.
    await assert.rejects(
      verifyPassword(pw('x'), '$pbkdf2-sha256$i=999999999$c2FsdA$aGFzaA'),
      /999999999 iterations is above the limit of 5000000/,
    );
    await assert.rejects(
      verifyPassword(pw('x'), '$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'),
      /cost 31 is outside 4\.\.16/,
    );
  });
});
