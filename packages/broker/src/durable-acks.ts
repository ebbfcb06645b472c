import type mqtt from 'mqtt-packet';
import type { Logger } from 'pino';
import { type Connection, ConnState } from './connection.js';
import type { AckCmd } from './engine-context.js';
import { ReasonCode } from './reason-codes.js';
import type { BrokerStorage } from './storage/types.js';

const ACK_TYPE: Record<AckCmd, number> = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 };

/**
 * Acknowledgements that promise durability: a PUBACK/PUBREC for a message that routing wrote to
 * storage is sent only after the storage flush that covers it, so an acknowledged message survives
 * kill -9. One storage.flush() per tick covers every ack queued in that tick (generations: an ack
 * waits for the first flush scheduled after it); acks of one connection stay in order, and a
 * connection whose queue reaches Receive Maximum stops being read until the storage catches up.
 */
export class DurableAcks {
  /** Storage, or storage and the cluster's JetStream acks together (issue 15). */
  readonly #storage: Pick<BrokerStorage, 'flush'>;
  readonly #logger: Logger;
  #flushGen = 0;
  #scheduledGen = 0;
  #completedGen = 0;
  #flushScheduled = false;
  readonly #waiters = new Set<Connection>();

  constructor(storage: Pick<BrokerStorage, 'flush'>, logger: Logger) {
    this.#storage = storage;
    this.#logger = logger;
  }

  /**
   * Send PUBACK/PUBREC/PUBREL/PUBCOMP. With `needsFlush` the ack waits for the next storage
   * flush; later acks of the same connection queue behind it so the order is kept
   * [MQTT-4.6.0-2..4].
   */
  send(
    conn: Connection,
    cmd: AckCmd,
    id: number,
    rc: number,
    reasonString: string | undefined,
    needsFlush: boolean,
    qos: number,
  ): void {
    let buf: Buffer | null;
    if (rc === 0 && reasonString === undefined) {
      // v5 allows omitting a 0x00 reason code with no properties: same 4 bytes as v3.1.1.
      buf = Buffer.allocUnsafe(4);
      buf[0] = ACK_TYPE[cmd];
      buf[1] = 2;
      buf.writeUInt16BE(id, 2);
    } else {
      const properties = conn.reasonProps(reasonString);
      // The Reason String is dropped if it would exceed the client's Maximum Packet Size [MQTT-3.4.2-2].
      buf = conn.encodePacket(
        { cmd, messageId: id, reasonCode: rc, ...(properties ? { properties } : {}) } as mqtt.Packet,
        conn.version,
      );
      if (buf === null) return;
    }
    if (!needsFlush && conn.acks === null) {
      conn.send(buf);
      return;
    }
    if (conn.acks === null) {
      conn.acks = [];
      conn.ackGens = [];
    }
    conn.acks.push(buf);
    conn.ackGens!.push(needsFlush ? this.#flushGenForNow() : 0);
    if (qos === 1) conn.pendingQos1++;
    this.#waiters.add(conn);
    if (!conn.acksBelowLimit() && !conn.readPaused) {
      // Backpressure: stop reading until the storage catches up.
      conn.readPaused = true;
      conn.stream.pause();
    }
  }

  /** The connection is gone: its unsent acks are dropped (the client resends, DUP, on reconnect). */
  forget(conn: Connection): void {
    conn.acks = null;
    conn.ackGens = null;
    this.#waiters.delete(conn);
  }

  #flushGenForNow(): number {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      this.#scheduledGen = ++this.#flushGen;
      process.nextTick(startFlush, this);
    }
    return this.#scheduledGen;
  }

  /** @internal Called on the next tick after the first ack of a tick that needs a flush. */
  runFlush(): void {
    this.#flushScheduled = false;
    const gen = this.#scheduledGen;
    this.#storage.flush().then(
      () => this.#onFlushed(gen),
      (err: unknown) => this.#onFlushFailed(err),
    );
  }

  #onFlushed(gen: number): void {
    if (gen > this.#completedGen) this.#completedGen = gen;
    const done = this.#completedGen;
    for (const conn of this.#waiters) {
      const acks = conn.acks;
      const gens = conn.ackGens;
      if (acks === null || gens === null) {
        this.#waiters.delete(conn);
        continue;
      }
      let i = 0;
      while (i < acks.length && gens[i]! <= done) {
        const buf = acks[i++]!;
        if (buf[0] === ACK_TYPE.puback) conn.pendingQos1--;
        conn.send(buf);
      }
      if (i === acks.length) {
        conn.acks = null;
        conn.ackGens = null;
        this.#waiters.delete(conn);
      } else if (i > 0) {
        acks.splice(0, i);
        gens.splice(0, i);
      }
      if (conn.readPaused && !conn.suspended && conn.acksBelowLimit() && conn.state !== ConnState.Closed) {
        conn.readPaused = false;
        conn.stream.resume();
      }
    }
  }

  #onFlushFailed(err: unknown): void {
    // Nothing waiting for this flush may be acknowledged: close those connections; their clients
    // resend the unacknowledged publishes.
    this.#logger.error({ err }, 'storage flush failed');
    for (const conn of this.#waiters)
      conn.disconnect(ReasonCode.UnspecifiedError, 'storage failure', 'storage_error');
    this.#waiters.clear();
  }
}

function startFlush(acks: DurableAcks): void {
  acks.runFlush();
}
