/**
 * Authorization rules (issue 13, item 1): the rule model shared by the config file, the rules file
 * and the control-plane API, its compiled form, and the one-line text format of the rules file.
 *
 *   # permission  action     topic                 conditions (all must hold; none = everyone)
 *   deny          subscribe  #                     username=guest
 *   allow         all        devices/%c/#
 *   deny          publish    $fleet/+/ota          source=10.0.0.0/8 listener=public
 *
 * Conditions: `clientid=`, `username=`, `cn=` (client certificate common name) take an exact value
 * or a glob with `*`; `listener=` a listener name; `source=` an address or CIDR (IPv4 or IPv6).
 * Topic placeholders: `%c` / `{clientId}` (client id), `%u` / `{username}` (username).
 */
import { BlockList, isIP } from 'node:net';
import { BreakwaterError } from '../errors.js';
import { GuardError } from './errors.js';

export const authzPermissions = ['allow', 'deny'] as const;
/** `both` is accepted as a synonym of `all` (Mosquitto says readwrite, EMQX all). */
export const authzActions = ['publish', 'subscribe', 'all', 'both'] as const;
export type AuthzPermission = (typeof authzPermissions)[number];
export type AuthzAction = (typeof authzActions)[number];

/** A rule as written in config, the rules file and the API (JSON). */
export interface AuthzRule {
  permission?: AuthzPermission;
  action?: AuthzAction;
  topic: string;
  clientId?: string;
  username?: string;
  certCn?: string;
  listener?: string;
  source?: string;
}

/** Who asks: everything a rule condition can look at. */
export interface Principal {
  clientId: string;
  username: string | undefined;
  superuser: boolean;
  /** Common name of the verified client certificate (mTLS). */
  certCn?: string | undefined;
  listener?: string | undefined;
  /** The peer's IP address as the socket reports it (`::ffff:` IPv4-mapped forms included). */
  source?: string | undefined;
}

type StringMatcher = string | RegExp | null;

export interface CompiledRule {
  readonly allow: boolean;
  readonly publish: boolean;
  readonly subscribe: boolean;
  /** The topic filter split at `/`; levels holding a placeholder are resolved per principal. */
  readonly levels: readonly string[];
  /**
   * Per level: LITERAL, CLIENT_ID / USERNAME (the whole level is that placeholder: substituted
   * without a regex), or MIXED (placeholders inside other text). null: no placeholder at all.
   */
  readonly levelKinds: readonly number[] | null;
  readonly clientId: StringMatcher;
  readonly username: StringMatcher;
  readonly certCn: StringMatcher;
  readonly listener: string | null;
  readonly source: BlockList | null;
  /** The rule in the rules-file syntax (what `authz check` prints). */
  readonly text: string;
  readonly origin: string;
}

/** A rule that cannot be compiled: `field` names the key (`source`, `topic`, …), `detail` the problem. */
export class AuthzRuleError extends BreakwaterError {
  declare readonly code: 'BW_ERR_AUTHZ_RULE';

  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super('BW_ERR_AUTHZ_RULE', `${field}: ${detail}`);
    this.name = 'AuthzRuleError';
  }
}

const PLACEHOLDER = /%[cu]|\{clientId\}|\{username\}/;
const PLACEHOLDERS = /%[cu]|\{clientId\}|\{username\}/g;
const LITERAL = 0;
const CLIENT_ID = 1;
const USERNAME = 2;
const MIXED = 3;

function levelKind(level: string): number {
  if (level === '%c' || level === '{clientId}') return CLIENT_ID;
  if (level === '%u' || level === '{username}') return USERNAME;
  return PLACEHOLDER.test(level) ? MIXED : LITERAL;
}

/** Compiles one rule; throws AuthzRuleError naming the field at fault. */
export function compileRule(rule: AuthzRule, origin: string): CompiledRule {
  const permission = rule.permission ?? 'allow';
  if (!(authzPermissions as readonly string[]).includes(permission))
    throw new AuthzRuleError('permission', `must be allow or deny, not "${permission}"`);
  const action = rule.action ?? 'all';
  if (!(authzActions as readonly string[]).includes(action))
    throw new AuthzRuleError('action', `must be publish, subscribe or all, not "${action}"`);
  const topic = rule.topic;
  if (typeof topic !== 'string' || topic === '')
    throw new AuthzRuleError('topic', 'must be a non-empty filter');
  const levels = topic.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    // [MQTT-4.7.1-2] `#` last and alone in its level; [MQTT-4.7.1-3] `+` alone in its level.
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1))
      throw new AuthzRuleError('topic', `"${topic}": # must be the last level, alone`);
    if (l.includes('+') && l !== '+')
      throw new AuthzRuleError('topic', `"${topic}": + must be alone in its level`);
    if (l.includes('\0')) throw new AuthzRuleError('topic', 'must not contain NUL');
  }
  return {
    allow: permission === 'allow',
    publish: action !== 'subscribe',
    subscribe: action !== 'publish',
    levels,
    levelKinds: PLACEHOLDER.test(topic) ? levels.map(levelKind) : null,
    clientId: stringMatcher(rule.clientId, 'clientId'),
    username: stringMatcher(rule.username, 'username'),
    certCn: stringMatcher(rule.certCn, 'certCn'),
    listener: optionalString(rule.listener, 'listener'),
    source: rule.source === undefined ? null : cidr(rule.source),
    text: formatRule(rule),
    origin,
  };
}

