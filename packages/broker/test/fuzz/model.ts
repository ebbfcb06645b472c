/**
 * Structure-aware packet models for the fuzzer (issue 13): every client→server packet of MQTT
 * 3.1.1 and 5 as a list of typed fields (integers, variable byte integers, UTF-8 strings, binary
 * data, property sections), so mutations can target one field — a string's length prefix, one
 * property, a reserved bit — and the packet is re-encoded with a correct Remaining Length (the
 * inner parser is what is tested, not only the framer). Known-invalid mutations carry the reaction
 * the spec requires; random byte mutations carry none (the oracle then only checks that the broker
 * survives and answers in well-formed packets).
 */
import { Prng } from '../support/fuzz.js';

export { Prng };

export type Version = 4 | 5;

export type Field =
  | { k: 'u8'; v: number }
  | { k: 'u16'; v: number }
  | { k: 'u32'; v: number }
  | { k: 'vbi'; v: number; bytes?: number }
  | { k: 'str'; v: Buffer; len?: number }
  | { k: 'bin'; v: Buffer; len?: number }
  | { k: 'raw'; v: Buffer }
  | { k: 'props'; v: Prop[]; len?: number };

export interface Prop {
  id: number;
  /** The value: one field, or two strings for a User Property. */
  f: Field[];
}

export interface Model {
  /** Packet type name, for statistics. */
  name: string;
  type: number;
  flags: number;
  body: Field[];
  /** Encode the Remaining Length with this many bytes (overlong encodings), or as this value. */
  lengthBytes?: number;
  lengthValue?: number;
}

// ---- encoding ----

function vbi(n: number, minBytes = 1): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0 || out.length + 1 < minBytes) b |= 0x80;
    out.push(b);
  } while (n > 0 || out.length < minBytes);
  return out;
}

function encodeField(f: Field, out: number[]): void {
  switch (f.k) {
    case 'u8':
      out.push(f.v & 0xff);
      break;
    case 'u16':
      out.push((f.v >> 8) & 0xff, f.v & 0xff);
      break;
    case 'u32':
      out.push((f.v >>> 24) & 0xff, (f.v >>> 16) & 0xff, (f.v >>> 8) & 0xff, f.v & 0xff);
      break;
    case 'vbi':
      out.push(...vbi(f.v, f.bytes));
      break;
    case 'str':
    case 'bin': {
      const n = f.len ?? f.v.length;
      out.push((n >> 8) & 0xff, n & 0xff);
      for (const b of f.v) out.push(b);
      break;
    }
    case 'raw':
      for (const b of f.v) out.push(b);
      break;
    case 'props': {
      const inner: number[] = [];
      for (const p of f.v) {
        inner.push(...vbi(p.id));
        for (const pf of p.f) encodeField(pf, inner);
      }
      out.push(...vbi(f.len ?? inner.length));
      for (const b of inner) out.push(b);
      break;
    }
  }
}

export function encodeModel(m: Model): Buffer {
  const body: number[] = [];
  for (const f of m.body) encodeField(f, body);
  const head = [
    ((m.type & 0x0f) << 4) | (m.flags & 0x0f),
    ...vbi(m.lengthValue ?? body.length, m.lengthBytes),
  ];
  return Buffer.from([...head, ...body]);
}

// ---- generation of valid packets ----

const u8 = (v: number): Field => ({ k: 'u8', v });
const u16 = (v: number): Field => ({ k: 'u16', v });
const u32 = (v: number): Field => ({ k: 'u32', v });
const vb = (v: number): Field => ({ k: 'vbi', v });
const str = (s: string): Field => ({ k: 'str', v: Buffer.from(s, 'utf8') });
const bin = (b: Buffer): Field => ({ k: 'bin', v: b });
const props = (v: Prop[]): Field => ({ k: 'props', v });

