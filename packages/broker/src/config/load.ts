import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { BreakwaterError } from '../errors.js';
import { resolveAdmissionConfig } from '../guard/admission/config.js';
import { parseRulesText, RulesTextError } from '../guard/authz-rules.js';
import { defaultRulesFile } from '../guard/authz-rules-file.js';
import { resolveGuardConfig } from '../guard/config.js';
import { ConfigError } from './errors.js';
import { integrationProblems } from './integration.js';
import { type BreakwaterConfig, ConfigSchema } from './schema.js';

/** Source name used in messages when no file is involved. */
export const FLAGS_SOURCE = 'command-line flags';

export interface ValidateConfigOptions {
  /** Named in every message: the file path, or `command-line flags`. */
  source?: string;
  /** Relative paths in the config (dataDir, storage.file, tls.*) resolve against this directory. */
  baseDir?: string;
  /**
   * Runs after schema validation and defaults, before the cross-field checks and the freeze:
   * where command-line flags override file values. May throw a ConfigError.
   */
  override?: (config: BreakwaterConfig) => void;
}

// Renamed or commonly guessed keys, answered with a hint instead of a bare "unknown key"
// (undici: 'unsupported idleTimeout, use keepAliveTimeout instead').
const keyHints: Record<string, string> = {
  port: 'set listeners[].port, or use --mqtt-port',
  mqttPort: 'set listeners[].port, or use --mqtt-port',
  logLevel: 'use log.level',
  level: 'use log.level',
  limits: 'use mqtt',
  data: 'use dataDir',
  dataDirectory: 'use dataDir',
  'mqtt.keepAliveFactor': 'use mqtt.keepaliveFactor',
  'mqtt.maxConnections': 'use listeners[].maxConnections',
};

const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true });
const validateSchema = ajv.compile<BreakwaterConfig>(ConfigSchema);

/**
 * Reads and validates a YAML config file. Relative paths in it resolve against the file's
 * directory. Throws ConfigError (BW_ERR_CONFIG_FILE for a missing/unparsable file,
 * BW_ERR_CONFIG_INVALID for a schema violation), naming the file and the key.
 */
export function loadConfigFile(
  file: string,
  options: Pick<ValidateConfigOptions, 'override'> = {},
): Readonly<BreakwaterConfig> {
  const path = resolve(file);
  return validateConfig(readConfigFile(path), { ...options, source: path, baseDir: dirname(path) });
}

/** Parses the YAML file into a plain value (no validation). */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : `cannot read the file (${code ?? String(err)})`;
    throw new ConfigError('BW_ERR_CONFIG_FILE', path, [why], { cause: err });
  }
  try {
    // uniqueKeys (the default) turns a duplicated key into an error instead of a silent override.
    return parseYaml(text, { prettyErrors: true }) ?? {};
  } catch (err) {
    // yaml's message is "<what> at line L, column C:" followed by a code excerpt; keep line one.
    const first = String((err as Error).message)
      .split('\n')[0]!
      .replace(/:$/, '');
    throw new ConfigError('BW_ERR_CONFIG_FILE', path, [`invalid YAML: ${first}`], { cause: err });
  }
}

/**
 * Validates a raw config value against the schema once: applies defaults, rejects unknown keys,
 * checks cross-field rules, resolves paths, and returns a deep-frozen result.
 */
export function validateConfig(
  raw: unknown,
  options: ValidateConfigOptions = {},
): Readonly<BreakwaterConfig> {
  const source = options.source ?? FLAGS_SOURCE;
  const baseDir = options.baseDir ?? process.cwd();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('BW_ERR_CONFIG_INVALID', source, [
      `the configuration must be a mapping of keys to values (got ${show(raw)})`,
    ]);
  }
  // ajv's useDefaults mutates its input: validate a copy so the caller's value stays untouched.
  const config = structuredClone(raw) as BreakwaterConfig;
  if (!validateSchema(config)) {
    throw new ConfigError('BW_ERR_CONFIG_INVALID', source, describeErrors(validateSchema.errors ?? []));
  }
  options.override?.(config);
  const problems = crossCheck(config, baseDir);
  if (problems.length > 0) throw new ConfigError('BW_ERR_CONFIG_INVALID', source, problems);
  return deepFreeze(config);
}