function optionalString(v: unknown, field: string): string | null {
  if (v === undefined) return null;
  if (typeof v !== 'string' || v === '') throw new AuthzRuleError(field, 'must be a non-empty string');
  return v;
}

/** Exact value, or a glob where `*` stands for any run of characters. */
function stringMatcher(v: unknown, field: string): StringMatcher {
  const s = optionalString(v, field);
  if (s === null || !s.includes('*')) return s;
  const body = s
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 's');
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address (a /32 or /128). */
function cidr(v: unknown): BlockList {
  if (typeof v !== 'string' || v === '') throw new AuthzRuleError('source', 'must be an address or CIDR');
  const slash = v.indexOf('/');
  const addr = slash < 0 ? v : v.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) throw new AuthzRuleError('source', `"${v}" is not an IP address or CIDR`);
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : v.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!(prefix >= 0 && prefix <= max))
    throw new AuthzRuleError('source', `"${v}": prefix length must be 0..${max}`);
  const list = new BlockList();
  list.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
  return list;
}

function matchString(m: StringMatcher, value: string | undefined): boolean {
  if (m === null) return true;
  if (value === undefined) return false;
  return typeof m === 'string' ? m === value : m.test(value);
}

function matchSource(list: BlockList, source: string | undefined): boolean {
  if (source === undefined || source === '') return false;
  // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; rules name them as IPv4.
  const addr = source.startsWith('::ffff:') && isIP(source.slice(7)) === 4 ? source.slice(7) : source;
  const family = isIP(addr);
  if (family === 0) return false;
  return list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
}

/** Do the rule's conditions (not its topic) hold for this principal? */
export function conditionsHold(r: CompiledRule, p: Principal): boolean {
  return (
    matchString(r.clientId, p.clientId) &&
    matchString(r.username, p.username) &&
    matchString(r.certCn, p.certCn) &&
    (r.listener === null || r.listener === p.listener) &&
    (r.source === null || matchSource(r.source, p.source))
  );
}

/**
 * The rule's filter levels for this principal, or null when a placeholder has no usable value.
 * A value that is empty or contains `/`, `+`, `#` or NUL would widen the rule (client `a` must not
 * own client `a/b`'s topics, client `#` must not own everything), so the rule does not apply.
 */
export function resolveLevels(r: CompiledRule, p: Principal): readonly string[] | null {
  const kinds = r.levelKinds;
  if (kinds === null) return r.levels;
  const out = new Array<string>(kinds.length);
  for (let i = 0; i < kinds.length; i++) {
    const kind = kinds[i]!;
    if (kind === LITERAL) out[i] = r.levels[i]!;
    else if (kind === CLIENT_ID || kind === USERNAME) {
      const value = kind === CLIENT_ID ? p.clientId : p.username;
      if (!safeValue(value)) return null;
      out[i] = value;
    } else {
      // One pass: a substituted value is never scanned again (client id `%u` must not become the
      // username, nor `{clientId}` anything).
      let unusable = false;
      out[i] = r.levels[i]!.replace(PLACEHOLDERS, (ph) => {
        const value = ph === '%c' || ph === '{clientId}' ? p.clientId : p.username;
        if (safeValue(value)) return value;
        unusable = true;
        return '';
      });
      if (unusable) return null;
    }
  }
  return out;
}

function safeValue(v: string | undefined): v is string {
  return (
    v !== undefined &&
    v !== '' &&
    !v.includes('/') &&
    !v.includes('+') &&
    !v.includes('#') &&
    !v.includes('\0')
  );
}

// ── The rules-file text format ────────────────────────────────────────────────────────────────

const conditionKeys = {
  clientid: 'clientId',
  username: 'username',
  cn: 'certCn',
  listener: 'listener',
  source: 'source',
} as const satisfies Record<string, keyof AuthzRule>;

const keyOfField = Object.fromEntries(Object.entries(conditionKeys).map(([k, f]) => [f, k])) as Record<
  string,
  string
>;

