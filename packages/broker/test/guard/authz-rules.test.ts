import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { intersects, TopicAuthorizer } from '../../src/guard/authz.js';
import {
  type AuthzRule,
  AuthzRuleError,
  compileRule,
  formatRule,
  parseRulesText,
  RulesTextError,
} from '../../src/guard/authz-rules.js';
import { resolveGuardConfig } from '../../src/guard/config.js';
import { GuardError } from '../../src/guard/errors.js';

// Issue 13 item 1: ordered allow/deny rules, first match wins, then the default verdict.

const alice = {
  clientId: 'dev-1',
  username: 'alice',
  superuser: false,
  certCn: 'dev-1.fleet.example',
  listener: 'mqtt',
  source: '10.1.2.3',
};

function authorizer(rules: AuthzRule[], def: 'allow' | 'deny' = 'deny'): TopicAuthorizer {
  return new TopicAuthorizer({ rules, superuserBypass: true, default: def });
}

describe('authorization rules: matching', () => {
  it('first match wins: a deny before an allow denies, the same deny after it does not', () => {
    const denyFirst = authorizer([
      { permission: 'deny', topic: 'devices/+/secret' },
      { permission: 'allow', topic: 'devices/#' },
    ]);
    assert.equal(denyFirst.allowsPublish(alice, 'devices/dev-1/secret'), false);
    assert.equal(denyFirst.allowsPublish(alice, 'devices/dev-1/temp'), true);
    const allowFirst = authorizer([
      { permission: 'allow', topic: 'devices/#' },
      { permission: 'deny', topic: 'devices/+/secret' },
    ]);
    assert.equal(allowFirst.allowsPublish(alice, 'devices/dev-1/secret'), true);
    const e = denyFirst.explain(alice, 'publish', 'devices/dev-1/secret');
    assert.deepEqual(e, {
      allowed: false,
      index: 0,
      rule: { text: 'deny all devices/+/secret', origin: 'authz.rules[0]' },
      decidedBy: 'rule',
    });
  });

  it('the default verdict applies when no rule matches (deny by default, allow when configured)', () => {
    assert.equal(authorizer([{ topic: 'a/b' }]).allowsPublish(alice, 'c/d'), false);
    assert.equal(
      authorizer([{ permission: 'deny', topic: 'a/b' }], 'allow').allowsPublish(alice, 'c/d'),
      true,
    );
    assert.equal(
      authorizer([{ permission: 'deny', topic: 'a/b' }], 'allow').allowsPublish(alice, 'a/b'),
      false,
    );
    assert.equal(authorizer([], 'allow').explain(alice, 'subscribe', '#').decidedBy, 'default');
  });

  it('%c and %u (and {clientId}, {username}) are substituted; a missing username makes the rule not apply', () => {
    const a = authorizer([
      { topic: 'devices/%c/#' },
      { action: 'publish', topic: 'users/%u/out' },
      { action: 'subscribe', topic: 'inbox/{username}/{clientId}' },
    ]);
    assert.equal(a.allowsPublish(alice, 'devices/dev-1/t'), true);
    assert.equal(a.allowsPublish(alice, 'devices/dev-2/t'), false);
    assert.equal(a.allowsPublish(alice, 'users/alice/out'), true);
    assert.equal(a.allowsPublish(alice, 'users/bob/out'), false);
    assert.equal(a.allowsSubscribe(alice, 'inbox/alice/dev-1'), true);
    assert.equal(a.allowsPublish({ ...alice, username: undefined }, 'users//out'), false);
    // A client id with / + # cannot widen its namespace.
    assert.equal(a.allowsPublish({ ...alice, clientId: 'x/y' }, 'devices/x/y/t'), false);
    assert.equal(a.allowsSubscribe({ ...alice, clientId: '#' }, 'devices/#'), false);
    // Substitution is one pass: a client id that spells a placeholder stays literal.
    assert.equal(a.allowsPublish({ ...alice, clientId: '%u' }, 'devices/alice/t'), false);
    assert.equal(a.allowsPublish({ ...alice, clientId: '%u' }, 'devices/%u/t'), true);
    assert.equal(a.allowsSubscribe({ ...alice, username: '{clientId}' }, 'inbox/dev-1/dev-1'), false);
  });

  it('publish/subscribe/all: a rule only applies to its action', () => {
    const a = authorizer([
      { action: 'publish', topic: 'up/#' },
      { action: 'subscribe', topic: 'down/#' },
      { action: 'both', topic: 'both/#' },
    ]);
    assert.equal(a.allowsPublish(alice, 'up/x'), true);
    assert.equal(a.allowsSubscribe(alice, 'up/x'), false);
    assert.equal(a.allowsSubscribe(alice, 'down/x'), true);
    assert.equal(a.allowsPublish(alice, 'down/x'), false);
    assert.equal(a.allowsPublish(alice, 'both/x'), true);
    assert.equal(a.allowsSubscribe(alice, 'both/+'), true);
  });

  it('SUBSCRIBE: allow needs the filter inside the rule, deny applies when they overlap', () => {
    const a = authorizer([
      { permission: 'deny', action: 'subscribe', topic: 'devices/+/secret' },
      { permission: 'allow', topic: 'devices/#' },
    ]);
    assert.equal(a.allowsSubscribe(alice, 'devices/dev-1/temp'), true);
    assert.equal(a.allowsSubscribe(alice, 'devices/#'), false, 'devices/# would deliver devices/x/secret');
    assert.equal(a.allowsSubscribe(alice, 'devices/dev-1/+'), false);
    assert.equal(a.allowsSubscribe(alice, '$share/g/devices/dev-1/temp'), true, 'shared: the filter part');
    assert.equal(a.allowsSubscribe(alice, '$share/g/devices/#'), false);
    const own = authorizer([{ topic: 'devices/%c/#' }]);
    assert.equal(own.allowsSubscribe(alice, 'devices/+/temp'), false, 'wider than the allow rule');
    assert.equal(own.allowsSubscribe(alice, 'devices/dev-1/+'), true);
  });

  it('# and + follow MQTT: # matches the parent level, neither matches $ topics [MQTT-4.7.2-1]', () => {
    const a = authorizer([{ permission: 'deny', topic: '#' }], 'allow');
    assert.equal(a.allowsPublish(alice, 'a/b'), false);
    assert.equal(a.allowsPublish(alice, '$SYS/x'), true, 'deny # does not cover $SYS');
    assert.equal(a.allowsSubscribe(alice, '$SYS/#'), true);
    const p = authorizer([{ topic: 'a/#' }, { topic: 'x/+/z' }]);
    assert.equal(p.allowsPublish(alice, 'a'), true);
    assert.equal(p.allowsPublish(alice, 'x/y/z'), true);
    assert.equal(p.allowsPublish(alice, 'x/y/y/z'), false);
    assert.equal(p.allowsPublish(alice, 'x/z'), false);
  });

  it('intersects(): filters that share a topic', () => {
    const s = (f: string, r: string) => intersects(f.split('/'), r.split('/'));
    assert.equal(s('a/+/c', 'a/b/+'), true);
    assert.equal(s('a/b', 'a/c'), false);
    assert.equal(s('a', 'a/#'), true);
    assert.equal(s('a/#', 'a'), true);
    assert.equal(s('a/b/c', 'a/+'), false);
    assert.equal(s('#', '$SYS/x'), false);
    assert.equal(s('+/x', '$SYS/x'), false);
    assert.equal(s('$SYS/#', '$SYS/+/y'), true);
    assert.equal(s('+', '+/+'), false);
  });

  it('conditions: client id, username, cert CN (exact or glob), listener', () => {
    const a = authorizer([
      { permission: 'deny', topic: 'x', clientId: 'dev-*' },
      { permission: 'allow', topic: 'x' },
      { permission: 'allow', topic: 'y', username: 'alice' },
      { permission: 'allow', topic: 'z', certCn: '*.fleet.example' },
      { permission: 'allow', topic: 'w', listener: 'internal' },
    ]);
    assert.equal(a.allowsPublish(alice, 'x'), false);
    assert.equal(a.allowsPublish({ ...alice, clientId: 'svc-1' }, 'x'), true);
    assert.equal(a.allowsPublish(alice, 'y'), true);
    assert.equal(a.allowsPublish({ ...alice, username: 'bob' }, 'y'), false);
    assert.equal(a.allowsPublish({ ...alice, username: undefined }, 'y'), false);
    assert.equal(a.allowsPublish(alice, 'z'), true);
    assert.equal(a.allowsPublish({ ...alice, certCn: 'evil.example' }, 'z'), false);
    assert.equal(a.allowsPublish({ ...alice, certCn: undefined }, 'z'), false, 'no certificate, no match');
    assert.equal(a.allowsPublish(alice, 'w'), false);
    assert.equal(a.allowsPublish({ ...alice, listener: 'internal' }, 'w'), true);
  });

  it('source: IPv4 and IPv6 CIDR, IPv4-mapped addresses, single addresses', () => {
    const a = authorizer([
      { topic: 'lan', source: '10.0.0.0/8' },
      { topic: 'v6', source: '2001:db8::/32' },
      { topic: 'one', source: '192.168.1.7' },
    ]);
    assert.equal(a.allowsPublish(alice, 'lan'), true);
    assert.equal(a.allowsPublish({ ...alice, source: '::ffff:10.9.9.9' }, 'lan'), true);
    assert.equal(a.allowsPublish({ ...alice, source: '11.0.0.1' }, 'lan'), false);
    assert.equal(a.allowsPublish({ ...alice, source: undefined }, 'lan'), false);
    assert.equal(a.allowsPublish({ ...alice, source: '2001:db8:1::5' }, 'v6'), true);
    assert.equal(a.allowsPublish({ ...alice, source: '2001:db9::5' }, 'v6'), false);
    assert.equal(a.allowsPublish({ ...alice, source: '192.168.1.7' }, 'one'), true);
    assert.equal(a.allowsPublish({ ...alice, source: '192.168.1.8' }, 'one'), false);
  });

  it('superuser bypass skips every rule, deny rules included', () => {
    const a = authorizer([{ permission: 'deny', topic: 'a' }]);
    assert.equal(a.allowsPublish({ ...alice, superuser: true }, 'a'), true);
    assert.equal(a.explain({ ...alice, superuser: true }, 'publish', 'a').decidedBy, 'superuser');
  });

  it('bad rules name the field', () => {
    const bad = (rule: AuthzRule, field: string) =>
      assert.throws(
        () => compileRule(rule, 't'),
        (e: unknown) => e instanceof AuthzRuleError && e.field === field && e.code === 'BW_ERR_AUTHZ_RULE',
      );
    bad({ topic: 'a/#/b' }, 'topic');
    bad({ topic: 'a/b+' }, 'topic');
    bad({ topic: '' }, 'topic');
    bad({ topic: 'a', source: '10.0.0.0/33' }, 'source');
    bad({ topic: 'a', source: 'not-an-ip' }, 'source');
    bad({ topic: 'a', action: 'read' as never }, 'action');
    bad({ topic: 'a', permission: 'maybe' as never }, 'permission');
  });
});

