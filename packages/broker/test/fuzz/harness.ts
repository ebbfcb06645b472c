/**
 * The structure-aware fuzzer's harness (issue 13): a real Broker (in-process, memory storage, an
 * async authenticate hook so pipelined packets go through the backlog path, authorization that
 * denies `forbidden` topics) driven over in-memory duplex pairs. One case = one connection: a
 * CONNECT (valid or mutated), valid packets, then at most one mutated packet (targeted: known
 * invalid with the reaction the spec requires; or a random byte mutation), delivered in random
 * chunks, then a PINGREQ probe. Oracle per case:
 *
 * - no exception escapes the broker (uncaught exceptions and rejections are recorded);
 * - everything the broker wrote parses as well-formed MQTT of the connection's version;
 * - a case of valid packets only is answered in full (CONNACK 0, an ack per packet, PINGRESP) and
 *   never closed by the broker;
 * - a targeted invalid packet closes the connection: v5 with DISCONNECT (or CONNACK for CONNECT)
 *   carrying an allowed reason code; v3.1.1 without DISCONNECT — never a PINGRESP after it;
 * - every connection the broker closes as a v5 connection after CONNACK says why (DISCONNECT);
 * - no case hangs: the broker answers the probe or closes, or closes once the client ends.
 *
 * After each batch: a canary publishes QoS 1 through the broker and receives it, every QoS 1
 * message a persistent canary subscriber was acknowledged for has arrived, and sockets,
 * connections and sessions are back to the baseline (session expiry is capped at 0, so any
 * session left over is a leak).
 */
import type { Duplex } from 'node:stream';
import { Broker, BrokerMetrics, MemoryStorage } from '@breakwater/broker';
import { duplexPair, FakeClock } from '@breakwater/testkit';
import mqtt from 'mqtt-packet';
import {
  connectModel,
  type Expectation,
  encodeModel,
  type GenContext,
  type Model,
  Prng,
  pingModel,
  randomModel,
  TARGETED,
  TARGETED_CONNECT,
  type Targeted,
  type Version,
} from './model.js';

export const RANDOM_MUTATIONS = [
  'bitflip',
  'truncate',
  'length',
  'insert',
  'delete',
  'overwrite',
  'type',
] as const;

export interface Finding {
  seed: number;
  caseIndex: number;
  kind: string;
  detail: string;
  /** The bytes the client sent, hex, for a reproducer. */
  input: string;
}

export interface FuzzStats {
  cases: number;
  packets: number;
  bytes: number;
  byType: Record<string, number>;
  byMutation: Record<string, number>;
  byVersion: Record<string, number>;
  closedByBroker: number;
  reasonCodes: Record<string, number>;
  canaryAcked: number;
  canaryReceived: number;
  batches: number;
}

export interface FuzzOptions {
  seed: number;
  cases: number;
  batchSize?: number;
  /** Connections in flight at once. */
  concurrency?: number;
  /** Stop early after this many ms (the CI slice). */
  budgetMs?: number;
  /** Keep at most this many findings of each kind. */
  maxFindingsPerKind?: number;
}

export interface FuzzResult {
  stats: FuzzStats;
  findings: Finding[];
  /** Every finding counted by kind (`findings` keeps the first few of each). */
  findingCounts: Record<string, number>;
  durationMs: number;
}

type CaseKind = 'valid' | 'targeted' | 'random';

interface CasePlan {
  v: Version;
  kind: CaseKind;
  mutation: string;
  /** The packets in order, already encoded; `mutatedAt` is the index of the mutated one (or -1). */
  packets: Buffer[];
  names: string[];
  mutatedAt: number;
  expect: Expectation | null;
  /** Packet ids the valid prefix expects answers for. */
  expectedAcks: string[];
}

const MAX_PACKET = 64 * 1024;