/** A value printed bare when it has no space, quote, `=` or `#` start; otherwise as a JSON string. */
function token(v: string): string {
  return /^[^\s"=]+$/.test(v) && !v.startsWith('#') ? v : JSON.stringify(v);
}

/** The rule in rules-file syntax; parseRulesText(formatRule(r)) gives r back. */
export function formatRule(rule: AuthzRule): string {
  const parts: string[] = [
    rule.permission ?? 'allow',
    rule.action === 'both' ? 'all' : (rule.action ?? 'all'),
  ];
  // A bare `#` topic is fine (only a line's first token starts a comment).
  parts.push(rule.topic === '#' ? '#' : token(rule.topic));
  for (const field of ['clientId', 'username', 'certCn', 'listener', 'source'] as const) {
    const v = rule[field];
    if (v !== undefined) parts.push(`${keyOfField[field]}=${token(v)}`);
  }
  return parts.join(' ');
}

export function formatRules(rules: readonly AuthzRule[]): string {
  return rules.map((r) => `${formatRule(r)}\n`).join('');
}

export interface ParsedRule {
  rule: AuthzRule;
  line: number;
}

/** Splits a line into tokens; `"…"` is a JSON string (for topics with spaces). */
function tokenize(line: string, lineNo: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    let start = i;
    let prefix = '';
    // key="quoted value"
    const eq = /^[a-z]+=/.exec(line.slice(i));
    if (eq !== null && line[i + eq[0].length] === '"') {
      prefix = eq[0];
      start = i + eq[0].length;
    }
    if (line[start] === '"') {
      let j = start + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (j >= line.length) throw new RulesTextError(lineNo, 'unterminated quoted string');
      try {
        out.push(prefix + (JSON.parse(line.slice(start, j + 1)) as string));
      } catch {
        throw new RulesTextError(lineNo, `bad quoted string ${line.slice(start, j + 1)}`);
      }
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < line.length && line[j] !== ' ' && line[j] !== '\t') j++;
    out.push(line.slice(i, j));
    i = j;
  }
  return out;
}

/** A rules file that cannot be parsed; `line` is 1-based. */
export class RulesTextError extends BreakwaterError {
  declare readonly code: 'BW_ERR_AUTHZ_RULE';

  constructor(
    readonly line: number,
    readonly detail: string,
  ) {
    super('BW_ERR_AUTHZ_RULE', `line ${line}: ${detail}`);
    this.name = 'RulesTextError';
  }
}

/**
 * Parses the rules-file syntax. Blank lines and lines whose first token starts with `#` are
 * skipped. Every rule is also compiled, so a bad CIDR or filter is reported with its line too.
 * Throws RulesTextError (the first problem; the caller keeps its old rules).
 */
export function parseRulesText(text: string): ParsedRule[] {
  const out: ParsedRule[] = [];
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    const tokens = tokenize(lines[n]!, lineNo);
    if (tokens.length === 0 || tokens[0]!.startsWith('#')) continue;
    if (tokens.length < 3)
      throw new RulesTextError(lineNo, 'expected: allow|deny publish|subscribe|all <topic> [key=value …]');
    const [permission, action, topic] = tokens as [string, string, string];
    if (!(authzPermissions as readonly string[]).includes(permission))
      throw new RulesTextError(lineNo, `unknown permission "${permission}" (allow or deny)`);
    if (!(authzActions as readonly string[]).includes(action))
      throw new RulesTextError(lineNo, `unknown action "${action}" (publish, subscribe or all)`);
    const rule: AuthzRule = {
      permission: permission as AuthzPermission,
      action: action as AuthzAction,
      topic,
    };
    for (const t of tokens.slice(3)) {
      const eq = t.indexOf('=');
      const key = eq < 0 ? t : t.slice(0, eq).toLowerCase();
      const field = (conditionKeys as Record<string, keyof AuthzRule>)[key];
      if (eq < 0 || field === undefined)
        throw new RulesTextError(
          lineNo,
          `unknown condition "${t}" (clientid=, username=, cn=, listener=, source=)`,
        );
      if (rule[field] !== undefined) throw new RulesTextError(lineNo, `${key}= given twice`);
      (rule as unknown as Record<string, string>)[field] = t.slice(eq + 1);
    }
    try {
      compileRule(rule, `line ${lineNo}`);
    } catch (err) {
      if (err instanceof AuthzRuleError) throw new RulesTextError(lineNo, `${err.field}: ${err.detail}`);
      throw err;
    }
    out.push({ rule, line: lineNo });
  }
  return out;
}

/** Compiles a list from config or the API, naming the failing key as `<path>[i].<field>`. */
export function compileRules(rules: readonly AuthzRule[], path: string): CompiledRule[] {
  return rules.map((r, i) => {
    try {
      return compileRule(r, `${path}[${i}]`);
    } catch (err) {
      if (err instanceof AuthzRuleError)
        throw new GuardError('BW_ERR_GUARD_CONFIG', `${path}[${i}].${err.field}: ${err.detail}`);
      throw err;
    }
  });
}
