import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { BreakwaterError, ReasonCode } from '@breakwater/broker';
import mqttPacket from 'mqtt-packet';
import {
  type AdmissionRefusal,
  admissionConfigSchema,
  countOpenFds,
  defaultAdmissionConfig,
  FlapTracker,
  fdHeadroomWarning,
  isSocketLive,
  procFdUsage,
  RETRY_AFTER_PROPERTY,
  readFdLimit,
  refusalConnack,
  resolveAdmissionConfig,
  TokenBucket,
} from '../../src/guard/admission/index.js';

function roundTrip(packet: mqttPacket.Packet, protocolVersion: number): mqttPacket.Packet {
  const bytes = mqttPacket.generate(packet, { protocolVersion });
  const parser = mqttPacket.parser({ protocolVersion });
  const out: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => out.push(p));
  parser.on('error', (e) => assert.fail(e));
  parser.parse(bytes);
  assert.equal(out.length, 1);
  return out[0] as mqttPacket.Packet;
}

const rateRefusal: AdmissionRefusal = {
  ok: false,
  reason: 'rate',
  scope: 'listener',
  reasonCode: ReasonCode.ConnectionRateExceeded,
  reasonString: 'connection rate exceeded (listener), retry later',
  retryAfterMs: 7321,
  tarpitMs: 0,
};

describe('admission: refusal CONNACK', () => {
  test('[MQTT-3.2.2-6] v5: reason code 0x9F, reason string, user property retry-after-ms, no session', () => {
    const p = roundTrip(refusalConnack(rateRefusal, 5), 5) as mqttPacket.IConnackPacket;
    assert.equal(p.cmd, 'connack');
    assert.equal(p.reasonCode, ReasonCode.ConnectionRateExceeded);
    assert.equal(p.sessionPresent, false);
    assert.equal(p.properties?.reasonString, rateRefusal.reasonString);
    assert.deepEqual({ ...p.properties?.userProperties }, { [RETRY_AFTER_PROPERTY]: '7321' });
  });

  test('v5: capacity refusals carry 0x89 server busy', () => {
    const busy: AdmissionRefusal = {
      ...rateRefusal,
      reason: 'handshakes',
      reasonCode: ReasonCode.ServerBusy,
    };
    const p = roundTrip(refusalConnack(busy, 5), 5) as mqttPacket.IConnackPacket;
    assert.equal(p.reasonCode, ReasonCode.ServerBusy);
  });

  test('[MQTT-3.2.2-4] v3.1.1 and v3.1: return code 3 (server unavailable), session present 0', () => {
    for (const version of [4, 3]) {
      const p = roundTrip(refusalConnack(rateRefusal, version), version) as mqttPacket.IConnackPacket;
      assert.equal(p.returnCode, 3, `protocol ${version}`);
      assert.equal(p.sessionPresent, false);
      assert.equal(p.properties, undefined);
    }
  });
});

describe('admission: token bucket', () => {
  test('starts full, refills lazily at the rate, never above capacity', () => {
    const b = new TokenBucket(4, 2, 0);
    assert.equal(b.take(0), true);
    assert.equal(b.take(0), true);
    assert.equal(b.take(0), false);
    assert.equal(b.msUntilToken(0), 250);
    assert.equal(b.take(249), false);
    assert.equal(b.take(250), true);
    assert.equal(b.available(10_000), 2);
  });

  test('rate 0 is unlimited', () => {
    const b = new TokenBucket(0, 1, 0);
    for (let i = 0; i < 1000; i++) assert.equal(b.take(0), true);
    assert.equal(b.msUntilToken(0), 0);
  });

  test('a scale lowers both capacity and refill rate', () => {
    const b = new TokenBucket(10, 8, 0);
    let n = 0;
    while (b.take(0, 0.5)) n++;
    assert.equal(n, 4, 'half the capacity');
    assert.equal(b.msUntilToken(0, 0.5), 200, 'half the rate: 5 tokens/s');
    assert.equal(b.available(1000, 0.5), 4, 'refill capped at the scaled capacity');
    assert.equal(b.available(2000, 1), 8);
  });
});

describe('admission: flap tracker', () => {
  test('never holds more than maxTracked keys, evicting the least recently seen', () => {
    const t = new FlapTracker({ maxShortSessions: 2, windowMs: 60_000, banMs: 1000, maxTracked: 1000 });
    for (let i = 0; i < 100_000; i++) t.record(`id-${i}`, 0);
    assert.equal(t.size, 1000);
    // A key seen again moves to the young end and survives eviction.
    t.record('keep', 0);
    t.record('keep', 0);
    for (let i = 0; i < 999; i++) t.record(`more-${i}`, 0);
    assert.equal(t.record('keep', 0), 1000, 'the third connect is over the limit: banned');
  });

  test('disabled at maxShortSessions 0: nothing is tracked', () => {
    const t = new FlapTracker({ maxShortSessions: 0, windowMs: 60_000, banMs: 1000, maxTracked: 10 });
    for (let i = 0; i < 100; i++) assert.equal(t.record('x', 0), 0);
    assert.equal(t.size, 0);
    assert.equal(t.enabled, false);
  });
});