function randomMutate(r: Prng, b: Buffer, kind: (typeof RANDOM_MUTATIONS)[number]): Buffer {
  const out = Buffer.from(b);
  switch (kind) {
    case 'bitflip': {
      const n = 1 + r.int(4);
      for (let i = 0; i < n; i++) {
        const at = r.int(out.length);
        out[at] = out[at]! ^ (1 << r.int(8));
      }
      return out;
    }
    case 'truncate':
      return out.subarray(0, 1 + r.int(Math.max(1, out.length - 1)));
    case 'length': {
      const n = 1 + r.int(4);
      for (let i = 1; i <= n && i < out.length; i++) out[i] = r.int(256);
      return out;
    }
    case 'insert': {
      const at = 2 + r.int(Math.max(1, out.length - 1));
      return Buffer.concat([out.subarray(0, at), r.bytes(1 + r.int(4)), out.subarray(at)]);
    }
    case 'delete': {
      const at = 2 + r.int(Math.max(1, out.length - 2));
      return Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + r.int(3))]);
    }
    case 'overwrite': {
      const at = r.int(out.length);
      out.set(r.bytes(Math.min(out.length - at, 1 + r.int(6))), at);
      return out;
    }
    case 'type':
      out[0] = r.int(256);
      return out;
  }
}

/** Ack names a valid packet must produce (in order per connection). */
function acksFor(m: Model): string[] {
  if (m.type === 3) {
    const qos = (m.flags >> 1) & 3;
    return qos === 1 ? ['puback'] : qos === 2 ? ['pubrec'] : [];
  }
  if (m.type === 8) return ['suback'];
  if (m.type === 10) return ['unsuback'];
  if (m.type === 5) return ['pubrel'];
  if (m.type === 6) return ['pubcomp'];
  if (m.type === 12) return ['pingresp'];
  return [];
}

export function planCase(seed: number, index: number, prefix: string): CasePlan {
  const r = new Prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const v: Version = r.bool() ? 4 : 5;
  const ctx: GenContext = {
    v,
    // A random tag: a bit flip in another case's CONNECT must not produce this id (a takeover).
    clientId: `fz${seed.toString(36)}-${index.toString(36)}-${r.bytes(4).toString('hex')}`,
    prefix: `${prefix}/${index % 64}`,
    nextId: 1 + r.int(60000),
    aliases: new Map(),
    qos2: [],
  };
  const roll = r.next();
  const kind: CaseKind = roll < 0.2 ? 'valid' : roll < 0.6 ? 'targeted' : 'random';
  const models: Model[] = [connectModel(r, ctx)];
  const n = r.int(6);
  for (let i = 0; i < n; i++) models.push(randomModel(r, ctx));
  const plan: CasePlan = {
    v,
    kind,
    mutation: 'none',
    packets: [],
    names: [],
    mutatedAt: -1,
    expect: null,
    expectedAcks: [],
  };
  if (kind === 'targeted') {
    // Mutate the CONNECT (1 in 5) or an extra packet after the valid prefix.
    const onConnect = r.bool(0.2);
    let target: Model;
    if (onConnect) target = models[0]!;
    else {
      target = randomModel(r, ctx);
      if (r.bool(0.3)) target = pingModel();
      models.push(target);
    }
    const candidates: Targeted[] = (onConnect ? [...TARGETED_CONNECT, ...TARGETED] : TARGETED).filter((t) =>
      t.applies(target, v),
    );
    if (candidates.length === 0) {
      plan.kind = 'valid';
    } else {
      const t = r.pick(candidates);
      plan.expect = t.apply(r, target, v);
      plan.mutation = t.name;
      plan.mutatedAt = models.indexOf(target);
    }
  }
  for (const m of models) {
    plan.packets.push(encodeModel(m));
    plan.names.push(m.name);
  }
  if (plan.kind === 'random') {
    const at = r.int(plan.packets.length);
    const mk = r.pick(RANDOM_MUTATIONS);
    plan.packets[at] = randomMutate(r, plan.packets[at]!, mk);
    plan.mutation = mk;
    plan.mutatedAt = at;
    // Sometimes junk after it too.
    if (r.bool(0.2)) plan.packets.push(r.bytes(1 + r.int(32)));
  }
  if (plan.kind === 'valid') {
    for (let i = 1; i < models.length; i++) plan.expectedAcks.push(...acksFor(models[i]!));
  }
  // The probe: answered with PINGRESP unless the broker closed (or is still reading a body).
  plan.packets.push(encodeModel(pingModel()));
  plan.names.push('probe');
  return plan;
}

