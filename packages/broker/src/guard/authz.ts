import {
  type AuthzRule,
  type CompiledRule,
  compileRules,
  conditionsHold,
  type Principal,
  resolveLevels,
} from './authz-rules.js';

export type { Principal } from './authz-rules.js';

/** What a TopicAuthorizer is built from: one listener's `authz` section. */
export interface AuthzOptions {
  rules: readonly AuthzRule[];
  superuserBypass: boolean;
  /** Verdict when no rule matches (default deny: the rules are an allow-list, as before issue 13). */
  default?: 'allow' | 'deny';
}

/** Why a check came out as it did (`breakwater authz check`, the API). */
export interface AuthzExplanation {
  allowed: boolean;
  /** 0-based position in the listener's effective rule list, or null (default verdict / bypass). */
  index: number | null;
  rule: { text: string; origin: string } | null;
  /** `rule`, `default` or `superuser`. */
  decidedBy: 'rule' | 'default' | 'superuser';
}

const SHARE_PREFIX = '$share/';
const NO_MATCH = -1;

/**
 * Topic authorization for one listener: an ordered list of allow/deny rules, first match wins,
 * then the default verdict. The list is the live rules (rules file / API) first, then the
 * config's global rules, then the listener's own (`prefix` holds the first two, compiled once by
 * the Guard and shared by every listener).
 *
 * PUBLISH: a rule matches when its filter matches the topic. SUBSCRIBE: an allow rule matches when
 * the requested filter is a subset of the rule's (every topic it can match is covered:
 * `devices/me/+` is under `devices/me/#`, `devices/+/temp` is not), a deny rule when the two
 * overlap (some topic matches both). So a granted subscription can never receive a topic that the
 * same rules deny to that subscriber, and no per-delivery check is needed: retained messages sent
 * on subscribe are covered by the SUBSCRIBE decision.
 */
export class TopicAuthorizer {
  readonly rules: readonly CompiledRule[];
  readonly defaultAllow: boolean;
  readonly #superuserBypass: boolean;

  constructor(config: AuthzOptions, prefix: readonly CompiledRule[] = [], path = 'authz.rules') {
    this.#superuserBypass = config.superuserBypass;
    this.defaultAllow = config.default === 'allow';
    const own = compileRules(config.rules, path);
    this.rules = prefix.length === 0 ? own : [...prefix, ...own];
  }

  allowsPublish(p: Principal, topic: string): boolean {
    if (p.superuser && this.#superuserBypass) return true;
    const i = this.#find(p, topic.split('/'), true);
    return i === NO_MATCH ? this.defaultAllow : this.rules[i]!.allow;
  }

  allowsSubscribe(p: Principal, filter: string): boolean {
    if (p.superuser && this.#superuserBypass) return true;
    const f = stripShare(filter);
    if (f === null) return false;
    const i = this.#find(p, f.split('/'), false);
    return i === NO_MATCH ? this.defaultAllow : this.rules[i]!.allow;
  }

  explain(p: Principal, action: 'publish' | 'subscribe', topic: string): AuthzExplanation {
    if (p.superuser && this.#superuserBypass)
      return { allowed: true, index: null, rule: null, decidedBy: 'superuser' };
    const t = action === 'subscribe' ? stripShare(topic) : topic;
    if (t === null) return { allowed: false, index: null, rule: null, decidedBy: 'default' };
    const i = this.#find(p, t.split('/'), action === 'publish');
    if (i === NO_MATCH) return { allowed: this.defaultAllow, index: null, rule: null, decidedBy: 'default' };
    const r = this.rules[i]!;
    return { allowed: r.allow, index: i, rule: { text: r.text, origin: r.origin }, decidedBy: 'rule' };
  }

  /** Index of the first rule that matches, or NO_MATCH. */
  #find(p: Principal, levels: readonly string[], publish: boolean): number {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (publish ? !r.publish : !r.subscribe) continue;
      if (!conditionsHold(r, p)) continue;
      const resolved = resolveLevels(r, p);
      if (resolved === null) continue;
      // A topic name is a filter without wildcards: "subset" is "matches" for PUBLISH.
      if (publish || r.allow ? isSubset(levels, resolved) : intersects(levels, resolved)) return i;
    }
    return NO_MATCH;
  }
}

/** `$share/{group}/{filter}` → `{filter}` (authorize the filter part, MQTT 5.0 §4.8.2). */
function stripShare(filter: string): string | null {
  if (!filter.startsWith(SHARE_PREFIX)) return filter;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  return slash < 0 ? null : filter.slice(slash + 1);
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

/** Is there a topic that both filters match? */
export function intersects(f: readonly string[], r: readonly string[]): boolean {
  for (let i = 0; ; i++) {
    const fEnd = i >= f.length;
    const rEnd = i >= r.length;
    if (fEnd || rEnd) {
      if (fEnd && rEnd) return true;
      // `a/#` also matches `a` (its parent level).
      return fEnd ? r[i] === '#' : f[i] === '#';
    }
    const fl = f[i]!;
    const rl = r[i]!;
    const fWild = fl === '#' || fl === '+';
    const rWild = rl === '#' || rl === '+';
    if (i === 0 && (fWild || rWild)) {
      // [MQTT-4.7.2-1] a wildcard first level never matches a `$` topic: against a literal `$…`
      // first level there is no common topic.
      if ((fWild && !rWild && rl.startsWith('$')) || (rWild && !fWild && fl.startsWith('$'))) return false;
    }
    if (fl === '#' || rl === '#') return true;
    if (fWild || rWild) continue;
    if (fl !== rl) return false;
  }
}