/** Property identifiers (MQTT 5.0 §2.2.2.2) and their value types. */
export const P = {
  payloadFormat: 0x01,
  messageExpiry: 0x02,
  contentType: 0x03,
  responseTopic: 0x08,
  correlationData: 0x09,
  subscriptionId: 0x0b,
  sessionExpiry: 0x11,
  assignedClientId: 0x12,
  serverKeepAlive: 0x13,
  authMethod: 0x15,
  authData: 0x16,
  requestProblemInfo: 0x17,
  willDelay: 0x18,
  requestResponseInfo: 0x19,
  responseInfo: 0x1a,
  serverReference: 0x1c,
  reasonString: 0x1f,
  receiveMaximum: 0x21,
  topicAliasMaximum: 0x22,
  topicAlias: 0x23,
  maximumQos: 0x24,
  retainAvailable: 0x25,
  userProperty: 0x26,
  maximumPacketSize: 0x27,
} as const;

const PROP_TYPE: Record<number, Field['k'] | 'pair'> = {
  1: 'u8',
  2: 'u32',
  3: 'str',
  8: 'str',
  9: 'bin',
  11: 'vbi',
  17: 'u32',
  18: 'str',
  19: 'u16',
  21: 'str',
  22: 'bin',
  23: 'u8',
  24: 'u32',
  25: 'u8',
  26: 'str',
  28: 'str',
  31: 'str',
  33: 'u16',
  34: 'u16',
  35: 'u16',
  36: 'u8',
  37: 'u8',
  38: 'pair',
  39: 'u32',
  40: 'u8',
  41: 'u8',
  42: 'u8',
};

/** A property with a value of its proper type. */
export function prop(id: number, value: number | string | Buffer | [string, string]): Prop {
  const t = PROP_TYPE[id];
  if (t === 'pair') {
    const [k, v] = value as [string, string];
    return { id, f: [str(k), str(v)] };
  }
  switch (t) {
    case 'u8':
      return { id, f: [u8(value as number)] };
    case 'u16':
      return { id, f: [u16(value as number)] };
    case 'u32':
      return { id, f: [u32(value as number)] };
    case 'vbi':
      return { id, f: [vb(value as number)] };
    case 'str':
      return { id, f: [str(value as string)] };
    case 'bin':
      return { id, f: [bin(value as Buffer)] };
    default:
      // An unknown identifier: give it a one-byte value so the bytes are still framed.
      return { id, f: [u8(typeof value === 'number' ? value : 0)] };
  }
}

/** What a session generator knows: ids in use, aliases set, the prefix for topics. */
export interface GenContext {
  v: Version;
  clientId: string;
  prefix: string;
  nextId: number;
  /** Topic aliases this session has set (v5). */
  aliases: Map<number, string>;
  /** Inbound QoS 2 ids PUBREC'd and not yet released (a PUBREL for them is valid). */
  qos2: number[];
}

const SEGMENTS = ['a', 'b', 'sensor', 'x', 'é', '$x', 'ü/ß', 'long-segment-name', '0', '-'];

function topicName(r: Prng, ctx: GenContext): string {
  const n = 1 + r.int(3);
  const parts = [ctx.prefix];
  for (let i = 0; i < n; i++) parts.push(r.pick(SEGMENTS));
  return parts.join('/');
}

function topicFilter(r: Prng, ctx: GenContext): string {
  const t = topicName(r, ctx).split('/');
  if (r.bool(0.3)) t[1 + r.int(t.length - 1)] = '+';
  if (r.bool(0.3)) t.push('#');
  const f = t.join('/');
  return r.bool(0.1) ? `$share/g${r.int(3)}/${f}` : f;
}

function nextId(ctx: GenContext): number {
  const id = ctx.nextId;
  ctx.nextId = id >= 65535 ? 1 : id + 1;
  return id;
}

function userProps(r: Prng): Prop[] {
  return r.bool(0.3) ? [prop(P.userProperty, ['k', r.pick(['v', 'é', ''])])] : [];
}