/** Deliver bytes in random chunks, yielding between some of them (split reads). */
async function deliver(r: Prng, s: Duplex, bytes: Buffer): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const mode = r.int(4);
    const n = mode === 0 ? bytes.length - at : Math.min(bytes.length - at, 1 + r.int(mode === 1 ? 3 : 64));
    if (s.destroyed || s.writableEnded) return;
    s.write(bytes.subarray(at, at + n));
    at += n;
    if (r.bool(0.3)) await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * How long to wait for the probe's PINGRESP. A valid case is answered within a few ticks; a mutated
 * one that is not answered is usually a broker waiting for the rest of a body whose length the
 * mutation raised, so waiting long there only idles the fuzzer (the client then ends; the broker
 * must close: the hang check).
 */
/**
 * Packet types in `bytes` as the broker's framer cuts them (type byte + Remaining Length): after a
 * byte mutation the frames no longer match the planned packets (a deletion can turn payload
 * bytes into a client DISCONNECT, which legitimately ends the connection without a reason code).
 */
function frameTypes(bytes: Buffer): number[] {
  const types: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    let len = 0;
    let mul = 1;
    let pos = at + 1;
    let ok = false;
    for (let i = 0; i < 4 && pos < bytes.length; i++) {
      const b = bytes[pos++]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        ok = true;
        break;
      }
    }
    if (!ok) break;
    types.push(bytes[at]! >> 4);
    at = pos + len;
  }
  return types;
}

/** The protocol level byte of the CONNECT at the start of `bytes` (-1 if it cannot be read). */
function connectLevel(bytes: Buffer): number {
  let pos = 1;
  while (pos < 5 && pos < bytes.length && (bytes[pos]! & 0x80) !== 0) pos++;
  pos++;
  if (pos + 2 > bytes.length) return -1;
  const at = pos + 2 + bytes.readUInt16BE(pos);
  return at < bytes.length ? bytes[at]! : -1;
}

const PROBE_TIMEOUT_MS = 3000;
const PROBE_TIMEOUT_MUTATED_MS = 250;
const CLOSE_TIMEOUT_MS = 5000;

export class Fuzzer {
  readonly broker: Broker;
  readonly metrics: BrokerMetrics;
  readonly findings: Finding[] = [];
  readonly stats: FuzzStats = {
    cases: 0,
    packets: 0,
    bytes: 0,
    byType: {},
    byMutation: {},
    byVersion: {},
    closedByBroker: 0,
    reasonCodes: {},
    canaryAcked: 0,
    canaryReceived: 0,
    batches: 0,
  };
  readonly #perKind = new Map<string, number>();
  readonly #maxPerKind: number;
  readonly #prefix = 'fz';
  #canarySub: CanaryClient | null = null;
  #canaryPub: CanaryClient | null = null;
  #canarySeq = 0;
  readonly #acked = new Set<number>();
  readonly #received = new Set<number>();
  #onUncaught = (err: unknown) =>
    this.#finding(-1, -1, 'uncaught-exception', String((err as Error)?.stack ?? err), '');

  constructor(maxFindingsPerKind = 20) {
    this.#maxPerKind = maxFindingsPerKind;
    this.metrics = new BrokerMetrics({ defaultMetrics: false });
    this.broker = new Broker({
      storage: new MemoryStorage(),
      metrics: this.metrics,
      // Broker time stands still: on a starved host a connect timeout (10 s) could otherwise end a
      // valid case before its CONNECT was read (seen at 4 % of a core). Hangs are judged on the
      // wall clock by the harness, not by the broker's sweep.
      clock: new FakeClock(Date.now()),
      // Session expiry capped at 0: a mutated clean flag or expiry property cannot leave a
      // persistent session behind, so every session left after a batch is a leak.
      limits: { maxPacketSize: MAX_PACKET, maxSessionExpirySec: 0 },
      hooks: {
        // Async, like a remote authenticator: packets pipelined behind CONNECT wait in the backlog.
        authenticate: (req) =>
          req.username === 'deny'
            ? { ok: false, reasonCode: 0x86, reasonString: 'denied' }
            : req.keepalive % 2 === 0
              ? Promise.resolve({ ok: true })
              : { ok: true },
        authorizePublish: (_c, topic) => !topic.includes('forbidden'),
        authorizeSubscribe: (_c, filter) => !filter.includes('forbidden'),
      },
    });
  }

