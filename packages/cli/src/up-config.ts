import { resolve } from 'node:path';
import {
  type BreakwaterConfig,
  ConfigError,
  FLAGS_SOURCE,
  type ListenerSpec,
  type ListenerType,
  type LogLevel,
  loadConfigFile,
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
}

/**
 * Config file (if any) + defaults + flags → one validated, frozen config. Flags win over the file.
 * `--mqtt-port`/`--ws-port` add a listener when the file configures none of that type;
 * `--mqtts-port`/`--wss-port` need a tls/wss listener with certificates in the file.
 */
export function resolveUpConfig(flags: UpFlags, cwd = process.cwd()): UpConfig {
  const source = flags.config ? resolve(cwd, flags.config) : FLAGS_SOURCE;
  const override = (config: BreakwaterConfig) => applyFlags(config, flags, source, cwd);
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
  return { config, listeners, httpPortSource: '--http-port', source };
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
}

function uniqueName(config: BreakwaterConfig, base: string): string {
  let name = base;
  for (let i = 2; config.listeners.some((l) => l.name === name); i++) name = `${base}-${i}`;
  return name;
}
