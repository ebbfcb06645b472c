import type { AuthzConfig } from './config.js';

export interface Principal {
  clientId: string;
  username: string | undefined;
  superuser: boolean;
}

interface CompiledRule {
  publish: boolean;
  subscribe: boolean;
  levels: string[];
}

const SHARE_PREFIX = '$share/';

/**
 * Topic authorization for one listener. Rules are allow-list filters with `{clientId}` and
 * `{username}` placeholders (default: `devices/{clientId}/#`; subscribe `$fleet/{clientId}/#`; publish only the reports
 * `$fleet/{clientId}/config/reported` and `$fleet/{clientId}/ota/status`).
 * A SUBSCRIBE filter is allowed only if every topic it can match is allowed, i.e. the filter is a
 * subset of a rule: `devices/me/+` is, `devices/+/temp` is not (it would read other devices).
 */
export class TopicAuthorizer {
  readonly #rules: CompiledRule[];
  readonly #superuserBypass: boolean;

  constructor(config: AuthzConfig) {
    this.#superuserBypass = config.superuserBypass;
    this.#rules = config.rules.map((r) => ({
      publish: r.action !== 'subscribe',
      subscribe: r.action !== 'publish',
      levels: r.topic.split('/'),
    }));
  }

  allowsPublish(p: Principal, topic: string): boolean {
    return this.#allows(p, topic, true);
  }

  allowsSubscribe(p: Principal, filter: string): boolean {
    let f = filter;
    if (f.startsWith(SHARE_PREFIX)) {
      // $share/{group}/{filter}: authorize the filter part (MQTT 5.0 §4.8.2).
      const slash = f.indexOf('/', SHARE_PREFIX.length);
      if (slash < 0) return false;
      f = f.slice(slash + 1);
    }
    return this.#allows(p, f, false);
  }

  #allows(p: Principal, topic: string, publish: boolean): boolean {
    if (p.superuser && this.#superuserBypass) return true;
    const levels = topic.split('/');
    for (const rule of this.#rules) {
      if (publish ? !rule.publish : !rule.subscribe) continue;
      const resolved = resolve(rule.levels, p);
      if (resolved && isSubset(levels, resolved)) return true;
    }
    return false;
  }
}

/**
 * Substitutes placeholders. A value that is empty or contains `/`, `+`, `#` or NUL would widen
 * the rule (client `a` must not own client `a/b`'s topics, client `#` must not own everything),
 * so such a rule does not apply to that principal at all.
 */
function resolve(levels: readonly string[], p: Principal): string[] | null {
  const out = new Array<string>(levels.length);
  for (let i = 0; i < levels.length; i++) {
    let l = levels[i]!;
    if (l.includes('{')) {
      for (const [ph, value] of [
        ['{clientId}', p.clientId],
        ['{username}', p.username],
      ] as const) {
        if (!l.includes(ph)) continue;
        if (
          !value ||
          value.includes('/') ||
          value.includes('+') ||
          value.includes('#') ||
          value.includes('\0')
        )
          return null;
        l = l.replaceAll(ph, value);
      }
    }
    out[i] = l;
  }
  return out;
}

/** Is every topic matched by filter `f` also matched by filter `r`? (Topic names are filters too.) */
export function isSubset(f: readonly string[], r: readonly string[]): boolean {
  for (let i = 0; i < r.length; i++) {
    const rl = r[i]!;
    // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with `$`.
    const dollarGuard = i === 0 && (f[0] ?? '').startsWith('$');
    if (rl === '#') return !dollarGuard;
    if (i >= f.length) return false;
    const fl = f[i]!;
    if (fl === '#') return false;
    if (rl === '+') {
      if (dollarGuard) return false;
      continue;
    }
    if (fl !== rl) return false;
  }
  return f.length === r.length;
}