  async start(): Promise<void> {
    process.on('uncaughtException', this.#onUncaught);
    process.on('unhandledRejection', this.#onUncaught);
    await this.broker.start();
    // Connected for the whole run, so it needs no session expiry (the broker caps it at 0 anyway).
    this.#canarySub = await CanaryClient.open(this, 'canary-sub', 5, 0);
    await this.#canarySub.subscribe('canary/#');
    this.#canaryPub = await CanaryClient.open(this, 'canary-pub', 4, 0);
    this.#canarySub.onPublish = (p) => {
      const seq = Number(String(p.payload));
      if (Number.isFinite(seq)) this.#received.add(seq);
    };
  }

  async stop(): Promise<void> {
    this.#canarySub?.end();
    this.#canaryPub?.end();
    await this.broker.close();
    process.off('uncaughtException', this.#onUncaught);
    process.off('unhandledRejection', this.#onUncaught);
  }

  /** Serve one in-memory connection; returns the client end. */
  connect(): Duplex {
    const [client, server] = duplexPair();
    this.broker.handle(server, {
      listener: 'fuzz',
      transport: 'tcp',
      remoteAddress: '127.0.0.9',
      remotePort: 1,
    });
    return client;
  }

  #finding(seed: number, index: number, kind: string, detail: string, input: string): void {
    const n = this.#perKind.get(kind) ?? 0;
    this.#perKind.set(kind, n + 1);
    if (n < this.#maxPerKind) this.findings.push({ seed, caseIndex: index, kind, detail, input });
  }

  findingCounts(): Record<string, number> {
    return Object.fromEntries(this.#perKind);
  }

  /** Run one case; resolves when the connection is done. */
  async runCase(seed: number, index: number): Promise<void> {
    const plan = planCase(seed, index, this.#prefix);
    const r = new Prng((seed ^ Math.imul(index + 7, 0x85ebca6b)) >>> 0);
    const st = this.stats;
    st.cases++;
    st.byVersion[`v${plan.v}`] = (st.byVersion[`v${plan.v}`] ?? 0) + 1;
    st.byMutation[plan.mutation] = (st.byMutation[plan.mutation] ?? 0) + 1;
    for (const name of plan.names) st.byType[name] = (st.byType[name] ?? 0) + 1;
    st.packets += plan.packets.length;
    const input = Buffer.concat(plan.packets);
    st.bytes += input.length;
    const hex = () => input.toString('hex');

    // PINGREQs that must be answered before the probe is: the valid ones sent before it.
    const pings = plan.names.filter(
      (n, i) => (n === 'PINGREQ' || n === 'probe') && i !== plan.mutatedAt,
    ).length;
    const c = this.connect();
    const out: Buffer[] = [];
    const parser = mqtt.parser({ protocolVersion: plan.v });
    const packets: mqtt.Packet[] = [];
    let parseError: string | null = null;
    let pingresps = 0;
    let closed = false;
    let wake: (() => void) | null = null;
    const poke = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    parser.on('packet', (p: mqtt.Packet) => {
      packets.push(p);
      if (p.cmd === 'pingresp' && ++pingresps >= pings) poke();
    });
    parser.on('error', (e: Error) => {
      parseError ??= e.message;
    });
    c.on('data', (d: Buffer) => {
      out.push(d);
      if (parseError === null) parser.parse(d);
    });
    const onClosed = () => {
      closed = true;
      poke();
    };
    c.on('end', onClosed);
    c.on('close', onClosed);
    c.on('error', () => {});
    try {
      await deliver(r, c, input);
    } catch (err) {
      // The in-memory pair runs the broker's data handler inside our write(): an exception the
      // broker lets escape lands here (over TCP it would be an uncaught exception: a crash).
      this.#finding(seed, index, 'uncaught-exception', String((err as Error)?.stack ?? err), hex());
      c.destroy();
      return;
    }

    /** Resolves on the next PINGRESP/close, or after `ms`. */
    const waitFor = (ms: number, done: () => boolean) =>
      new Promise<void>((resolve) => {
        if (done()) return resolve();
        const timer = setTimeout(() => {
          wake = null;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    await waitFor(
      plan.kind === 'valid' ? PROBE_TIMEOUT_MS : PROBE_TIMEOUT_MUTATED_MS,
      () => closed || pingresps >= pings,
    );
    // A close may be on its way right behind the answers: let pending I/O settle once.
    await new Promise((resolve) => setImmediate(resolve));
    const answered = pingresps >= pings;
    const brokerClosed = closed;
    let hung = false;
    if (!closed) {
      // End our side (a normal DISCONNECT first when the case was valid): the broker must close.
      if (answered && plan.kind === 'valid') c.write(Buffer.from([0xe0, 0x00]));
      c.end();
      await waitFor(CLOSE_TIMEOUT_MS, () => closed);
      hung = !closed;
      if (!closed) c.destroy();
    }
    if (brokerClosed) st.closedByBroker++;

    if (parseError === null && parser.parse(Buffer.alloc(0)) !== 0) parseError = 'trailing partial packet';
    const parsed = { error: parseError as string | null };
    if (hung)
      this.#finding(
        seed,
        index,
        'hang',
        `${plan.mutation}: the broker did not close after the client ended`,
        hex(),
      );
    if (parsed.error !== null && !(plan.mutatedAt === 0 && plan.kind === 'random')) {
      this.#finding(seed, index, 'output-malformed', `${plan.mutation}: ${parsed.error}`, hex());
    }
    const connack = packets.find((p) => p.cmd === 'connack') as mqtt.IConnackPacket | undefined;
    const disconnect = packets.find((p) => p.cmd === 'disconnect') as mqtt.IDisconnectPacket | undefined;
    const rc =
      disconnect?.reasonCode ?? (connack && (plan.v === 5 ? connack.reasonCode : connack.returnCode));
    if (rc !== undefined && rc !== 0)
      st.reasonCodes[`0x${rc.toString(16)}`] = (st.reasonCodes[`0x${rc.toString(16)}`] ?? 0) + 1;
    if (plan.v === 4 && disconnect !== undefined)
      this.#finding(seed, index, 'v3-disconnect', `${plan.mutation}: a v3.1.1 server sent DISCONNECT`, hex());
    const accepted = connack !== undefined && (plan.v === 5 ? connack.reasonCode : connack.returnCode) === 0;

    if (plan.kind === 'valid') {
      if (!accepted || !answered || brokerClosed) {
        this.#finding(
          seed,
          index,
          'valid-refused',
          `valid packets ${plan.names.join(',')}: accepted=${accepted} probe=${answered} closed=${brokerClosed} rc=${rc}`,
          hex(),
        );
      } else {
        const got = packets.filter((p) => p.cmd !== 'connack' && p.cmd !== 'publish').map((p) => p.cmd);
        const want = [...plan.expectedAcks, 'pingresp'];
        // Acks may interleave with deliveries; compare as multisets of the kinds.
        if (JSON.stringify([...got].sort()) !== JSON.stringify([...want].sort()))
          this.#finding(seed, index, 'valid-acks', `want ${want.join(',')} got ${got.join(',')}`, hex());
      }
    } else if (plan.kind === 'targeted' && plan.expect !== null) {
      const e = plan.expect;
      const onConnect = plan.mutatedAt === 0;
      const where = `${plan.mutation} on ${plan.names[plan.mutatedAt]} [${e.rule}] v${plan.v}`;
      if (answered && !brokerClosed) {
        if (!e.optional)
          this.#finding(
            seed,
            index,
            'invalid-accepted',
            `${where}: connection stayed open (PINGRESP after it)`,
            hex(),
          );
      } else if (brokerClosed && plan.v === 5) {
        if (onConnect) {
          const ok = connack === undefined || (e.connack ?? e.v5).includes(connack.reasonCode ?? 0);
          if (!ok || (connack !== undefined && connack.reasonCode === 0 && !disconnect))
            this.#finding(
              seed,
              index,
              'wrong-reason',
              `${where}: CONNACK 0x${(connack?.reasonCode ?? 0).toString(16)}`,
              hex(),
            );
          if (connack?.reasonCode === 0 && disconnect && !e.v5.includes(disconnect.reasonCode ?? 0))
            this.#finding(
              seed,
              index,
              'wrong-reason',
              `${where}: DISCONNECT 0x${(disconnect.reasonCode ?? 0).toString(16)}`,
              hex(),
            );
        } else if (accepted) {
          if (disconnect === undefined)
            this.#finding(
              seed,
              index,
              'v5-close-without-reason',
              `${where}: closed without DISCONNECT`,
              hex(),
            );
          else if (!e.v5.includes(disconnect.reasonCode ?? 0))
            this.#finding(
              seed,
              index,
              'wrong-reason',
              `${where}: DISCONNECT 0x${(disconnect.reasonCode ?? 0).toString(16)}`,
              hex(),
            );
        }
      } else if (
        brokerClosed &&
        plan.v === 4 &&
        onConnect &&
        connack !== undefined &&
        connack.returnCode === 0
      ) {
        this.#finding(seed, index, 'invalid-accepted', `${where}: CONNACK 0 to an invalid CONNECT`, hex());
      }
    } else if (
      plan.kind === 'random' &&
      brokerClosed &&
      plan.v === 5 &&
      accepted &&
      disconnect === undefined
    ) {
      // A v5 connection the broker ends after CONNACK 0 must say why [MQTT-4.13.1-1]... unless our
      // bytes ended it (a DISCONNECT of ours, possibly produced by the mutation).
      const sentDisconnect = frameTypes(input).includes(14);
      // A mutated CONNECT may now say protocol level 4: then a plain close is right.
      const stillV5 = plan.mutatedAt !== 0 || connectLevel(input) === 5;
      if (!sentDisconnect && stillV5)
        this.#finding(
          seed,
          index,
          'v5-close-without-reason',
          `${plan.mutation}: closed without DISCONNECT`,
          hex(),
        );
    }
    // Keep the canary busy: one QoS 1 message per 50 cases, interleaved with the fuzz traffic.
    if (index % 50 === 0) await this.#canaryPublish();
  }

  async #canaryPublish(): Promise<void> {
    const seq = ++this.#canarySeq;
    const ok = await this.#canaryPub!.publishQos1(`canary/${seq % 7}`, String(seq));
    if (ok) {
      this.#acked.add(seq);
      this.stats.canaryAcked++;
    }
  }

