import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TopicAuthorizer } from '../../src/guard/authz.js';
import { resolveGuardConfig } from '../../src/guard/config.js';

const defaults = resolveGuardConfig({ listeners: { mqtt: {} } }).listeners.mqtt!.authz;
const dev = { clientId: 'dev-1', username: 'alice', superuser: false };

describe('TopicAuthorizer', () => {
  const authz = new TopicAuthorizer(defaults);

  it('default rules: a device publishes and subscribes only under its own subtrees', () => {
    assert.equal(authz.allowsPublish(dev, 'devices/dev-1/telemetry'), true);
    assert.equal(authz.allowsPublish(dev, '$fleet/dev-1/ota/status'), true);
    assert.equal(authz.allowsPublish(dev, 'devices/dev-2/telemetry'), false);
    assert.equal(authz.allowsPublish(dev, 'devices/dev-1'), true, '# also matches the parent level');
    assert.equal(authz.allowsPublish(dev, 'other/topic'), false);
    assert.equal(authz.allowsSubscribe(dev, 'devices/dev-1/#'), true);
    assert.equal(authz.allowsSubscribe(dev, '$fleet/dev-1/+/cmd'), true);
    assert.equal(authz.allowsSubscribe(dev, '$share/g/devices/dev-1/x'), true);
  });

  it('default rules: under $fleet a device reads everything of its own but writes only its reports', () => {
    assert.equal(authz.allowsPublish(dev, '$fleet/dev-1/config/reported'), true);
    assert.equal(authz.allowsPublish(dev, '$fleet/dev-1/config'), false, 'no overwriting its desired config');
    assert.equal(authz.allowsPublish(dev, '$fleet/dev-1/ota'), false, 'no fake OTA job');
    assert.equal(authz.allowsPublish(dev, '$fleet/dev-1/commands/reboot'), false);
    assert.equal(authz.allowsSubscribe(dev, '$fleet/dev-1/#'), true);
    assert.equal(authz.allowsSubscribe(dev, '$fleet/dev-2/config'), false);
  });

  it('a filter that could match other devices is refused', () => {
    assert.equal(authz.allowsSubscribe(dev, 'devices/+/telemetry'), false);
    assert.equal(authz.allowsSubscribe(dev, 'devices/#'), false);
    assert.equal(authz.allowsSubscribe(dev, '#'), false);
    assert.equal(authz.allowsSubscribe(dev, '+/dev-1/x'), false);
    assert.equal(authz.allowsSubscribe(dev, '$share/g/devices/+/x'), false);
  });

  it('client ids with / + # cannot widen their namespace', () => {
    assert.equal(authz.allowsPublish({ ...dev, clientId: 'dev-1/x' }, 'devices/dev-1/x/t'), false);
    assert.equal(authz.allowsSubscribe({ ...dev, clientId: '#' }, 'devices/#'), false);
    assert.equal(authz.allowsSubscribe({ ...dev, clientId: '+' }, 'devices/+/t'), false);
    assert.equal(authz.allowsPublish({ ...dev, clientId: '' }, 'devices//t'), false);
  });

  it('superuser bypass, configurable rules with {username} and per-action rules', () => {
    assert.equal(authz.allowsSubscribe({ ...dev, superuser: true }, '#'), true);
    const custom = new TopicAuthorizer(
      resolveGuardConfig({
        listeners: {
          l: {
            authz: {
              superuserBypass: false,
              rules: [
                { action: 'publish', topic: 'users/{username}/out' },
                { action: 'subscribe', topic: 'broadcast/+' },
              ],
            },
          },
        },
      }).listeners.l!.authz,
    );
    assert.equal(custom.allowsPublish(dev, 'users/alice/out'), true);
    assert.equal(custom.allowsSubscribe(dev, 'users/alice/out'), false);
    assert.equal(custom.allowsSubscribe(dev, 'broadcast/news'), true);
    assert.equal(custom.allowsPublish(dev, 'broadcast/news'), false);
    assert.equal(custom.allowsPublish({ ...dev, username: undefined }, 'users//out'), false);
    assert.equal(custom.allowsSubscribe({ ...dev, superuser: true }, '#'), false, 'bypass disabled');
  });

  it('[MQTT-4.7.2-1] a rule starting with a wildcard does not cover $ topics', () => {
    const wide = new TopicAuthorizer({ superuserBypass: false, rules: [{ action: 'all', topic: '#' }] });
    assert.equal(wide.allowsPublish(dev, 'a/b'), true);
    assert.equal(wide.allowsPublish(dev, '$fleet/x'), false);
    assert.equal(wide.allowsSubscribe(dev, '$SYS/#'), false);
  });
});