function crossCheck(config: BreakwaterConfig, baseDir: string): string[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  config.listeners.forEach((listener, i) => {
    const at = `listeners[${i}]`;
    const seen = names.get(listener.name);
    if (seen !== undefined)
      problems.push(`${at}.name "${listener.name}" is already used by listeners[${seen}]`);
    else names.set(listener.name, i);
    const secure = listener.type === 'tls' || listener.type === 'wss';
    const web = listener.type === 'ws' || listener.type === 'wss';
    if (secure && !listener.tls) problems.push(`${at}.tls is required for type "${listener.type}"`);
    if (!secure && listener.tls) problems.push(`${at}.tls is only allowed for type "tls" or "wss"`);
    if (!web && listener.path !== undefined)
      problems.push(`${at}.path is only allowed for type "ws" or "wss"`);
    if (web && listener.path === undefined) listener.path = '/mqtt';
    if (listener.tls) {
      for (const key of ['cert', 'key', 'ca'] as const) {
        const file = listener.tls[key];
        if (file === undefined) continue;
        const abs = resolvePath(baseDir, file);
        listener.tls[key] = abs;
        const why = unreadable(abs);
        if (why) problems.push(`${at}.tls.${key}: cannot read ${abs} (${why})`);
      }
    }
  });
  checkGuard(config, baseDir, names, problems);
  config.dataDir = resolvePath(baseDir, config.dataDir);
  checkAuthzRulesFile(config, problems);
  checkIntegration(config, baseDir, problems);
  config.storage.file =
    config.storage.file === undefined
      ? join(config.dataDir, 'breakwater.db')
      : resolvePath(baseDir, config.storage.file);
  return problems;
}

/**
 * The guard's and admission's own rules (authenticator names, key sources, min <= max), reported
 * like every other config problem; files named by the guard resolve against the config's directory.
 */
function checkGuard(
  config: BreakwaterConfig,
  baseDir: string,
  listenerNames: ReadonlyMap<string, number>,
  problems: string[],
): void {
  const a = config.guard.authenticators;
  for (const pf of Object.values(a.passwordFile)) pf.path = resolvePath(baseDir, pf.path);
  for (const jwt of Object.values(a.jwt))
    if (jwt.publicKeyFile !== undefined) jwt.publicKeyFile = resolvePath(baseDir, jwt.publicKeyFile);
  const authz = config.guard.authz;
  if (authz.rulesFile !== undefined) authz.rulesFile = resolvePath(baseDir, authz.rulesFile);
  for (const name of Object.keys(config.guard.listeners)) {
    if (name !== '*' && !listenerNames.has(name))
      problems.push(`guard.listeners.${name}: there is no listener named "${name}"`);
  }
  for (const name of Object.keys(config.admission.listeners)) {
    if (!listenerNames.has(name))
      problems.push(`admission.listeners.${name}: there is no listener named "${name}"`);
  }
  for (const check of [
    () => resolveGuardConfig(config.guard),
    () => resolveAdmissionConfig(config.admission),
  ]) {
    try {
      check();
    } catch (err) {
      if (!(err instanceof BreakwaterError)) throw err;
      // The catalog prefix ("invalid guard configuration: ") is repeated by ConfigError's header.
      problems.push(err.message.replace(/^[^:]*: /, ''));
    }
  }
}

/**
 * The live authorization rules file, when it exists: a bad line stops the start like a bad key
 * (running without its deny rules would open what they close). At run time a bad edit is not
 * applied and the rules in force stay (guard/authz-rules-file.ts).
 */
