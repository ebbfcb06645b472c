/**
 * A deliberately naive topic matcher (split both strings, compare level by level) and seeded
 * generators of random topics and filters, for randomized tests of the topic indexes.
 */

/** [MQTT-4.7] semantics, written the obvious way. */
export function naiveMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true; // also matches the parent: t may have exactly i levels
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Mulberry32: small, fast, and reproducible from a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A small alphabet (with the empty level and a '$' level) so random filters and topics collide often.
const LEVELS = ['a', 'b', 'c', '', '$SYS', 'dev'];

function pick(rnd: () => number, items: readonly string[]): string {
  return items[Math.floor(rnd() * items.length)] as string;
}

export function randomTopic(rnd: () => number): string {
  const n = 1 + Math.floor(rnd() * 4);
  const levels: string[] = [];
  for (let i = 0; i < n; i++) levels.push(pick(rnd, i === 0 ? LEVELS : LEVELS.slice(0, 4)));
  const topic = levels.join('/');
  return topic === '' ? 'a' : topic;
}

export function randomFilter(rnd: () => number): string {
  const n = 1 + Math.floor(rnd() * 4);
  const levels: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = rnd();
    if (r < 0.25) levels.push('+');
    else if (r < 0.35 && i === n - 1) levels.push('#');
    else levels.push(pick(rnd, i === 0 ? LEVELS : LEVELS.slice(0, 4)));
  }
  const filter = levels.join('/');
  return filter === '' ? 'a' : filter;
}
