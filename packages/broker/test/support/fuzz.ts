import mqtt from 'mqtt-packet';

/**
 * Seeded generators for the fuzz suite: random *valid* MQTT packets (v3.1.1 and v5, every type,
 * via mqtt-packet) and mutations of them. Deterministic for a seed, so a failure printed with its
 * seed can be replayed with BW_FUZZ_SEED=<seed>.
 */
export class Prng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 1;
  }
  /** mulberry32: small, fast, good enough to drive a fuzzer. */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const SEGMENTS = ['a', 'b', 'sensor', 'x', '', 'é', '+', '#', '$SYS', 'ü/ß', 'long-segment-name'];

function topic(r: Prng, prefix: string, wildcards: boolean): string {
  const n = 1 + r.int(4);
  const parts = [prefix];
  for (let i = 0; i < n; i++) {
    let s = r.pick(SEGMENTS);
    if (!wildcards && (s === '+' || s === '#')) s = 'w';
    parts.push(s);
  }
  return parts.join('/');
}

function qos(r: Prng): 0 | 1 | 2 {
  return r.pick([0, 1, 2] as const);
}

function id(r: Prng): number {
  return 1 + r.int(65535);
}

function userProperties(r: Prng): Record<string, string> | undefined {
  return r.bool(0.3) ? { k: r.pick(['v', 'é', '']), [`u${r.int(9)}`]: 'w' } : undefined;
}

function reason(r: Prng): number {
  return r.pick([0, 0x04, 0x10, 0x11, 0x80, 0x83, 0x87, 0x8e, 0x91, 0x97]);
}

/** A random packet object that mqtt-packet can generate for `v`. */
export function randomPacket(r: Prng, v: 4 | 5, prefix: string, clientId: string): mqtt.Packet {
  const props = v === 5 && r.bool(0.5);
  switch (r.int(14)) {
    case 0:
      return {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: v,
        clientId: r.bool(0.9) ? clientId : '',
        clean: r.bool(0.9),
        keepalive: r.int(120),
        ...(r.bool(0.2) ? { username: 'u', password: Buffer.from('p') } : {}),
        ...(r.bool(0.2)
          ? {
              will: {
                topic: topic(r, prefix, false),
                payload: r.bytes(r.int(20)),
                qos: qos(r),
                retain: false,
                ...(props ? { properties: { willDelayInterval: r.int(3) } } : {}),
              },
            }
          : {}),
        ...(props
          ? {
              properties: {
                sessionExpiryInterval: r.int(5),
                receiveMaximum: 1 + r.int(100),
                maximumPacketSize: 64 + r.int(10_000),
                topicAliasMaximum: r.int(10),
                requestProblemInformation: r.bool(),
                userProperties: userProperties(r),
              },
            }
          : {}),
      } as mqtt.IConnectPacket;
    case 1:
    case 2:
    case 3: {
      const q = qos(r);
      return {
        cmd: 'publish',
        topic: topic(r, prefix, false),
        payload: r.bytes(r.pick([0, 1, 10, 100, 1000])),
        qos: q,
        retain: r.bool(0.05),
        dup: q > 0 && r.bool(0.2),
        ...(q > 0 ? { messageId: id(r) } : {}),
        ...(props
          ? {
              properties: {
                payloadFormatIndicator: r.bool(),
                messageExpiryInterval: r.int(100),
                ...(r.bool(0.3) ? { topicAlias: 1 + r.int(5) } : {}),
                responseTopic: topic(r, prefix, false),
                correlationData: r.bytes(r.int(8)),
                userProperties: userProperties(r),
                contentType: 'text/plain',
              },
            }
          : {}),
      } as mqtt.IPublishPacket;
    }
    case 4:
    case 5:
      return {
        cmd: r.pick(['puback', 'pubrec', 'pubrel', 'pubcomp'] as const),
        messageId: id(r),
        ...(props ? { reasonCode: r.pick([0, 0x10, 0x80, 0x92]), properties: { reasonString: 'why' } } : {}),
      } as mqtt.Packet;
    case 6:
    case 7: {
      const n = 1 + r.int(3);
      return {
        cmd: 'subscribe',
        messageId: id(r),
        subscriptions: Array.from({ length: n }, () => ({
          topic: r.bool(0.1) ? `$share/g/${topic(r, prefix, true)}` : topic(r, prefix, true),
          qos: qos(r),
          ...(v === 5 ? { nl: r.bool(), rap: r.bool(), rh: r.int(3) } : {}),
        })),
        ...(props
          ? { properties: { subscriptionIdentifier: 1 + r.int(1000), userProperties: userProperties(r) } }
          : {}),
      } as mqtt.ISubscribePacket;
    }
    case 8:
      return {
        cmd: 'unsubscribe',
        messageId: id(r),
        unsubscriptions: [topic(r, prefix, true)],
        ...(props ? { properties: { userProperties: userProperties(r) } } : {}),
      } as mqtt.IUnsubscribePacket;
    case 9:
      return { cmd: 'pingreq' };
    case 10:
      return { cmd: 'disconnect', ...(v === 5 ? { reasonCode: reason(r) } : {}) } as mqtt.IDisconnectPacket;
    case 11: // server-to-client packets sent the wrong way
      return r.pick([
        { cmd: 'connack', sessionPresent: false, returnCode: 0, reasonCode: 0 },
        { cmd: 'suback', messageId: id(r), granted: [0, 1, 128] },
        { cmd: 'unsuback', messageId: id(r), granted: [0] },
        { cmd: 'pingresp' },
      ] as mqtt.Packet[]);
    case 12:
      return v === 5
        ? ({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'x' } } as mqtt.IAuthPacket)
        : { cmd: 'pingreq' };
    default:
      return {
        cmd: 'publish',
        topic: topic(r, prefix, false),
        payload: r.bytes(r.int(70_000)), // multi-byte remaining length
        qos: 0,
        retain: false,
        dup: false,
      } as mqtt.IPublishPacket;
  }
}