export function connectModel(r: Prng, ctx: GenContext): Model {
  const v = ctx.v;
  const will = r.bool(0.15);
  const user = r.bool(0.2);
  // v3.1.1: a password needs a user name [MQTT-3.1.2-22]; v5 allows one alone.
  const pass = user ? r.bool(0.7) : v === 5 && r.bool(0.05);
  const willQos = will ? r.int(3) : 0;
  const flags =
    (user ? 0x80 : 0) |
    (pass ? 0x40 : 0) |
    (will && r.bool(0.2) ? 0x20 : 0) |
    (willQos << 3) |
    (will ? 0x04 : 0) |
    0x02; // clean start: fuzz sessions must not outlive their connection
  const body: Field[] = [str('MQTT'), u8(v), u8(flags), u16(r.pick([0, 10, 60, 600]))];
  if (v === 5) {
    const p: Prop[] = [];
    if (r.bool(0.3)) p.push(prop(P.receiveMaximum, 1 + r.int(100)));
    if (r.bool(0.3)) p.push(prop(P.maximumPacketSize, 1024 + r.int(100_000)));
    if (r.bool(0.3)) p.push(prop(P.topicAliasMaximum, r.int(10)));
    if (r.bool(0.2)) p.push(prop(P.requestProblemInfo, r.int(2)));
    if (r.bool(0.2)) p.push(prop(P.requestResponseInfo, r.int(2)));
    p.push(...userProps(r));
    body.push(props(p));
  }
  body.push(str(ctx.clientId));
  if (will) {
    if (v === 5) {
      const wp: Prop[] = [];
      if (r.bool(0.3)) wp.push(prop(P.willDelay, 0));
      if (r.bool(0.3)) wp.push(prop(P.payloadFormat, 0));
      if (r.bool(0.3)) wp.push(prop(P.messageExpiry, 60));
      if (r.bool(0.2)) wp.push(prop(P.contentType, 'text/plain'));
      body.push(props(wp));
    }
    body.push(str(topicName(r, ctx)), bin(r.bytes(r.int(20))));
  }
  if (user) body.push(str(r.pick(['user', 'ü', 'device-1'])));
  if (pass) body.push(bin(r.bytes(r.int(16))));
  return { name: 'CONNECT', type: 1, flags: 0, body };
}

export function publishModel(r: Prng, ctx: GenContext): Model {
  const qos = r.int(3);
  const retain = r.bool(0.05);
  const dup = qos > 0 && r.bool(0.2);
  let topic = topicName(r, ctx);
  const p: Prop[] = [];
  if (ctx.v === 5) {
    if (r.bool(0.2)) p.push(prop(P.payloadFormat, 0));
    if (r.bool(0.2)) p.push(prop(P.messageExpiry, 1 + r.int(1000)));
    if (r.bool(0.2)) p.push(prop(P.contentType, r.pick(['text/plain', 'application/json', ''])));
    if (r.bool(0.2)) p.push(prop(P.responseTopic, topicName(r, ctx)));
    if (r.bool(0.2)) p.push(prop(P.correlationData, r.bytes(r.int(16))));
    p.push(...userProps(r));
    if (r.bool(0.2)) {
      // Topic alias (the broker's Topic Alias Maximum is 64): set one, or use one already set.
      const known = [...ctx.aliases.keys()];
      if (known.length > 0 && r.bool(0.5)) {
        p.push(prop(P.topicAlias, r.pick(known)));
        topic = '';
      } else {
        const alias = 1 + r.int(64);
        ctx.aliases.set(alias, topic);
        p.push(prop(P.topicAlias, alias));
      }
    }
  }
  const body: Field[] = [str(topic)];
  if (qos > 0) {
    const id = nextId(ctx);
    body.push(u16(id));
    if (qos === 2) ctx.qos2.push(id);
  }
  if (ctx.v === 5) body.push(props(p));
  const size = r.pick([0, 1, 10, 100, 1000, 200, 5000]);
  body.push({ k: 'raw', v: r.bytes(size) });
  return { name: 'PUBLISH', type: 3, flags: (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0), body };
}

export function subscribeModel(r: Prng, ctx: GenContext): Model {
  const n = 1 + r.int(3);
  const body: Field[] = [u16(nextId(ctx))];
  if (ctx.v === 5) {
    const p: Prop[] = [];
    if (r.bool(0.3)) p.push(prop(P.subscriptionId, 1 + r.int(268_435_454)));
    p.push(...userProps(r));
    body.push(props(p));
  }
  for (let i = 0; i < n; i++) {
    const filter = topicFilter(r, ctx);
    // v5 options: QoS, No Local (not on shared), Retain As Published, Retain Handling 0-2.
    const qos = r.int(3);
    let opts = qos;
    if (ctx.v === 5) {
      if (!filter.startsWith('$share/') && r.bool(0.2)) opts |= 0x04;
      if (r.bool(0.2)) opts |= 0x08;
      opts |= r.int(3) << 4;
    }
    body.push(str(filter), u8(opts));
  }
  return { name: 'SUBSCRIBE', type: 8, flags: 2, body };
}

