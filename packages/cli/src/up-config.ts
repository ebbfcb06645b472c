import { dirname, isAbsolute, join, resolve } from 'node:path';
import {
  type BreakwaterConfig,
  ConfigError,
  FLAGS_SOURCE,
  type ListenerSpec,
  type ListenerType,
  type LogLevel,
  loadConfigFile,
  urlHost,
  validateConfig,
} from '@breakwater/broker';

/** `breakwater up` flags after commander parsed them (all optional: unset means "config or default"). */
export interface UpFlags {
  config?: string;
  host?: string;
  mqttPort?: number;
  wsPort?: number;
  mqttsPort?: number;
  wssPort?: number;
  httpPort?: number;
  dataDir?: string;
  logLevel?: LogLevel;
  /** `--cluster nats://a:4222,nats://b:4222`: join a cluster (issue 15); sets `cluster.servers`. */
  cluster?: string;
}

/** The port flag of each listener type; it sets the first listener of that type. */
export const portFlags = {
  tcp: '--mqtt-port',
  ws: '--ws-port',
  tls: '--mqtts-port',
  wss: '--wss-port',
} as const satisfies Record<ListenerType, string>;

export interface UpConfig {
  config: Readonly<BreakwaterConfig>;
  /** The listeners with the flag/key that changes each one's port (for port-in-use errors). */
  listeners: ListenerSpec[];
  httpPortSource: string;
  /** The config file (absolute), or `command-line flags`. */
  source: string;
  /** The control plane's database, validated and with an absolute file path; null = no control plane. */
  control: ControlStorageConfig | null;
  /**
   * `guard.authenticators.jwt` entries that set neither `jwksUrl` nor `publicKeyFile`: they verify
   * against the control plane's own JWKS on the HTTP port (`jwksUrl` is filled in; with
   * `--http-port 0` it names port 0 until `breakwater up` knows the real one).
   */
  localJwks: string[];
}

export type ControlStorageConfig =
  | { driver: 'sqlite'; file: string }
  | { driver: 'postgres'; url: string; schema?: string };

/** Where the issuer's tokens point (`iss`, `aud`); the local-JWKS default checks both. */
export const LOCAL_ISSUER = 'breakwater';
export const LOCAL_AUDIENCE = 'breakwater-mqtt';
export const JWKS_PATH = '/.well-known/jwks.json';

/** The control plane's JWKS URL on the HTTP listener (a wildcard bind is reached over loopback). */
export function localJwksUrl(host: string, port: number): string {
  return `http://${urlHost(host)}:${port}${JWKS_PATH}`;
}

/**
 * Config file (if any) + defaults + flags → one validated, frozen config. Flags win over the file.
 * `--mqtt-port`/`--ws-port` add a listener when the file configures none of that type;
 * `--mqtts-port`/`--wss-port` need a tls/wss listener with certificates in the file.
 */
export function resolveUpConfig(flags: UpFlags, cwd = process.cwd()): UpConfig {
  const source = flags.config ? resolve(cwd, flags.config) : FLAGS_SOURCE;
  const localJwks: string[] = [];
  const override = (config: BreakwaterConfig) => {
    applyFlags(config, flags, source, cwd);
    localJwks.push(...defaultToLocalJwks(config));
  };
  const config = flags.config
    ? loadConfigFile(source, { override })
    : validateConfig({}, { source, baseDir: cwd, override });

  const firstOfType = new Map<ListenerType, number>();
  config.listeners.forEach((l, i) => {
    if (!firstOfType.has(l.type)) firstOfType.set(l.type, i);
  });
  const listeners = config.listeners.map((listener, i): ListenerSpec => {
    const portSource =
      firstOfType.get(listener.type) === i ? portFlags[listener.type] : `listeners[${i}].port in ${source}`;
    return { ...listener, portSource };
  });
  const baseDir = flags.config ? dirname(source) : cwd;
  return {
    config,
    listeners,
    httpPortSource: '--http-port',
    source,
    control: controlStorage(config, source, baseDir),
    localJwks,
  };
}