export function encode(p: mqtt.Packet, v: 4 | 5): Buffer | undefined {
  try {
    return mqtt.generate(p, { protocolVersion: v });
  } catch {
    return undefined; // a combination mqtt-packet refuses: just skip it
  }
}

export const MUTATIONS = [
  'none',
  'bitflip',
  'truncate',
  'length',
  'random',
  'huge-length',
  'insert',
  'delete',
  'type',
  'overwrite',
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Apply one mutation to an encoded packet. */
export function mutate(r: Prng, bytes: Buffer, kind: Mutation): Buffer {
  const b = Buffer.from(bytes);
  switch (kind) {
    case 'none':
      return b;
    case 'bitflip': {
      const flips = 1 + r.int(8);
      for (let i = 0; i < flips; i++) {
        const at = r.int(b.length);
        b[at] = (b[at] as number) ^ (1 << r.int(8));
      }
      return b;
    }
    case 'truncate':
      return b.subarray(0, r.int(b.length));
    case 'length': {
      // Corrupt the remaining-length field: any byte value in its 1–4 positions.
      const n = 1 + r.int(4);
      for (let i = 1; i <= n && i < b.length; i++) b[i] = r.int(256);
      return b;
    }
    case 'random':
      return r.bytes(1 + r.int(r.bool(0.9) ? 64 : 4096));
    case 'huge-length':
      // Maximum remaining length (268,435,455) that never arrives: the broker must not buffer it all.
      return Buffer.concat([Buffer.from([b[0] as number, 0xff, 0xff, 0xff, 0x7f]), r.bytes(r.int(64))]);
    case 'insert': {
      const at = r.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(4)), b.subarray(at)]);
    }
    case 'delete': {
      const at = r.int(b.length);
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + r.int(4))]);
    }
    case 'type':
      b[0] = r.int(256); // any packet type with any flags
      return b;
    case 'overwrite': {
      const at = r.int(b.length);
      b.set(r.bytes(Math.min(b.length - at, 1 + r.int(8))), at);
      return b;
    }
  }
}

/** Split a buffer into 1..n random chunks (so the broker's parser sees arbitrary boundaries). */
export function chunks(r: Prng, b: Buffer): Buffer[] {
  if (b.length < 2 || r.bool(0.5)) return [b];
  const out: Buffer[] = [];
  let at = 0;
  while (at < b.length) {
    const n = 1 + r.int(Math.max(1, Math.min(b.length - at, r.pick([1, 3, 16, 256]))));
    out.push(b.subarray(at, at + n));
    at += n;
  }
  return out;
}
