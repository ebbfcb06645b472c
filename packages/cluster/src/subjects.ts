/**
 * MQTT names → NATS names (issue 15). An MQTT topic level may hold anything a NATS token may not
 * (`.`, spaces, `*`, `>`, nothing at all), so each level is kept as it is when it is plainly safe
 * (`[A-Za-z0-9_-]+`) and written as `=` + base64url(UTF-8) otherwise (the empty level is `=`).
 * The same encoding is valid in JetStream KV keys (`[-/_=.A-Za-z0-9]`), so retained messages are
 * keyed per level too and a wildcard filter maps onto a KV key filter.
 *
 * Subjects: `<prefix>.<q>.<level>.<level>…` where `q` is `0` for QoS 0 (core NATS only) and `1`
 * for QoS 1/2 (captured by the JetStream message stream, `<prefix>.1.>`). A node's QoS 0
 * subscription listens on `<prefix>.0.<…>`; a shared subscription's queue group on `<prefix>.*.<…>`
 * gets both. MQTT `+` is NATS `*`; MQTT `a/#` matches `a` itself too,
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

/** The subject a message on `topic` is published to. */
export function publishSubject(prefix: string, durable: boolean, topic: string): string {
  return `${prefix}.${durable ? '1' : '0'}.${encodeTopic(topic)}`;
}

/**
 * The subjects that together receive every message an MQTT filter matches (a superset). `any`:
 * the QoS token (`*` for live routing, `1` for the durable stream).
 */
export function filterSubjects(prefix: string, filter: string, q: '*' | '0' | '1' = '*'): string[] {
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
