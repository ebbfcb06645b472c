/**
 * Issue 15 (fan-in overload): the per-turn intake budget (intake-budget.ts) and the coalesced
 * output of a connection (connection.ts `send`): under a flood every message still arrives, in
 * order, whole.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { startBroker, type TestBroker } from '@breakwater/testkit';
import mqtt from 'mqtt-packet';
import { IntakeBudget, type IntakeWaiter } from '../../src/intake-budget.js';
import { ClientPool, subscribe } from './helpers.js';

type Pub = { topic: string; payload: Buffer; qos: number; messageId?: number };

class Waiter implements IntakeWaiter {
  constructor(
    readonly name: string,
    readonly log: string[],
    readonly onResume: () => void = () => {},
  ) {}
  intakeResume(): void {
    this.log.push(this.name);
    this.onResume();
  }
}

describe('intake budget', () => {
  test('admits input until the turn has lasted its budget, then refuses until the turn ends', async () => {
    let now = 0;
    const budget = new IntakeBudget(10, () => now);
    assert.equal(budget.admit(), true); // the turn starts
    now = 9;
    assert.equal(budget.admit(), true);
    now = 10;
    assert.equal(budget.admit(), false);
    now = 0; // spent stays spent for the rest of the turn
    assert.equal(budget.admit(), false);
    await turn();
    assert.equal(budget.admit(), true, 'a new turn has a new budget');
  });

  test('waiting connections are served at the end of the turn, first come first served', async () => {
    let now = 0;
    const budget = new IntakeBudget(10, () => now);
    const log: string[] = [];
    budget.admit();
    now = 20;
    assert.equal(budget.admit(), false);
    // Each resume takes 6 ms: two fit in the next turn's budget, the third waits for the one after.
    const advance = () => {
      now += 6;
    };
    for (const name of ['a', 'b', 'c']) budget.wait(new Waiter(name, log, advance));
    assert.equal(budget.waiting, 3);
    await turn();
    assert.deepEqual(log, ['a', 'b']);
    assert.equal(budget.waiting, 1);
    assert.equal(budget.admit(), false, 'the resumed connections spent this turn');
    budget.wait(new Waiter('d', log, advance));
    await turn();
    assert.deepEqual(log, ['a', 'b', 'c', 'd'], 'the earlier waiter goes first');
    assert.equal(budget.waiting, 0);
    assert.equal(budget.deferrals, 4);
  });

  test('a budget of 0 never refuses', () => {
    let now = 0;
    const budget = new IntakeBudget(0, () => now);
    for (let i = 0; i < 5; i++) {
      now += 1000;
      assert.equal(budget.admit(), true);
    }
  });
});

describe('engine: intake under a flood', () => {
  let tb: TestBroker;
  const pool = new ClientPool(() => tb);
  before(async () => {
    // A 1 ms budget and a tap that makes routing slow: the budget is spent within each turn.
    tb = await startBroker({ limits: { intakeBudgetMs: 1, maxPacketSize: 1024 * 1024 } });
    tb.broker.tap('flood/#', () => {
      if (tb.broker.intake.deferrals > 0) return;
      const until = performance.now() + 2;
      while (performance.now() < until) {}
    });
  });
  afterEach(() => pool.closeAll());
  after(() => tb.close());

  test('publishers that wait for a turn lose nothing: every message arrives, in order, QoS 1 acked', async () => {
    const sub = await pool.connected('flood-sub', 4);
    await subscribe(sub, 'flood/#', 1);
    const pubs = [];
    const perPublisher = 3000;
    for (let p = 0; p < 3; p++) pubs.push(await pool.connected(`flood-pub-${p}`, 4));
    // Each publisher's whole flood in one write: the broker reads it in 64 KiB chunks.
    for (const [p, c] of pubs.entries()) {
      const packets: Buffer[] = [];
      for (let i = 0; i < perPublisher; i++) {
        const qos = i % 10 === 0 ? 1 : 0;
        packets.push(
          mqtt.generate({
            cmd: 'publish',
            topic: `flood/${p}`,
            payload: Buffer.from(`${p}:${i}:${'x'.repeat(40)}`),
            qos,
            ...(qos === 1 ? { messageId: i + 1 } : {}),
            retain: false,
            dup: false,
          } as mqtt.IPublishPacket),
        );
      }
      c.socket.write(Buffer.concat(packets));
    }
    const next = [0, 0, 0];
    for (let n = 0; n < 3 * perPublisher; n++) {
      const m = (await sub.next('publish', 20_000)) as Pub;
      const [p, i] = m.payload.toString().split(':').map(Number) as [number, number];
      assert.equal(i, next[p], `publisher ${p}: message ${next[p]} expected, got ${i}`);
      next[p]!++;
      if (m.qos === 1) sub.send({ cmd: 'puback', messageId: m.messageId! });
    }
    for (const c of pubs) {
      for (let i = 0; i < perPublisher / 10; i++) assert.equal((await c.next('puback')).cmd, 'puback');
    }
    assert.ok(tb.broker.intake.deferrals > 0, 'the budget made some publisher wait');
  });

  test("a subscriber's packets of one tick, small and larger than a write chunk, arrive whole and in order", async () => {
    const sub = await pool.connected('coalesce-sub', 5);
    await subscribe(sub, 'co/#');
    const pub = await pool.connected('coalesce-pub', 5);
    const packets: Buffer[] = [];
    const expected: number[] = [];
    // About 2 MB in all: below the 4 MiB a QoS 0 subscriber may have unsent, so nothing is dropped.
    for (let i = 0; i < 3000; i++) {
      const size = i % 500 === 499 ? 200 * 1024 : i % 250 === 249 ? 70 * 1024 : 1 + (i % 200);
      expected.push(size);
      packets.push(
        mqtt.generate(
          {
            cmd: 'publish',
            topic: `co/${i % 3}`,
            payload: Buffer.alloc(size, i % 251),
            qos: 0,
            retain: false,
            dup: false,
          } as mqtt.IPublishPacket,
          { protocolVersion: 5 },
        ),
      );
    }
    pub.socket.write(Buffer.concat(packets));
    for (let i = 0; i < expected.length; i++) {
      const m = (await sub.next('publish', 20_000)) as Pub;
      assert.equal(m.topic, `co/${i % 3}`);
      assert.equal(m.payload.length, expected[i]);
      assert.ok(
        m.payload.every((b) => b === i % 251),
        `payload of message ${i} intact`,
      );
    }
  });
});