describe('authorization rules: config file', () => {
  it('the defaults keep the pre-issue-13 behaviour: own topics only, default deny', () => {
    const l = resolveGuardConfig({ listeners: { mqtt: {} } }).listeners.mqtt!.authz;
    assert.equal(l.default, 'deny');
    const a = new TopicAuthorizer(l);
    assert.equal(a.allowsPublish(alice, 'devices/dev-1/t'), true);
    assert.equal(a.allowsPublish(alice, 'devices/dev-2/t'), false);
    assert.equal(a.allowsSubscribe(alice, '$fleet/dev-1/#'), true);
    assert.equal(a.allowsPublish(alice, '$fleet/dev-1/config'), false);
  });

  it('a bad rule in the config is refused at start, naming the key', () => {
    assert.throws(
      () =>
        resolveGuardConfig({
          authz: { rules: [{ topic: 'a' }, { topic: 'b', source: '300.1.1.1/8' }] },
          listeners: { mqtt: {} },
        }),
      (e: unknown) => e instanceof GuardError && /guard\.authz\.rules\[1\]\.source/.test(e.message),
    );
    assert.throws(
      () => resolveGuardConfig({ listeners: { mqtt: { authz: { rules: [{ topic: 'a/#/b' }] } } } }),
      (e: unknown) =>
        e instanceof GuardError && /guard\.listeners\.mqtt\.authz\.rules\[0\]\.topic/.test(e.message),
    );
    assert.throws(
      () => resolveGuardConfig({ listeners: { mqtt: { authz: { rules: [{ topic: 'a', user: 'x' }] } } } }),
      (e: unknown) => e instanceof GuardError && /guard\.listeners\.mqtt\.authz\.rules\.0/.test(e.message),
    );
  });
});