function checkAuthzRulesFile(config: BreakwaterConfig, problems: string[]): void {
  if (Object.keys(config.guard.listeners).length === 0) return; // no guard, no rules
  const file = config.guard.authz.rulesFile ?? defaultRulesFile(config.dataDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT')
      problems.push(`guard.authz.rulesFile: cannot read ${file} (${code ?? String(err)})`);
    return;
  }
  try {
    parseRulesText(text);
  } catch (err) {
    if (!(err instanceof RulesTextError)) throw err;
    problems.push(`guard.authz.rulesFile: ${file} line ${err.line}: ${err.detail}`);
  }
}

/** Integration (issue 16): references between sinks and rules, filters; files resolve here. */
function checkIntegration(config: BreakwaterConfig, baseDir: string, problems: string[]): void {
  const i = config.integration;
  problems.push(...integrationProblems(i));
  i.buffer.file =
    i.buffer.file === undefined
      ? join(config.dataDir, 'integration.db')
      : resolvePath(baseDir, i.buffer.file);
  i.validation.forEach((v, n) => {
    if (v.schemaFile === undefined) return;
    v.schemaFile = resolvePath(baseDir, v.schemaFile);
    const why = unreadable(v.schemaFile);
    if (why) problems.push(`integration.validation[${n}].schemaFile: cannot read ${v.schemaFile} (${why})`);
  });
}

function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

function unreadable(path: string): string | null {
  try {
    accessSync(path, constants.R_OK);
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

/** ajv errors → one line per offending key, `mqtt.maxPacketSize must be … (got …)`. */
function describeErrors(errors: readonly ErrorObject[]): string[] {
  const byPath = new Map<string, string>();
  for (const err of errors) {
    const path = keyPath(err.instancePath);
    let key = path;
    let line: string;
    if (err.keyword === 'additionalProperties') {
      const extra = String(err.params.additionalProperty);
      key = path ? `${path}.${extra}` : extra;
      const known = Object.keys((err.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      line = `unknown key "${key}"${suggest(key, extra, known, path)}`;
    } else if (err.keyword === 'required') {
      key = path ? `${path}.${String(err.params.missingProperty)}` : String(err.params.missingProperty);
      line = `${key} is required`;
    } else if (err.parentSchema && typeof err.parentSchema === 'object') {
      line = `${path || 'the configuration'} must be ${describeSchema(err.parentSchema as SchemaShape)} (got ${show(err.data)})`;
    } else {
      line = `${path || 'the configuration'} ${err.message ?? 'is invalid'}`;
    }
    // allErrors reports e.g. both `type` and `minimum` for one value: one line per key is enough.
    if (!byPath.has(key)) byPath.set(key, line);
  }
  return [...byPath.values()];
}

/** `/listeners/0/port` → `listeners[0].port`. */
function keyPath(instancePath: string): string {
  let out = '';
  for (const part of instancePath.split('/').slice(1)) {
    const segment = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(segment) ? `[${segment}]` : out ? `.${segment}` : segment;
  }
  return out;
}

interface SchemaShape {
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

function describeSchema(schema: SchemaShape): string {
  if (schema.enum) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const noun = schema.type === 'integer' ? 'an integer' : 'a number';
      const { minimum: min, maximum: max } = schema;
      if (min !== undefined && max !== undefined) return `${noun} between ${min} and ${max}`;
      if (min !== undefined) return `${noun} >= ${min}`;
      if (max !== undefined) return `${noun} <= ${max}`;
      return noun;
    }
    case 'string': {
      if (schema.pattern) return `a string matching ${schema.pattern}`;
      if (schema.maxLength !== undefined)
        return `a string of ${schema.minLength ?? 0} to ${schema.maxLength} characters`;
      return schema.minLength ? 'a non-empty string' : 'a string';
    }
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping of keys to values';
    default:
      return 'valid';
  }
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function suggest(fullKey: string, key: string, known: string[], parentPath: string): string {
  const hint = keyHints[fullKey];
  if (hint) return ` (${hint})`;
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  if (best === undefined) return known.length ? ` (known keys: ${known.join(', ')})` : '';
  return ` (did you mean "${parentPath ? `${parentPath}.${best}` : best}"?)`;
}

/** Levenshtein distance; config keys are short, so the O(n·m) table is fine. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
