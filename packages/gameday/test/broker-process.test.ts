import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BrokerProcess, Fleet } from '../src/index.js';

const CHILD = fileURLToPath(new URL('./fixtures/broker-child.ts', import.meta.url));

describe('BrokerProcess', () => {
  it('restarts a child-process broker on the same port; the fleet comes back', async () => {
    const broker = new BrokerProcess({
      command: process.execPath,
      args: ['--conditions=source', '--import', 'tsx', CHILD, '{port}'],
    });
    const { port } = await broker.start();
    const fleet = new Fleet({ target: { host: '127.0.0.1', port }, devices: 20, timeScale: 0.01 });
    try {
      await fleet.start();
      await fleet.waitFor((s) => s.connected === 20, 60_000);
      const pid = broker.pid;
      await broker.restart(100);
      assert.equal(broker.port, port);
      assert.notEqual(broker.pid, pid);
      assert.equal(broker.starts, 2);
      const s = await fleet.waitFor((x) => x.connected === 20 && x.connacksOk >= 40, 60_000);
      // A graceful stop says goodbye: MQTT 5 DISCONNECT 0x8B Server Shutting Down.
      assert.equal(s.disconnectsByServer['server-shutting-down'], 20);
      await broker.restart(0, { crash: true });
      const after = await fleet.waitFor((x) => x.connected === 20 && x.connacksOk >= 60, 60_000);
      // A crash does not: the sockets just close.
      assert.equal(after.disconnectsByServer.closed, 20);
    } finally {
      await fleet.stop();
      await broker.stop();
    }
    assert.equal(broker.running(), false);
  });
});