export function unsubscribeModel(r: Prng, ctx: GenContext): Model {
  const body: Field[] = [u16(nextId(ctx))];
  if (ctx.v === 5) body.push(props(userProps(r)));
  const n = 1 + r.int(2);
  for (let i = 0; i < n; i++) body.push(str(topicFilter(r, ctx)));
  return { name: 'UNSUBSCRIBE', type: 10, flags: 2, body };
}

/** PUBACK/PUBREC/PUBCOMP for any id (unknown ids are tolerated), PUBREL for a PUBREC'd id. */
export function ackModel(r: Prng, ctx: GenContext): Model {
  const kinds = ['PUBACK', 'PUBREC', 'PUBCOMP', 'PUBREL'] as const;
  const name = r.pick(kinds);
  const type = { PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7 }[name];
  let id = 1 + r.int(65535);
  if (name === 'PUBREL' && ctx.qos2.length > 0) id = ctx.qos2.shift()!;
  const body: Field[] = [u16(id)];
  if (ctx.v === 5 && r.bool(0.5)) {
    const rc = name === 'PUBREL' || name === 'PUBCOMP' ? r.pick([0, 0x92]) : r.pick([0, 0x10, 0x80, 0x87]);
    body.push(u8(rc));
    if (r.bool(0.5)) body.push(props(r.bool(0.5) ? [prop(P.reasonString, 'why')] : userProps(r)));
  }
  return { name, type, flags: name === 'PUBREL' ? 2 : 0, body };
}

export function pingModel(): Model {
  return { name: 'PINGREQ', type: 12, flags: 0, body: [] };
}

export function disconnectModel(r: Prng, ctx: GenContext): Model {
  const body: Field[] = [];
  if (ctx.v === 5 && r.bool(0.6)) {
    body.push(u8(r.pick([0, 0x04])));
    if (r.bool(0.5))
      body.push(props(r.bool(0.5) ? [prop(P.reasonString, 'bye')] : [prop(P.sessionExpiry, 0)]));
  }
  return { name: 'DISCONNECT', type: 14, flags: 0, body };
}

/** A random valid packet after CONNECT (not DISCONNECT: that ends the session). */
export function randomModel(r: Prng, ctx: GenContext): Model {
  const k = r.int(10);
  if (k < 4) return publishModel(r, ctx);
  if (k < 6) return subscribeModel(r, ctx);
  if (k < 7) return unsubscribeModel(r, ctx);
  if (k < 9) return ackModel(r, ctx);
  return pingModel();
}

// ---- targeted mutations: known-invalid packets and the reaction the spec requires ----

/**
 * What the broker must do with a known-invalid packet: close the connection; on a v5 connection
 * after CONNACK with a DISCONNECT carrying one of `v5`, and for a refused v5 CONNECT with a CONNACK
 * carrying one of `connack` (or a plain close if the CONNECT could not be decoded at all).
 */
export interface Expectation {
  rule: string;
  /** The spec lets the receiver choose (a MAY): closing is allowed, staying open too. */
  optional?: boolean;
  v5: readonly number[];
  connack?: readonly number[];
}

export interface Targeted {
  name: string;
  applies(m: Model, v: Version): boolean;
  /** Mutates `m` in place; returns what the broker must do. */
  apply(r: Prng, m: Model, v: Version): Expectation;
}

const MALFORMED = 0x81;
const PROTOCOL_ERROR = 0x82;

function strFields(m: Model): Field[] {
  const out: Field[] = [];
  const walk = (fs: Field[]) => {
    for (const f of fs) {
      if (f.k === 'str') out.push(f);
      else if (f.k === 'props') for (const p of f.v) walk(p.f);
    }
  };
  walk(m.body);
  return out;
}

function propSections(m: Model): Extract<Field, { k: 'props' }>[] {
  return m.body.filter((f): f is Extract<Field, { k: 'props' }> => f.k === 'props');
}