describe('authorization rules: the rules-file syntax', () => {
  it('parses rules with conditions, comments and quoted values; format gives the same rules back', () => {
    const text = [
      '# live rules',
      '',
      'deny subscribe # username=guest',
      'allow all devices/%c/#',
      'deny publish "a b/c" clientid="x y" cn=*.example listener=public source=10.0.0.0/8',
      '  allow both $SYS/# username=ops',
    ].join('\n');
    const parsed = parseRulesText(text);
    assert.deepEqual(
      parsed.map((p) => p.line),
      [3, 4, 5, 6],
    );
    assert.deepEqual(parsed[0]!.rule, {
      permission: 'deny',
      action: 'subscribe',
      topic: '#',
      username: 'guest',
    });
    assert.deepEqual(parsed[2]!.rule, {
      permission: 'deny',
      action: 'publish',
      topic: 'a b/c',
      clientId: 'x y',
      certCn: '*.example',
      listener: 'public',
      source: '10.0.0.0/8',
    });
    const again = parseRulesText(parsed.map((p) => formatRule(p.rule)).join('\n'));
    assert.deepEqual(
      again.map((p) => p.rule),
      parsed.map((p) => ({ ...p.rule, action: p.rule.action === 'both' ? 'all' : p.rule.action })),
    );
    assert.equal(formatRule(parsed[0]!.rule), 'deny subscribe # username=guest');
  });

  it('an error names the line', () => {
    const at = (text: string, line: number, pattern: RegExp) =>
      assert.throws(
        () => parseRulesText(text),
        (e: unknown) => e instanceof RulesTextError && e.line === line && pattern.test(e.message),
      );
    at('allow all a\nallow al b', 2, /unknown action "al"/);
    at('allow all a\n\n# c\npermit all b', 4, /unknown permission/);
    at('allow all a source=10.0.0.0/40', 1, /source/);
    at('allow all a color=red', 1, /unknown condition/);
    at('allow all', 1, /expected/);
    at('allow all "a', 1, /unterminated/);
    at('allow all a username=x username=y', 1, /twice/);
  });
});
