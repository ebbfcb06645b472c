/**
 * MQTT names → NATS names (issue 15). An MQTT topic level may hold anything a NATS token may not
 * (`.`, spaces, `*`, `>`, nothing at all), so each level is kept as it is when it is plainly safe
 * (`[A-Za-z0-9_-]+`) and written as `=` + base64url(UTF-8) otherwise (the empty level is `=`).
 * The same encoding is valid in JetStream KV keys (`[-/_=.A-Za-z0-9]`), so retained messages are
 * keyed per level too and a wildcard filter maps onto a KV key filter.
 *
 * Subjects: `<prefix>.<q>.<level>.<level>…` where `q` is `0` for QoS 0 (core NATS only) and `1`
 * for QoS 1/2 (captured by the JetStream message stream, `<prefix>.1.>`). QoS 0 is spread over
 * `cluster.liveConnections` shards by topic (`liveToken`: `0`, `0-1`, `0-2`…), each published and
 * subscribed on its own NATS connection of every node (nats-cluster.ts).
  MQTT `+` is NATS `*`; MQTT `a/#` matches `a` itself too,
 * so it is two NATS subscriptions: `…a` and `…a.>`. What NATS matches is a superset of what MQTT
 * matches (`#` and `+` never match a `$` first level in MQTT): the receiving node re-checks with
 * its MQTT matcher (router.ts `routeRemote`).
 */

const SAFE = /^[A-Za-z0-9_-]+$/;

export function encodeLevel(level: string): string {
  if (SAFE.test(level)) return level;
  return `=${Buffer.from(level, 'utf8').toString('base64url')}`;
}

export function decodeLevel(token: string): string {
  if (token.charCodeAt(0) !== 0x3d /* = */) return token;
  return Buffer.from(token.slice(1), 'base64url').toString('utf8');
}

/** `a/b/c` → `a.b.c` with each level encoded. */
export function encodeTopic(topic: string): string {
  let out = '';
  let start = 0;
  for (;;) {
    const end = topic.indexOf('/', start);
    const level = end === -1 ? topic.slice(start) : topic.slice(start, end);
    out += start === 0 ? encodeLevel(level) : `.${encodeLevel(level)}`;
    if (end === -1) return out;
    start = end + 1;
  }
}

export function decodeTopic(key: string): string {
  return key.split('.').map(decodeLevel).join('/');
}

/** The subject a message on `topic` is published to (`shard`: QoS 0 only, see `topicShard`). */
export function publishSubject(prefix: string, durable: boolean, topic: string, shard = 0): string {
  return `${prefix}.${durable ? '1' : liveToken(shard)}.${encodeTopic(topic)}`;
}

/** The QoS token of QoS 0 shard `shard`: `0` for the first (the subjects of a single shard), then `0-1`, `0-2`… */
export function liveToken(shard: number): string {
  return shard === 0 ? '0' : `0-${shard}`;
}

/**
 * The QoS 0 shard of `topic` among `shards` (FNV-1a of the topic): one topic always takes the same
 * shard, so its messages stay in order.
 */
export function topicShard(topic: string, shards: number): number {
  if (shards === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) h = Math.imul(h ^ topic.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

/**
 * The subjects that together receive every message an MQTT filter matches (a superset). `any`:
 * the QoS token (`*` for live routing, `1` for the durable stream).
 */
export function filterSubjects(prefix: string, filter: string, q = '*'): string[] {
  const levels = filter.split('/');
  const tokens: string[] = [];
  for (const level of levels) {
    if (level === '+') tokens.push('*');
    else if (level === '#') {
      const parent = tokens.length === 0 ? null : `${prefix}.${q}.${tokens.join('.')}`;
      const all = `${prefix}.${q}.${tokens.length === 0 ? '' : `${tokens.join('.')}.`}>`;
      return parent === null ? [all] : [parent, all];
    } else tokens.push(encodeLevel(level));
  }
  return [`${prefix}.${q}.${tokens.join('.')}`];
}

/** A client id as one KV key token. */
export function clientKey(clientId: string): string {
  return encodeLevel(clientId);
}
