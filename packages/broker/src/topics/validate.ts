/**
 * Topic name and topic filter validation (MQTT 5.0 §4.7, §4.8.2; the same rules hold for 3.1.1 §4.7).
 * Both functions run on the hot path (every PUBLISH / every SUBSCRIBE entry), so they scan the
 * string once by char code and allocate nothing on success.
 */

const SLASH = 0x2f; // '/'
const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'
const NUL = 0x00;

/** Topic names and filters are UTF-8 strings with a two-byte length prefix [MQTT-1.5.4]. */
const MAX_UTF8_BYTES = 65535;
/** A UTF-16 code unit encodes to at most 3 UTF-8 bytes, so shorter strings can skip the count. */
const SAFE_LENGTH = Math.floor(MAX_UTF8_BYTES / 3);

const SHARE_PREFIX = '$share/';

function tooLong(s: string): boolean {
  return s.length > SAFE_LENGTH && Buffer.byteLength(s, 'utf8') > MAX_UTF8_BYTES;
}

/**
 * A topic name a PUBLISH may carry: at least one character [MQTT-4.7.3-1], no wildcard characters
 * [MQTT-3.3.2-2], no U+0000 [MQTT-1.5.4-2], at most 65,535 UTF-8 bytes.
 */
export function isValidTopicName(topic: string): boolean {
  const n = topic.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = topic.charCodeAt(i);
    if (c === PLUS || c === HASH || c === NUL) return false;
  }
  return !tooLong(topic);
}

export type ParsedFilter =
  | { ok: true; filter: string; shareGroup: string | null }
  | { ok: false; reason: string };

/** Checks wildcard placement in a (non-shared) topic filter; returns the reason or null. */
function filterProblem(filter: string): string | null {
  const n = filter.length;
  // [MQTT-4.7.3-1] all topic names and filters must be at least one character long.
  if (n === 0) return 'topic filter is empty';
  let levelStart = 0;
  for (let i = 0; i < n; i++) {
    const c = filter.charCodeAt(i);
    if (c === SLASH) {
      levelStart = i + 1;
    } else if (c === NUL) {
      return 'topic filter contains U+0000'; // [MQTT-1.5.4-2]
    } else if (c === HASH) {
      // [MQTT-4.7.1-2] '#' must occupy a whole level and be the last character of the filter.
      if (i !== levelStart) return "'#' must occupy an entire topic level";
      if (i !== n - 1) return "'#' must be the last character of the topic filter";
    } else if (c === PLUS) {
      // [MQTT-4.7.1-3] '+' must occupy an entire level.
      if (i !== levelStart) return "'+' must occupy an entire topic level";
      if (i + 1 < n && filter.charCodeAt(i + 1) !== SLASH) return "'+' must occupy an entire topic level";
    }
  }
  return null;
}

/**
 * Validates a SUBSCRIBE/UNSUBSCRIBE topic filter and splits a shared subscription
 * `$share/{ShareName}/{filter}` into its group and filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
 * Whether shared subscriptions are allowed for the client's protocol version is the caller's call.
 */
export function parseTopicFilter(raw: string): ParsedFilter {
  if (tooLong(raw)) return { ok: false, reason: 'topic filter is longer than 65535 bytes' };
  if (!raw.startsWith(SHARE_PREFIX)) {
    const problem = filterProblem(raw);
    return problem === null ? { ok: true, filter: raw, shareGroup: null } : { ok: false, reason: problem };
  }
  const groupEnd = raw.indexOf('/', SHARE_PREFIX.length);
  const group = raw.slice(SHARE_PREFIX.length, groupEnd === -1 ? raw.length : groupEnd);
  // [MQTT-4.8.2-1] the ShareName is at least one character and contains no '/', '+' or '#'.
  if (group.length === 0) return { ok: false, reason: 'shared subscription share name is empty' };
  // [MQTT-4.8.2-2] the ShareName must be followed by a '/' and a topic filter.
  if (groupEnd === -1)
    return { ok: false, reason: 'shared subscription has no topic filter after the share name' };
  if (group.includes('+') || group.includes('#')) {
    return { ok: false, reason: "shared subscription share name must not contain '+' or '#'" };
  }
  if (group.includes('\u0000'))
    return { ok: false, reason: 'shared subscription share name contains U+0000' };
  const filter = raw.slice(groupEnd + 1);
  if (filter.length === 0) return { ok: false, reason: 'shared subscription has an empty topic filter' };
  const problem = filterProblem(filter);
  return problem === null ? { ok: true, filter, shareGroup: group } : { ok: false, reason: problem };
}