/** Ill-formed UTF-8 [MQTT-1.5.4-1]: overlong NUL, a UTF-16 surrogate, a truncated sequence, 0xFF. */
const BAD_UTF8 = [
  Buffer.from([0xc0, 0x80]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xff]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
];

export const TARGETED: readonly Targeted[] = [
  {
    // [MQTT-2.2.2-2] reserved fixed-header flags: SUBSCRIBE/UNSUBSCRIBE/PUBREL 0010, others 0000.
    name: 'reserved-flags',
    applies: (m) => m.type !== 3,
    apply(r, m) {
      const good = m.flags;
      do m.flags = r.int(16);
      while (m.flags === good);
      return { rule: 'MQTT-2.2.2-2', v5: [MALFORMED], connack: [MALFORMED] };
    },
  },
  {
    name: 'publish-qos3', // [MQTT-3.3.1-4]
    applies: (m) => m.type === 3,
    apply(_r, m) {
      m.flags |= 0x06;
      // QoS 3 has no packet id field in the decoder's eyes; keep the body as it was.
      return { rule: 'MQTT-3.3.1-4', v5: [MALFORMED] };
    },
  },
  {
    name: 'packet-id-0', // [MQTT-2.2.1-3] non-zero packet identifiers
    applies: (m) =>
      ((m.type === 3 && (m.flags & 6) !== 0) ||
        m.type === 8 ||
        m.type === 10 ||
        (m.type >= 4 && m.type <= 7)) &&
      m.body.some((f) => f.k === 'u16'),
    apply(_r, m) {
      const at = m.type === 3 ? 1 : 0;
      m.body[at] = { k: 'u16', v: 0 };
      return { rule: 'MQTT-2.2.1-3', v5: [MALFORMED, PROTOCOL_ERROR] };
    },
  },
  {
    name: 'publish-topic-wildcard', // [MQTT-3.3.2-2]
    applies: (m) => m.type === 3 && m.body[0]!.k === 'str' && (m.body[0] as { v: Buffer }).v.length > 0,
    apply(r, m) {
      const t = (m.body[0] as { v: Buffer }).v.toString();
      m.body[0] = { k: 'str', v: Buffer.from(`${t}/${r.pick(['+', '#', 'a+', '#/b'])}`) };
      return { rule: 'MQTT-3.3.2-2', v5: [0x90, PROTOCOL_ERROR, MALFORMED] };
    },
  },
  {
    name: 'string-bad-utf8', // [MQTT-1.5.4-1] ill-formed UTF-8 in any UTF-8 string field
    applies: (m) => strFields(m).length > 0 && m.type !== 1,
    apply(r, m) {
      const f = r.pick(strFields(m)) as { v: Buffer };
      const at = r.int(f.v.length + 1);
      f.v = Buffer.concat([f.v.subarray(0, at), r.pick(BAD_UTF8), f.v.subarray(at)]);
      return { rule: 'MQTT-1.5.4-1', v5: [MALFORMED] };
    },
  },
  {
    name: 'string-nul', // [MQTT-1.5.4-2] U+0000 in a UTF-8 string
    applies: (m) => strFields(m).length > 0 && m.type !== 1,
    apply(r, m) {
      const f = r.pick(strFields(m)) as { v: Buffer };
      const at = r.int(f.v.length + 1);
      f.v = Buffer.concat([f.v.subarray(0, at), Buffer.from([0]), f.v.subarray(at)]);
      // "it MAY treat it as a Malformed Packet" [MQTT-1.5.4-2]; a topic may be refused as invalid.
      return { rule: 'MQTT-1.5.4-2', v5: [MALFORMED, 0x90, 0x8f, PROTOCOL_ERROR], optional: true };
    },
  },
  {
    name: 'string-length-overrun', // a length prefix pointing past the end of the packet
    applies: (m) => m.body.some((f) => f.k === 'str' || f.k === 'bin'),
    apply(r, m) {
      // The last string/binary field: its length runs past the end of the Remaining Length.
      const fields = m.body.filter((f) => f.k === 'str' || f.k === 'bin') as { v: Buffer; len?: number }[];
      const f = fields[fields.length - 1]!;
      const after = m.body.slice(m.body.indexOf(f as Field) + 1);
      const tail = after.reduce((n, x) => n + encodedSize(x), 0);
      f.len = f.v.length + tail + 1 + r.int(100);
      return {
        rule: 'MQTT-1.5.4 (length beyond packet)',
        v5: [MALFORMED, PROTOCOL_ERROR],
        connack: [MALFORMED],
      };
    },
  },
  {
    name: 'props-duplicate', // [MQTT-2.2.2-?] a property other than User Property included twice
    applies: (m, v) => v === 5 && propSections(m).some((s) => s.v.some((p) => p.id !== P.userProperty)),
    apply(r, m) {
      const s = r.pick(propSections(m).filter((x) => x.v.some((p) => p.id !== P.userProperty)));
      const p = r.pick(s.v.filter((x) => x.id !== P.userProperty));
      s.v.push({ id: p.id, f: p.f.map((f) => ({ ...f })) as Field[] });
      return {
        rule: 'MQTT-2.2.2 (duplicate property)',
        v5: [PROTOCOL_ERROR, MALFORMED],
        connack: [PROTOCOL_ERROR, MALFORMED],
      };
    },
  },
  {
    name: 'props-unknown-id', // an identifier that is not a property: Malformed
    applies: (m, v) => v === 5 && propSections(m).length > 0,
    apply(r, m) {
      const s = r.pick(propSections(m));
      s.v.push({ id: r.pick([0x00, 0x04, 0x05, 0x0a, 0x10, 0x2b, 0x7f]), f: [u8(1)] });
      return {
        rule: 'MQTT-2.2.2 (unknown property)',
        v5: [MALFORMED, PROTOCOL_ERROR],
        connack: [MALFORMED, PROTOCOL_ERROR],
      };
    },
  },
  {
    name: 'props-length-overrun', // property length beyond the packet
    applies: (m, v) => v === 5 && propSections(m).length > 0,
    apply(r, m) {
      const s = r.pick(propSections(m));
      const inner = encodedSize({ k: 'props', v: s.v }) - 1;
      const after = m.body.slice(m.body.indexOf(s) + 1).reduce((n, x) => n + encodedSize(x), 0);
      s.len = inner + after + 1 + r.int(50);
      return {
        rule: 'MQTT-2.2.2 (property length)',
        v5: [MALFORMED, PROTOCOL_ERROR],
        connack: [MALFORMED, PROTOCOL_ERROR],
      };
    },
  },
  {
    name: 'publish-subscription-id', // [MQTT-3.3.4-6] no Subscription Identifier from a client
    applies: (m, v) => v === 5 && m.type === 3,
    apply(r, m) {
      propSections(m)[0]!.v.push(prop(P.subscriptionId, 1 + r.int(1000)));
      return { rule: 'MQTT-3.3.4-6', v5: [PROTOCOL_ERROR] };
    },
  },
  {
    name: 'publish-topic-alias-0', // [MQTT-3.3.2-8] alias 0 → 0x94
    applies: (m, v) => v === 5 && m.type === 3,
    apply(_r, m) {
      const s = propSections(m)[0]!;
      s.v = s.v.filter((p) => p.id !== P.topicAlias);
      s.v.push(prop(P.topicAlias, 0));
      return { rule: 'MQTT-3.3.2-8', v5: [0x94, PROTOCOL_ERROR] };
    },
  },
  {
    name: 'publish-payload-format-2', // Payload Format Indicator must be 0 or 1
    applies: (m, v) => v === 5 && m.type === 3,
    apply(r, m) {
      const s = propSections(m)[0]!;
      s.v = s.v.filter((p) => p.id !== P.payloadFormat);
      s.v.push(prop(P.payloadFormat, 2 + r.int(250)));
      // §3.3.2.3.2 defines 0 and 1 only, but names no reaction to other values.
      return { rule: 'MQTT-3.3.2.3.2 (payload format 0/1)', v5: [PROTOCOL_ERROR, MALFORMED], optional: true };
    },
  },
  {
    name: 'subscribe-options-reserved', // [MQTT-3.8.3-5] reserved bits 6-7; QoS 3; Retain Handling 3
    applies: (m) => m.type === 8,
    apply(r, m) {
      const opts = m.body.filter((f, i) => f.k === 'u8' && i > 0) as { v: number }[];
      const o = r.pick(opts);
      o.v = r.pick([o.v | 0x40, o.v | 0x80, o.v | 0x03, o.v | 0x30]);
      return { rule: 'MQTT-3.8.3-5', v5: [MALFORMED, PROTOCOL_ERROR] };
    },
  },
  {
    name: 'subscribe-empty', // [MQTT-3.8.3-3] at least one topic filter
    applies: (m) => m.type === 8 || m.type === 10,
    apply(_r, m) {
      m.body = m.body.filter((f, i) => i === 0 || f.k === 'props');
      return { rule: 'MQTT-3.8.3-3 / MQTT-3.10.3-2', v5: [PROTOCOL_ERROR, MALFORMED] };
    },
  },
  {
    name: 'subscribe-id-0', // Subscription Identifier 0 is a Protocol Error
    applies: (m, v) => v === 5 && m.type === 8,
    apply(_r, m) {
      const s = propSections(m)[0]!;
      s.v = s.v.filter((p) => p.id !== P.subscriptionId);
      s.v.push(prop(P.subscriptionId, 0));
      return { rule: 'MQTT-3.8.2.1.2 (subscription id 0)', v5: [PROTOCOL_ERROR, MALFORMED] };
    },
  },
  {
    name: 'vbi-overlong', // [MQTT-1.5.5-1] a Variable Byte Integer of more than 4 bytes
    applies: (m, v) => v === 5 && propSections(m).length > 0,
    apply(_r, m) {
      const s = propSections(m)[0]!;
      // Five bytes of property length: 0x80 0x80 0x80 0x80 0x00 (never valid).
      const i = m.body.indexOf(s);
      const inner: number[] = [];
      for (const p of s.v) {
        inner.push(...vbi(p.id));
        for (const f of p.f) encodeField(f, inner);
      }
      m.body[i] = { k: 'raw', v: Buffer.from([0x80, 0x80, 0x80, 0x80, 0x00, ...inner]) };
      return { rule: 'MQTT-1.5.5-1', v5: [MALFORMED], connack: [MALFORMED] };
    },
  },
  {
    name: 'second-connect', // [MQTT-3.1.0-2]
    applies: (m) => m.type === 12,
    apply(_r, m) {
      m.type = 1;
      m.body = [str('MQTT'), u8(4), u8(2), u16(30), str('again')];
      return { rule: 'MQTT-3.1.0-2', v5: [PROTOCOL_ERROR, MALFORMED] };
    },
  },
  {
    name: 'auth-packet', // no AUTH without enhanced authentication [MQTT-4.12.0-1]
    applies: (m) => m.type === 12,
    apply(_r, m) {
      m.type = 15;
      m.body = [u8(0x18), props([prop(P.authMethod, 'x')])];
      return { rule: 'MQTT-4.12.0-1', v5: [PROTOCOL_ERROR, MALFORMED] };
    },
  },
  {
    name: 'server-packet', // CONNACK/SUBACK/UNSUBACK/PINGRESP/type 0 from a client
    applies: (m) => m.type === 12,
    apply(r, m) {
      m.type = r.pick([0, 2, 9, 11, 13]);
      m.flags = 0;
      m.body = m.type === 13 || m.type === 0 ? [] : [u16(1), u8(0)];
      return { rule: 'MQTT-2.1.2 (server-to-client packet)', v5: [MALFORMED, PROTOCOL_ERROR] };
    },
  },
  {
    name: 'remaining-length-5-bytes', // [MQTT-1.5.5-1] on the fixed header
    applies: () => true,
    apply(_r, m) {
      m.lengthBytes = 5;
      return { rule: 'MQTT-1.5.5-1 (Remaining Length)', v5: [MALFORMED], connack: [MALFORMED] };
    },
  },
];

