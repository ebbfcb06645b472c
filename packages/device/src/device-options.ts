/** The options of a Device, checked once in its constructor (bad options throw, naming the key). */
import type { IClientOptions, MqttClient } from 'mqtt';
import type { AuthBreakerOptions } from './auth-breaker.js';
import { type CaInput, type Credentials, validateCredentials } from './credentials.js';
import { DeviceError } from './errors.js';
import type { OobOptions } from './oob.js';
import { fleetPolicy, naivePolicy, type ReconnectPolicy } from './policy.js';
import type { Random } from './random.js';
import type { Scheduler } from './scheduler.js';

/** Builds an MQTT.js client. Tests may pass their own; the default is MQTT.js `connect`. */
export type ClientFactory = (url: string, options: IClientOptions) => MqttClient;

export interface DeviceTlsOptions {
  /** CA certificate(s) for `mqtts://` servers with a private CA. */
  ca?: CaInput;
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface DeviceOptions {
  /** Broker URL(s) (`mqtt://`, `mqtts://`, `ws://`, `wss://`), tried in rotation. */
  servers: string | readonly string[];
  /** Device id: the MQTT client id and the `{id}` in `$fleet/{id}/…`. */
  deviceId: string;
  credentials?: Credentials;
  tls?: DeviceTlsOptions;
  /** Reconnect policy: an object, or 'fleet' (default) / 'naive'. */
  policy?: ReconnectPolicy | 'fleet' | 'naive';
  authBreaker?: Partial<AuthBreakerOptions>;
  /** Out-of-band reports (HTTPS). Without it, breaker events are only emitted locally. */
  oob?: OobOptions;
  /** Current firmware version (reported out of band; compared with OTA job versions). */
  firmware?: string;
  /** MQTT keepalive, seconds (default 60). */
  keepaliveSec?: number;
  /** Time allowed from TCP connect to CONNACK (default 10 s). */
  connectTimeoutMs?: number;
  /** Clean start (default false: the session, its subscriptions and queued QoS 1 survive). */
  cleanStart?: boolean;
  /** MQTT 5 Session Expiry Interval, seconds (default 1 day). */
  sessionExpirySec?: number;
  /** 5 (default) or 4 (MQTT 3.1.1). */
  protocolVersion?: 4 | 5;
  /** TCP keepalive initial delay, ms (default 30 s); false turns TCP keepalive off. */
  tcpKeepAliveMs?: number | false;
  /** Subscribe to `$fleet/{id}/config` and `$fleet/{id}/commands/#` (default true). */
  fleetTopics?: boolean;
  /** Last will, sent by the broker if the device vanishes. */
  will?: IClientOptions['will'];
  /** Random source for every jittered delay (default Math.random). */
  random?: Random;
  /** Clock and timers for the reconnect loop (default the system clock). */
  scheduler?: Scheduler;
  /** MQTT.js client factory (test seam). */
  clientFactory?: ClientFactory;
}

export function resolvePolicy(p: DeviceOptions['policy']): ReconnectPolicy {
  if (p === undefined || p === 'fleet') return fleetPolicy();
  if (p === 'naive') return naivePolicy();
  if (typeof p === 'object' && p !== null && typeof p.nextDelayMs === 'function') return p;
  throw new DeviceError(
    'BW_ERR_DEVICE_OPTIONS_INVALID',
    "policy: expected 'fleet', 'naive' or a ReconnectPolicy",
  );
}

export function validateOptions(o: DeviceOptions): void {
  const bad = (why: string) => new DeviceError('BW_ERR_DEVICE_OPTIONS_INVALID', why);
  if (typeof o !== 'object' || o === null) throw bad('options must be an object');
  if (typeof o.deviceId !== 'string' || o.deviceId === '') throw bad('deviceId must be a non-empty string');
  // The id is a topic level in `$fleet/{id}/…`: wildcards or separators would break the ACL.
  if (/[+#/]/.test(o.deviceId) || o.deviceId.includes('\0'))
    throw bad(`deviceId must not contain '/', '+', '#' or NUL: ${o.deviceId}`);
  const servers = typeof o.servers === 'string' ? [o.servers] : o.servers;
  if (!Array.isArray(servers) || servers.length === 0)
    throw bad('servers must be a URL or a non-empty list of URLs');
  for (const s of servers) {
    try {
      const u = new URL(s);
      if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'].includes(u.protocol)) throw new Error();
    } catch {
      throw bad(`servers: not an MQTT URL: ${s}`);
    }
  }
  validateCredentials(o.credentials);
  for (const k of ['keepaliveSec', 'connectTimeoutMs', 'sessionExpirySec'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw bad(`${k} must be a non-negative integer`);
  }
  if (o.protocolVersion !== undefined && o.protocolVersion !== 4 && o.protocolVersion !== 5) {
    throw bad('protocolVersion must be 4 or 5');
  }
  // Renamed/confusable options: say what to use instead (fastify/undici style).
  const legacy = o as unknown as Record<string, unknown>;
  if ('reconnectPeriod' in legacy) throw bad('unsupported reconnectPeriod, use policy instead');
  if ('keepalive' in legacy) throw bad('unsupported keepalive, use keepaliveSec instead');
  if ('clean' in legacy) throw bad('unsupported clean, use cleanStart instead');
}
