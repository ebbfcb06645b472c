import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveGuardConfig } from '../../src/guard/config.js';

describe('guard config', () => {
  it('fills the DESIGN.md §3 defaults', () => {
    const c = resolveGuardConfig({
      authenticators: { postgres: { pg: {} } },
      listeners: { mqtt: { authn: ['pg'] } },
    });
    const l = c.listeners.mqtt!;
    assert.deepEqual(l.cache, {
      positiveTtlSec: 3600,
      staleIfErrorSec: 86400,
      negativeTtlSec: 60,
      maxEntries: 100000,
      persist: true,
    });
    assert.equal(l.maxCredentialBytes, 4096);
    assert.deepEqual(
      l.authz.rules.map((r) => r.topic),
      [
        'devices/{clientId}/#',
        '$response/{clientId}/#',
        '$fleet/{clientId}/#',
        '$fleet/{clientId}/config/reported',
        '$fleet/{clientId}/ota/status',
      ],
    );
    const pg = c.authenticators.postgres.pg!;
    // No fixed rate by default (issue 11): calls in flight adapt to latency, under the pool size.
    assert.equal(pg.limits.ratePerSec, 0);
    assert.equal(pg.poolSize, 8);
    assert.ok(pg.limits.adaptive.initial <= pg.poolSize);
    assert.ok(pg.limits.queue.maxWaitMs > 0);
    assert.equal(pg.limits.breaker.errorRatio, 0.5);
    assert.match(pg.query, /\$1/);
  });

  it('rejects bad listener config with the key named', () => {
    const bad: Array<[unknown, RegExp]> = [
      [
        { listeners: { mqtt: { authn: ['missing'] } } },
        /guard\.listeners\.mqtt\.authn: unknown authenticator "missing"/,
      ],
      [
        { listeners: { mqtt: { authn: [], cache: { positiveTTL: 5 } } } },
        /must NOT have additional properties/,
      ],
      [{ authenticators: { anonymous: { a: {} }, mtls: { a: {} } } }, /"a" used by/],
      [{ authenticators: { jwt: { j: {} } } }, /exactly one of jwksUrl, publicKeyFile/],
      [{ authenticators: { jwt: { j: { jwksUrl: 'http://x/', algorithms: ['HS256'] } } } }, /algorithms/],
      [{ authenticators: { http: { h: { url: 'ftp://x' } } } }, /url/],
      [{ authenticators: { postgres: { pg: { limits: { ratePerSec: -1 } } } } }, /ratePerSec/],
      [{ authenticators: { postgres: { pg: { limits: { adaptive: { min: 0 } } } } } }, /adaptive\.min/],
    ];
    for (const [input, re] of bad) assert.throws(() => resolveGuardConfig(input), re, JSON.stringify(input));
  });

  it('does not mutate its input', () => {
    const input = { listeners: { mqtt: {} } };
    resolveGuardConfig(input);
    assert.deepEqual(input, { listeners: { mqtt: {} } });
  });
});