/** Bytes a field takes when encoded. */
export function encodedSize(f: Field): number {
  const out: number[] = [];
  encodeField(f, out);
  return out.length;
}

/** CONNECT-specific invalid cases (refused with a CONNACK reason code, or closed). */
export const TARGETED_CONNECT: readonly Targeted[] = [
  {
    name: 'connect-reserved-flag', // [MQTT-3.1.2-3]
    applies: (m) => m.type === 1,
    apply(_r, m) {
      (m.body[2] as { v: number }).v |= 0x01;
      return { rule: 'MQTT-3.1.2-3', v5: [MALFORMED], connack: [MALFORMED] };
    },
  },
  {
    name: 'connect-will-flags', // [MQTT-3.1.2-11] will QoS/retain without the will flag; QoS 3
    applies: (m) => m.type === 1,
    apply(r, m) {
      const f = m.body[2] as { v: number };
      if ((f.v & 0x04) !== 0) f.v |= 0x18;
      else f.v |= r.pick([0x08, 0x10, 0x20]);
      return {
        rule: 'MQTT-3.1.2-11/12/13',
        v5: [MALFORMED, PROTOCOL_ERROR],
        connack: [MALFORMED, PROTOCOL_ERROR],
      };
    },
  },
  {
    name: 'connect-protocol-name', // [MQTT-3.1.2-1]
    applies: (m) => m.type === 1,
    apply(r, m) {
      m.body[0] = str(r.pick(['MQTX', 'mqtt', 'MQ', 'MQTTT']));
      // 0x84 Unsupported Protocol Version (or 0x81/0x82) for v5; v3.1.1 may answer return code 1.
      return {
        rule: 'MQTT-3.1.2-1',
        v5: [0x84, MALFORMED, PROTOCOL_ERROR],
        connack: [0x84, MALFORMED, PROTOCOL_ERROR, 0x01],
      };
    },
  },
  {
    name: 'connect-client-id-bad-utf8', // [MQTT-1.5.4-1] / [MQTT-3.1.3-4]
    applies: (m) => m.type === 1,
    apply(r, m) {
      const i = m.body.findIndex((f, k) => f.k === 'str' && k > 0);
      m.body[i] = { k: 'str', v: Buffer.concat([Buffer.from('dev'), r.pick(BAD_UTF8)]) };
      return { rule: 'MQTT-1.5.4-1 (client id)', v5: [MALFORMED, 0x85], connack: [MALFORMED, 0x85, 0x02] };
    },
  },
  {
    name: 'connect-receive-maximum-0', // Receive Maximum 0 is a Protocol Error
    applies: (m, v) => v === 5 && m.type === 1,
    apply(_r, m) {
      const s = propSections(m)[0]!;
      s.v = s.v.filter((p) => p.id !== P.receiveMaximum);
      s.v.push(prop(P.receiveMaximum, 0));
      return { rule: 'MQTT-3.1.2.11.3 (Receive Maximum 0)', v5: [PROTOCOL_ERROR], connack: [PROTOCOL_ERROR] };
    },
  },
  {
    name: 'connect-request-problem-info-2', // values other than 0/1 are a Protocol Error
    applies: (m, v) => v === 5 && m.type === 1,
    apply(_r, m) {
      const s = propSections(m)[0]!;
      s.v = s.v.filter((p) => p.id !== P.requestProblemInfo);
      s.v.push(prop(P.requestProblemInfo, 2));
      return {
        rule: 'MQTT-3.1.2.11.7 (Request Problem Information 0/1)',
        v5: [PROTOCOL_ERROR, MALFORMED],
        connack: [PROTOCOL_ERROR, MALFORMED],
      };
    },
  },
  {
    name: 'connect-password-without-username', // [MQTT-3.1.2-22] (3.1.1 only)
    applies: (m, v) => v === 4 && m.type === 1,
    apply(r, m) {
      const f = m.body[2] as { v: number };
      // The user name is the last string field when present (after client id and will topic).
      if ((f.v & 0x80) !== 0) {
        let last = -1;
        m.body.forEach((x, i) => {
          if (x.k === 'str') last = i;
        });
        m.body.splice(last, 1);
      }
      if ((f.v & 0x40) === 0) m.body.push(bin(r.bytes(4)));
      f.v = (f.v & ~0x80) | 0x40;
      return { rule: 'MQTT-3.1.2-22', v5: [MALFORMED], connack: [MALFORMED, 0x04, 0x05] };
    },
  },
];