  /** End of batch: the broker is usable, acknowledged messages arrived, counts are at baseline. */
  async checkBatch(seed: number, batch: number): Promise<void> {
    this.stats.batches++;
    // A fresh client round-trips a QoS 1 message.
    const fresh = await CanaryClient.open(this, `canary-fresh-${batch}`, batch % 2 === 0 ? 4 : 5, 0).catch(
      (e: Error) => {
        this.#finding(seed, -1, 'broker-unusable', `batch ${batch}: canary CONNECT failed: ${e.message}`, '');
        return null;
      },
    );
    if (fresh) {
      const topic = `canary-fresh/${batch}`;
      await fresh.subscribe(topic);
      const got = new Promise<boolean>((resolve) => {
        fresh.onPublish = (p) => resolve(p.topic === topic);
        setTimeout(() => resolve(false), 5000);
      });
      const acked = await fresh.publishQos1(topic, 'alive');
      if (!acked || !(await got))
        this.#finding(seed, -1, 'broker-unusable', `batch ${batch}: canary QoS 1 round trip failed`, '');
      fresh.end();
    }
    // Every acknowledged canary message reached the persistent subscriber.
    const deadline = Date.now() + 5000;
    const missing = () => [...this.#acked].filter((s) => !this.#received.has(s));
    while (missing().length > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    const lost = missing();
    if (lost.length > 0)
      this.#finding(
        seed,
        -1,
        'acked-message-lost',
        `batch ${batch}: ${lost.length} acknowledged canary messages never arrived`,
        '',
      );
    this.stats.canaryReceived = this.#received.size;
    // Connections, sockets and sessions back to the two canaries.
    const gauge = async (g: { get(): Promise<{ values: Array<{ value: number }> }> }) =>
      (await g.get()).values.reduce((a, x) => a + x.value, 0);
    const read = async () => ({
      connections: this.broker.connectedClients,
      openSockets: await gauge(this.metrics.openSockets),
      withoutConnect: await gauge(this.metrics.socketsWithoutConnect),
      sessions: this.broker.sessionCount,
    });
    const baseline = { connections: 2, openSockets: 2, withoutConnect: 0, sessions: 2 };
    const t = Date.now() + 5000;
    let now = await read();
    while (JSON.stringify(now) !== JSON.stringify(baseline) && Date.now() < t) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      now = await read();
    }
    if (JSON.stringify(now) !== JSON.stringify(baseline))
      this.#finding(
        seed,
        -1,
        'leak',
        `batch ${batch}: ${JSON.stringify(now)}, baseline ${JSON.stringify(baseline)}`,
        '',
      );
  }
}