/**
 * A `jwt` authenticator without a key source uses the control plane's JWKS on this process's HTTP
 * port, with the issuer's `iss`/`aud` (unless the entry sets its own). Runs before the guard's
 * own validation, which would otherwise refuse the entry ("set exactly one of jwksUrl,
 * publicKeyFile"). Without the control plane there is no local JWKS and the entry stays invalid.
 */
function defaultToLocalJwks(config: BreakwaterConfig): string[] {
  if (!config.control.enabled || !config.http.enabled) return [];
  const names: string[] = [];
  for (const [name, jwt] of Object.entries(config.guard.authenticators.jwt)) {
    if (jwt.jwksUrl !== undefined || jwt.publicKeyFile !== undefined) continue;
    jwt.jwksUrl = localJwksUrl(config.http.host, config.http.port);
    jwt.issuer ??= LOCAL_ISSUER;
    jwt.audience ??= LOCAL_AUDIENCE;
    names.push(name);
  }
  return names;
}

/** `control.storage` checked across its keys (the schema checks each key alone). */
function controlStorage(
  config: Readonly<BreakwaterConfig>,
  source: string,
  baseDir: string,
): ControlStorageConfig | null {
  if (!config.control.enabled || !config.http.enabled) return null;
  const s = config.control.storage;
  const problems: string[] = [];
  if (s.driver === 'sqlite') {
    if (s.url !== undefined) problems.push('control.storage.url is only allowed with driver "postgres"');
    if (s.schema !== undefined)
      problems.push('control.storage.schema is only allowed with driver "postgres"');
  } else {
    if (s.url === undefined) problems.push('control.storage.url is required with driver "postgres"');
    if (s.file !== undefined) problems.push('control.storage.file is only allowed with driver "sqlite"');
  }
  if (problems.length > 0) throw new ConfigError('BW_ERR_CONFIG_INVALID', source, problems);
  if (s.driver === 'postgres')
    return { driver: 'postgres', url: s.url!, ...(s.schema ? { schema: s.schema } : {}) };
  const file =
    s.file === undefined
      ? join(config.dataDir, 'control.db')
      : isAbsolute(s.file)
        ? s.file
        : resolve(baseDir, s.file);
  return { driver: 'sqlite', file };
}

function applyFlags(config: BreakwaterConfig, flags: UpFlags, source: string, cwd: string): void {
  const setPort = (type: ListenerType, port: number | undefined) => {
    if (port === undefined) return;
    const existing = config.listeners.find((l) => l.type === type);
    if (existing) {
      existing.port = port;
    } else if (type === 'tcp' || type === 'ws') {
      config.listeners.push({
        name: uniqueName(config, type === 'tcp' ? 'mqtt' : 'ws'),
        type,
        host: flags.host ?? '0.0.0.0',
        port,
        ...(type === 'ws' ? { path: '/mqtt' } : {}),
      });
    } else {
      // TLS needs a certificate and key, which only the config file can name.
      throw new ConfigError('BW_ERR_CONFIG_INVALID', source, [
        `${portFlags[type]} needs a listener of type "${type}" with tls.cert and tls.key in a config file (--config)`,
      ]);
    }
  };
  setPort('tcp', flags.mqttPort);
  setPort('ws', flags.wsPort);
  setPort('tls', flags.mqttsPort);
  setPort('wss', flags.wssPort);
  if (flags.host !== undefined) {
    for (const l of config.listeners) l.host = flags.host;
    config.http.host = flags.host;
  }
  if (flags.httpPort !== undefined) config.http.port = flags.httpPort;
  // Paths given as flags are relative to the working directory, not to the config file.
  if (flags.dataDir !== undefined) config.dataDir = resolve(cwd, flags.dataDir);
  if (flags.logLevel !== undefined) config.log.level = flags.logLevel;
  if (flags.cluster !== undefined) {
    config.cluster.servers = flags.cluster
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u.length > 0)
      .map((u) => (/^[a-z]+:\/\//.test(u) ? u : `nats://${u}`));
  }
}

function uniqueName(config: BreakwaterConfig, base: string): string {
  let name = base;
  for (let i = 2; config.listeners.some((l) => l.name === name); i++) name = `${base}-${i}`;
  return name;
}
