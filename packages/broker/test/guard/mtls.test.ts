import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { FakeClock } from '@breakwater/testkit';
import { Guard } from '../../src/guard/guard.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { connect, tempDir } from './helpers.js';

let haveOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  haveOpenssl = false;
}

/** Issues certificates with the openssl CLI: a CA, a server cert and client certs signed by it. */
function pki(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=test-ca',
  );
  const issue = (name: string, cn: string, san: string, serial: string) => {
    run(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${cn}`,
    );
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    run(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-set_serial',
      serial,
      '-days',
      '1',
      '-out',
      `${name}.pem`,
      '-extfile',
      `${name}.ext`,
    );
    return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) };
  };
  return {
    ca: readFileSync(join(dir, 'ca.pem')),
    server: issue('server', 'localhost', 'IP:127.0.0.1', '0x1000'),
    device: issue('device', 'dev-42', 'DNS:dev-42.fleet.example', '0x2A01'),
    revoked: issue('revoked', 'dev-43', 'DNS:dev-43.fleet.example', '0x2A02'),
  };
}

describe('mtls authenticator over real TLS', { skip: !haveOpenssl && 'openssl CLI not available' }, () => {
  const tmp = tempDir('mtls');
  let certs: ReturnType<typeof pki>;
  let server: tls.Server;
  let guard: Guard;

  /** Connects with a client certificate and returns what the server side sees of it. */
  async function peerCertOf(client: { key: Buffer; cert: Buffer }): Promise<tls.PeerCertificate> {
    const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
    const socket = tls.connect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      ca: certs.ca,
      key: client.key,
      cert: client.cert,
      servername: 'localhost',
      checkServerIdentity: () => undefined,
    });
    await once(socket, 'secureConnect');
    const [serverSide] = await accepted;
    const peer = serverSide.getPeerCertificate();
    assert.equal(serverSide.authorized, true);
    socket.destroy();
    serverSide.destroy();
    return peer;
  }

  before(async () => {
    certs = pki(tmp.dir);
    server = tls.createServer({
      key: certs.server.key,
      cert: certs.server.cert,
      ca: certs.ca,
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on('secureConnection', () => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    guard = new Guard(
      {
        authenticators: {
          mtls: {
            byCn: { identityFrom: 'cn', revokedSerials: ['2A:02'] },
            bySan: { identityFrom: 'san-dns', requireClientIdMatch: true },
          },
        },
        listeners: { mqtts: { authn: ['byCn'] }, mqtts2: { authn: ['bySan'] } },
      },
      { clock: new FakeClock(), dataDir: tmp.dir },
    );
  });

  after(async () => {
    await guard.close();
    server.close();
    tmp.cleanup();
  });

  it('identity from CN must match the client id', async () => {
    const peer = await peerCertOf(certs.device);
    assert.equal(
      (await guard.authenticate(connect('dev-42', { listener: 'mqtts', peerCertificate: peer }))).ok,
      true,
    );
    const other = await guard.authenticate(connect('dev-99', { listener: 'mqtts', peerCertificate: peer }));
    assert.ok(!other.ok);
    assert.equal(other.reasonCode, ReasonCode.BadUserNameOrPassword);
  });

  it('identity from a DNS SAN', async () => {
    const peer = await peerCertOf(certs.device);
    assert.equal(
      (
        await guard.authenticate(
          connect('dev-42.fleet.example', { listener: 'mqtts2', peerCertificate: peer }),
        )
      ).ok,
      true,
    );
    assert.equal(
      (await guard.authenticate(connect('dev-42', { listener: 'mqtts2', peerCertificate: peer }))).ok,
      false,
    );
  });

  it('a revoked serial is refused (configured list, and the guard denylist)', async () => {
    const peer = await peerCertOf(certs.revoked);
    const d = await guard.authenticate(connect('dev-43', { listener: 'mqtts', peerCertificate: peer }));
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.Banned);
    const good = await peerCertOf(certs.device);
    guard.revoke({ certSerial: '2a01' });
    const d2 = await guard.authenticate(connect('dev-42', { listener: 'mqtts', peerCertificate: good }));
    assert.ok(!d2.ok);
    assert.equal(d2.reasonCode, ReasonCode.Banned);
  });

  it('no client certificate → pass → refused (no credentials: 0x87)', async () => {
    const d = await guard.authenticate(connect('dev-42', { listener: 'mqtts', peerCertificate: {} }));
    assert.ok(!d.ok);
    assert.equal(d.reasonCode, ReasonCode.NotAuthorized);
  });
});