/** A tiny MQTT client over a duplex pair, for the canaries. */
class CanaryClient {
  onPublish: ((p: mqtt.IPublishPacket) => void) | null = null;
  readonly #s: Duplex;
  readonly #v: number;
  readonly #parser: ReturnType<typeof mqtt.parser>;
  readonly #waiters = new Map<string, (p: mqtt.Packet) => void>();
  #id = 1;

  private constructor(s: Duplex, v: number) {
    this.#s = s;
    this.#v = v;
    this.#parser = mqtt.parser({ protocolVersion: v as 4 | 5 });
    this.#parser.on('packet', (p: mqtt.Packet) => this.#onPacket(p));
    s.on('data', (d: Buffer) => this.#parser.parse(d));
    s.on('error', () => {});
  }

  static async open(f: Fuzzer, clientId: string, v: number, expiry: number): Promise<CanaryClient> {
    const c = new CanaryClient(f.connect(), v);
    const ack = (await c.#request(
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: v as 4 | 5,
        clientId,
        clean: v === 5 || expiry === 0,
        keepalive: 0,
        ...(v === 5 ? { properties: { sessionExpiryInterval: expiry } } : {}),
      } as mqtt.IConnectPacket,
      'connack',
    )) as mqtt.IConnackPacket;
    if ((ack.reasonCode ?? ack.returnCode) !== 0)
      throw new Error(`CONNACK ${ack.reasonCode ?? ack.returnCode}`);
    return c;
  }

  #onPacket(p: mqtt.Packet): void {
    if (p.cmd === 'publish') {
      if (p.qos > 0)
        this.#send({ cmd: p.qos === 1 ? 'puback' : 'pubrec', messageId: p.messageId! } as mqtt.Packet);
      this.onPublish?.(p);
      return;
    }
    if (p.cmd === 'pubrel') {
      this.#send({ cmd: 'pubcomp', messageId: p.messageId! } as mqtt.Packet);
      return;
    }
    const key = 'messageId' in p && p.messageId !== undefined ? `${p.cmd}:${p.messageId}` : p.cmd;
    const w = this.#waiters.get(key);
    if (w) {
      this.#waiters.delete(key);
      w(p);
    }
  }

  #send(p: mqtt.Packet): void {
    if (!this.#s.destroyed) this.#s.write(mqtt.generate(p, { protocolVersion: this.#v as 4 | 5 }));
  }

  #request(p: mqtt.Packet, answer: string, timeoutMs = 10_000): Promise<mqtt.Packet> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(answer);
        reject(new Error(`no ${answer}`));
      }, timeoutMs);
      this.#waiters.set(answer, (x) => {
        clearTimeout(timer);
        resolve(x);
      });
      this.#send(p);
    });
  }

  async subscribe(filter: string): Promise<void> {
    const id = this.#id++;
    await this.#request(
      { cmd: 'subscribe', messageId: id, subscriptions: [{ topic: filter, qos: 1 }] },
      `suback:${id}`,
    );
  }

  async publishQos1(topic: string, payload: string): Promise<boolean> {
    const id = this.#id;
    this.#id = id >= 65535 ? 1 : id + 1;
    try {
      await this.#request(
        {
          cmd: 'publish',
          topic,
          payload: Buffer.from(payload),
          qos: 1,
          messageId: id,
          retain: false,
          dup: false,
        },
        `puback:${id}`,
      );
      return true;
    } catch {
      return false;
    }
  }

  end(): void {
    this.#send({ cmd: 'disconnect' } as mqtt.Packet);
    this.#s.end();
  }
}

/** Runs `cases` cases in batches with `concurrency` connections in flight. */
export async function runFuzz(
  o: FuzzOptions,
  onBatch?: (f: Fuzzer, done: number) => void,
): Promise<FuzzResult> {
  const f = new Fuzzer(o.maxFindingsPerKind);
  const started = Date.now();
  await f.start();
  const batchSize = o.batchSize ?? 2000;
  const concurrency = o.concurrency ?? 128;
  const end = o.budgetMs === undefined ? Number.POSITIVE_INFINITY : started + o.budgetMs;
  let next = 0;
  let batch = 0;
  try {
    while (next < o.cases && Date.now() < end) {
      const stop = Math.min(o.cases, next + batchSize);
      const worker = async () => {
        while (next < stop && Date.now() < end) await f.runCase(o.seed, next++);
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      await f.checkBatch(o.seed, batch++);
      onBatch?.(f, next);
    }
  } finally {
    await f.stop();
  }
  return {
    stats: f.stats,
    findings: f.findings,
    findingCounts: f.findingCounts(),
    durationMs: Date.now() - started,
  };
}
