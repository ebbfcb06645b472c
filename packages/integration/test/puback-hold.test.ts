/**
 * The guarantee the integration rests on: a tap that returns true makes the broker hold the
 * PUBACK until its storage flush — and joinFlush() makes that flush wait for the buffer commit.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MemoryStorage } from '@breakwater/broker';
import { startBroker } from '@breakwater/testkit';
import mqtt from 'mqtt';

/** Memory storage whose flush resolves only when the test says so. */
class GatedStorage extends MemoryStorage {
  gates: Array<() => void> = [];
  override flush(): Promise<void> {
    return new Promise((resolve) => this.gates.push(resolve));
  }
}

describe('a tap that returns true holds the PUBACK', () => {
  for (const durable of [true, false]) {
    it(`${durable ? 'waits for' : 'does not wait for'} the storage flush when the tap returns ${durable}`, async () => {
      const storage = new GatedStorage();
      const tb = await startBroker({ storage });
      after(() => tb.close());
      let tapped = 0;
      tb.broker.tap('t/#', () => {
        tapped++;
        return durable;
      });
      const client = await mqtt.connectAsync(tb.url, { protocolVersion: 5 });
      after(() => client.endAsync(true));
      let released = false;
      const acked = client.publishAsync('t/1', 'x', { qos: 1 }).then(() => {
        assert.equal(released, durable, durable ? 'PUBACK only after the flush' : 'PUBACK without a flush');
      });
      if (durable) {
        while (storage.gates.length === 0) await new Promise((r) => setImmediate(r));
        released = true;
        for (const g of storage.gates.splice(0)) g();
      }
      await acked;
      assert.equal(tapped, 1);
      assert.equal(storage.gates.length, 0);
    });
  }
});