describe('admission: FD usage', () => {
  test('readFdLimit parses the soft limit from /proc/self/limits text', () => {
    const text = [
      'Limit                     Soft Limit           Hard Limit           Units',
      'Max processes             63704                63704                processes',
      'Max open files            20000                524288               files',
    ].join('\n');
    assert.equal(readFdLimit(text), 20000);
    assert.equal(
      readFdLimit('Max open files            unlimited            unlimited            files'),
      Number.POSITIVE_INFINITY,
    );
    assert.equal(readFdLimit('nothing here'), undefined);
  });

  test('fdHeadroomWarning: below max connections + 10 % warns, enough or unlimited does not', () => {
    const w = fdHeadroomWarning(100_000, 20_000);
    assert.ok(w?.includes('20000') && w.includes('110000'), w);
    assert.equal(fdHeadroomWarning(100_000, 110_000), undefined);
    assert.equal(fdHeadroomWarning(100_000, 109_999) !== undefined, true);
    assert.equal(fdHeadroomWarning(0, 10), undefined, 'unlimited connections: nothing to compare');
    assert.equal(fdHeadroomWarning(100, undefined), undefined);
  });

  test('procFdUsage reads this process on Linux and notices new FDs', async (t) => {
    if (process.platform !== 'linux') return t.skip('Linux only');
    const read = procFdUsage();
    assert.ok(read);
    const before = read();
    assert.ok(before.open > 0 && before.max >= before.open);
    const server = createServer();
    after(() => server.close());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    // The re-count is asynchronous: poll with a bounded deadline until it has seen the listener.
    const deadline = Date.now() + 5000;
    let seen = read().open;
    while (seen <= before.open && Date.now() < deadline) {
      await new Promise((r) => setImmediate(r));
      seen = read().open;
    }
    assert.ok(seen > before.open, `open FDs ${before.open} → ${seen}`);
  });
});

describe('countOpenFds', () => {
  test('counts the open FDs of this process as listing /proc/self/fd does, and follows opens and closes', (t) => {
    if (process.platform !== 'linux') return t.skip('Linux only');
    const listed = () => readdirSync('/proc/self/fd').length - 1; // minus the listing's own FD
    const before = countOpenFds();
    assert.equal(before, listed());
    const fds = Array.from({ length: 25 }, () => openSync('/dev/null', 'r'));
    try {
      assert.equal(countOpenFds(), before! + 25);
      assert.equal(countOpenFds(), listed());
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    assert.equal(countOpenFds(), before);
  });
});

describe('admission: backlog hygiene', () => {
  test('a socket whose peer closed before its CONNECT was handled is not live', async () => {
    const server = createServer();
    after(() => server.close());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect(address.port, '127.0.0.1');
    await once(client, 'connect');
    const [peer] = await accepted;
    after(() => peer.destroy());
    assert.equal(isSocketLive(peer), true);
    peer.resume();
    client.end();
    await once(peer, 'end');
    assert.equal(isSocketLive(peer), false, 'half-closed by the client');
    peer.destroy();
    assert.equal(isSocketLive(peer), false);
  });
});

describe('admission: config', () => {
  test('defaults match DESIGN.md §3 (issue 11: no fixed rate, tarpit on, flapping by short sessions)', () => {
    assert.equal(defaultAdmissionConfig.flapping.clientId.maxShortSessions, 30);
    assert.equal(defaultAdmissionConfig.flapping.clientId.shortSessionMs, 10_000);
    assert.equal(defaultAdmissionConfig.flapping.clientId.windowMs, 60_000);
    assert.equal(defaultAdmissionConfig.flapping.clientId.banMs, 120_000);
    assert.equal(defaultAdmissionConfig.flapping.address.maxShortSessions, 0);
    assert.equal(defaultAdmissionConfig.listenerDefaults.rate, 0);
    assert.equal(defaultAdmissionConfig.global.rate, 0);
    assert.equal(defaultAdmissionConfig.tarpit.enabled, true);
    assert.equal(defaultAdmissionConfig.overload.enabled, true);
    assert.equal(defaultAdmissionConfig.fd.refuseRatio, 0.9);
    assert.ok(Object.isFrozen(defaultAdmissionConfig.global));
    assert.equal(admissionConfigSchema.type, 'object');
  });

  test('a renamed key is named with what replaced it', () => {
    assert.throws(
      () => resolveAdmissionConfig({ flapping: { clientId: { maxConnects: 15 } } } as never),
      /admission\.flapping\.clientId\.maxConnects is not a known key \(renamed to maxShortSessions/,
    );
  });

  test('unknown keys and bad values are rejected with the key path', () => {
    assert.throws(
      () => resolveAdmissionConfig({ tarpit: { enabeld: true } as never }),
      (e: unknown) =>
        e instanceof BreakwaterError &&
        e.code === 'BW_ERR_CONFIG_INVALID' &&
        /admission\.tarpit/.test(e.message),
    );
    assert.throws(
      () => resolveAdmissionConfig({ fd: { refuseRatio: 1.5, sampleIntervalMs: 1000 } }),
      (e: unknown) => e instanceof BreakwaterError && /admission\.fd\.refuseRatio/.test(e.message),
    );
    assert.throws(
      () => resolveAdmissionConfig({ retryAfter: { minMs: 10, maxMs: 5 } }),
      (e: unknown) => e instanceof BreakwaterError && /retryAfter\.minMs/.test(e.message),
    );
  });

  test('a listener override does not reset other keys to the built-in defaults', () => {
    const input = { listenerDefaults: { rate: 50 }, listeners: { tls: { burst: 10 } } };
    const c = resolveAdmissionConfig(input);
    assert.deepEqual(c.listeners.tls, { burst: 10 });
    assert.equal(c.listenerDefaults.rate, 50);
    assert.equal(c.listenerDefaults.burst, 2000);
    assert.deepEqual(input.listeners.tls, { burst: 10 }, 'input not mutated');
  });
});
