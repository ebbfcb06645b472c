/**
 * The device: one MQTT connection to a Breakwater broker, kept up by a fleet-safe reconnect loop.
 *
 * MQTT.js's own reconnect is off (`reconnectPeriod: 0`): each attempt is a new MqttClient, and
 * the previous one is always ended with `end(true)` and its stream destroyed before the next is
 * created, so a device never holds two sockets (the zombie-socket incident in DESIGN.md §1 was a
 * client-side leak as much as a server-side one).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  type IClientOptions,
  type IClientPublishOptions,
  type IConnackPacket,
  type IDisconnectPacket,
  type IPublishPacket,
  type MqttClient,
  connect as mqttConnect,
  type Packet,
} from 'mqtt';
import { AuthBreaker, type AuthBreakerOptions, isAuthFailure } from './auth-breaker.js';
import {
  type CaInput,
  type Credentials,
  credentialFields,
  defaultRefreshMarginMs,
  signBody,
  TokenManager,
  validateCredentials,
} from './credentials.js';
import { DeviceError } from './errors.js';
import { type OobOptions, type OobReport, OobReporter, type OobStats } from './oob.js';
import { type OtaHandler, OtaRunner, type OtaStatusReport, parseOtaMessage } from './ota.js';
import { fleetPolicy, naivePolicy, type ReconnectPolicy } from './policy.js';
import { type Random, systemRandom } from './random.js';
import { type Scheduler, systemScheduler } from './scheduler.js';
import { ServerRotation } from './servers.js';

export type DeviceState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'auth-blocked' | 'stopped';

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

export interface DeviceCounters {
  /** Connection attempts started. */
  attempts: number;
  /** Attempts that did not end in a successful CONNACK. */
  failures: number;
  /** Attempts refused for authentication. */
  authFailures: number;
  /** Successful connects. */
  connects: number;
  /** Connections lost after a successful connect. */
  disconnects: number;
  /** Time spent waiting in policy backoff, ms. */
  backoffMs: number;
  /** Time spent waiting with the auth breaker open, ms. */
  authBlockedMs: number;
}

export interface ConnectedEvent {
  url: string;
  sessionPresent: boolean;
  /** Attempts in this connect cycle, including the successful one. */
  attempt: number;
}

export interface DisconnectedEvent {
  url: string;
  /** Reason code of the server's DISCONNECT, if it sent one. */
  reasonCode: number | null;
  reason: 'server-disconnect' | 'connection-lost' | 'planned';
  error: Error | null;
}

export interface ReconnectingEvent {
  /** Wait before the next attempt, ms (policy delay, server hint applied). */
  delayMs: number;
  /** Retry number in the current cycle (1 = first retry). */
  attempt: number;
  /** Why the last attempt or connection ended. */
  cause: 'network' | 'refused' | 'auth' | 'redirect' | 'disconnected' | 'token';
  /** Reason code of the refusal or DISCONNECT, if any. */
  reasonCode: number | null;
  /** The server's `retry-after-ms`, if it sent one. */
  serverHintMs: number | null;
  /** Where the next attempt goes, when a redirect told us. */
  redirectedTo: string | null;
}

export interface AuthBreakerOpenEvent {
  openForMs: number;
  /** Epoch ms of the next attempt. */
  until: number;
  consecutiveFailures: number;
  lastError: Error | null;
}

/** The desired configuration delivered on `$fleet/{id}/config` (a JSON object). */
export type DesiredConfig = Record<string, unknown>;

export interface ConfigEvent {
  version: string;
  config: DesiredConfig;
}

export interface Command {
  /** Topic suffix after `$fleet/{id}/commands/`, e.g. `reboot`. */
  name: string;
  topic: string;
  payload: Buffer;
  /** Parsed JSON payload, or undefined when it is not JSON. */
  data: unknown;
  responseTopic: string | null;
  correlationData: Buffer | null;
}

export type ConfigHandler = (config: DesiredConfig, meta: { version: string }) => void | Promise<void>;
/** A command handler; when the command has a response topic, the result is published there. */
export type CommandHandler = (command: Command) => unknown;

export interface DeviceEvents {
  state: [state: DeviceState];
  connected: [event: ConnectedEvent];
  disconnected: [event: DisconnectedEvent];
  reconnecting: [event: ReconnectingEvent];
  'auth-breaker-open': [event: AuthBreakerOpenEvent];
  config: [event: ConfigEvent];
  command: [command: Command];
  ota: [status: OtaStatusReport];
  oob: [
    event: { outcome: 'sent' | 'failed' | 'dropped' | 'rejected'; report: OobReport; error: Error | null },
  ];
  /** Emitted only when someone listens: an SDK must never crash its host with an unhandled 'error'. */
  error: [error: Error];
}

interface Attempt {
  client: MqttClient;
  url: string;
  connack: IConnackPacket | null;
  disconnect: IDisconnectPacket | null;
  error: Error | null;
  connected: boolean;
  done: boolean;
  planned: boolean;
  tokenExpiresAt: number | null;
}

interface OutboxEntry {
  topic: string;
  payload: string;
  retain: boolean;
}

const RETRY_AFTER = 'retry-after-ms';
const OUTBOX_LIMIT = 64;

// MQTT 5.0 §3.2.2.2 / §3.14.2.1: "use another server" (temporary) and "server moved" (permanent).
const USE_ANOTHER_SERVER = 0x9c;
const SERVER_MOVED = 0x9d;

/** Reads the `retry-after-ms` user property (last value wins when repeated). */
export function readRetryAfterMs(
  userProperties: Record<string, string | string[]> | undefined,
): number | null {
  const raw = userProperties?.[RETRY_AFTER];
  const v = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  if (v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : null;
}

function resolvePolicy(p: DeviceOptions['policy']): ReconnectPolicy {
  if (p === undefined || p === 'fleet') return fleetPolicy();
  if (p === 'naive') return naivePolicy();
  if (typeof p === 'object' && p !== null && typeof p.nextDelayMs === 'function') return p;
  throw new DeviceError(
    'BW_ERR_DEVICE_OPTIONS_INVALID',
    "policy: expected 'fleet', 'naive' or a ReconnectPolicy",
  );
}

function validateOptions(o: DeviceOptions): void {
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

export class Device extends EventEmitter<DeviceEvents> {
  readonly deviceId: string;
  readonly policy: ReconnectPolicy;
  readonly topics: Readonly<{
    config: string;
    configReported: string;
    commands: string;
    ota: string;
    otaStatus: string;
  }>;

  readonly #options: DeviceOptions;
  readonly #protocolVersion: 4 | 5;
  readonly #scheduler: Scheduler;
  readonly #random: Random;
  readonly #factory: ClientFactory;
  readonly #servers: ServerRotation;
  readonly #breaker: AuthBreaker;
  readonly #tokens: TokenManager | null;
  readonly #oob: OobReporter | null;
  readonly #commandsPrefix: string;
  readonly #counters: DeviceCounters = {
    attempts: 0,
    failures: 0,
    authFailures: 0,
    connects: 0,
    disconnects: 0,
    backoffMs: 0,
    authBlockedMs: 0,
  };

  #state: DeviceState = 'idle';
  #firmware: string | null;
  #current: Attempt | null = null;
  #generation = 0;
  /** Consecutive failed attempts since the last success: the policy's `attempt`. */
  #retry = 0;
  #cycleAttempts = 0;
  #timer: unknown = null;
  #wait: { kind: 'backoff' | 'auth-blocked'; startedAt: number } | null = null;
  #tokenTimers: unknown[] = [];
  #lastError: Error | null = null;

  #configHandler: ConfigHandler | null = null;
  #appliedConfigVersion: string | null = null;
  #configChain: Promise<void> = Promise.resolve();
  #commandHandler: CommandHandler | null = null;
  #ota: OtaRunner | null = null;
  #outbox: OutboxEntry[] = [];
  #reported: { payload: string; waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> } | null =
    null;

  constructor(options: DeviceOptions) {
    super();
    validateOptions(options);
    this.#options = options;
    this.deviceId = options.deviceId;
    this.policy = resolvePolicy(options.policy);
    this.#protocolVersion = options.protocolVersion ?? 5;
    this.#scheduler = options.scheduler ?? systemScheduler;
    this.#random = options.random ?? systemRandom;
    this.#factory = options.clientFactory ?? mqttConnect;
    this.#servers = new ServerRotation(
      typeof options.servers === 'string' ? [options.servers] : options.servers,
    );
    this.#breaker = new AuthBreaker(options.authBreaker);
    this.#firmware = options.firmware ?? null;
    const c = options.credentials;
    this.#tokens =
      c && 'tokenProvider' in c
        ? new TokenManager(c.tokenProvider, c.refreshMarginMs ?? defaultRefreshMarginMs, this.#scheduler)
        : null;
    const base = `$fleet/${this.deviceId}`;
    this.topics = Object.freeze({
      config: `${base}/config`,
      configReported: `${base}/config/reported`,
      commands: `${base}/commands/#`,
      ota: `${base}/ota`,
      otaStatus: `${base}/ota/status`,
    });
    this.#commandsPrefix = `${base}/commands/`;
    if (options.oob) {
      const oobOptions: OobOptions = { ...options.oob };
      if (c && 'cert' in c && oobOptions.clientCert === undefined) {
        oobOptions.clientCert = { key: c.key, cert: c.cert };
        if (c.passphrase !== undefined) oobOptions.clientCert.passphrase = c.passphrase;
      }
      this.#oob = new OobReporter(
        this.deviceId,
        oobOptions,
        (body) => signBody(body, c, this.#tokens?.current?.token),
        this.#scheduler,
        this.#random,
      );
      this.#oob.onEvent((outcome, report, error) =>
        this.emit('oob', { outcome, report, error: error ?? null }),
      );
    } else {
      this.#oob = null;
    }
  }

  get state(): DeviceState {
    return this.#state;
  }

  /** A snapshot of the counters. */
  get counters(): Readonly<DeviceCounters> {
    const c = { ...this.#counters };
    // Include the wait in progress, so the numbers are right while backing off.
    if (this.#wait) {
      const elapsed = this.#scheduler.now() - this.#wait.startedAt;
      if (this.#wait.kind === 'backoff') c.backoffMs += elapsed;
      else c.authBlockedMs += elapsed;
    }
    return c;
  }

  get firmware(): string | null {
    return this.#firmware;
  }

  /** The URL of the current (or last) connection attempt. */
  get url(): string | null {
    return this.#current?.url ?? null;
  }

  get authBreaker(): AuthBreaker {
    return this.#breaker;
  }

  get oobStats(): Readonly<OobStats> | null {
    return this.#oob?.stats ?? null;
  }

  /** Resolves when queued out-of-band reports are sent (or given up on). */
  oobIdle(): Promise<void> {
    return this.#oob?.idle() ?? Promise.resolve();
  }

  /** Resolves when the running OTA job (if any) has finished. */
  otaIdle(): Promise<void> {
    return this.#ota?.idle() ?? Promise.resolve();
  }

  /** Starts connecting (at once; the policy applies from the first failure on). */
  start(): this {
    if (this.#state === 'stopped')
      throw new DeviceError('BW_ERR_DEVICE_STOPPED', 'a stopped device cannot restart');
    if (this.#state !== 'idle') return this;
    void this.#attempt();
    return this;
  }

  /**
   * Drops the current connection (if any) and connects again at once, bypassing the backoff but
   * not an open auth breaker. For planned moves (new credentials, new server list) and tests.
   */
  reconnect(): void {
    if (this.#state === 'stopped' || this.#state === 'idle' || this.#state === 'auth-blocked') return;
    const a = this.#current;
    if (a && !a.done) {
      a.planned = true;
      this.#finish(a);
      return;
    }
    if (this.#state === 'backoff') {
      this.#clearWait();
      void this.#attempt();
    }
  }

  /**
   * Stops for good: cancels timers, ends the connection (a clean DISCONNECT when connected, so
   * the broker discards the will), aborts a running OTA job and stops the out-of-band sender.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#generation++;
    this.#clearWait();
    this.#clearTokenTimers();
    this.#setState('stopped');
    this.#ota?.close();
    this.#oob?.close();
    for (const w of this.#reported?.waiters ?? []) w.reject(new DeviceError('BW_ERR_DEVICE_STOPPED'));
    this.#reported = null;
    const a = this.#current;
    this.#current = null;
    if (!a || a.done) return;
    a.done = true;
    if (!a.connected) {
      destroyClient(a.client);
      return;
    }
    await new Promise<void>((resolve) => {
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        destroyClient(a.client);
        resolve();
      };
      // Bounded: a broker that never reads our DISCONNECT must not hang shutdown. Not unref'd:
      // stop() must settle even when nothing else keeps the event loop alive.
      const t = setTimeout(settle, 2_000);
      const stream = a.client.stream as Partial<NodeJS.ReadableStream & { destroyed: boolean }> | undefined;
      // MQTT.js never calls end()'s callback when the stream is already gone (e.g. the broker
      // closed it a moment ago), so the stream's own 'close' settles too.
      if (!stream || stream.destroyed) return settle();
      stream.once?.('close', settle);
      a.client.end(false, {}, settle);
    });
  }

  /** Publishes application data (e.g. telemetry under `devices/{id}/…`). Requires a connection. */
  async publish(topic: string, payload: string | Buffer, options: IClientPublishOptions = {}): Promise<void> {
    const a = this.#current;
    if (!a?.connected || a.done)
      throw new DeviceError('BW_ERR_DEVICE_NOT_CONNECTED', `cannot publish to ${topic}`);
    await a.client.publishAsync(topic, payload, options);
  }

  /** Registers the desired-config handler. It runs once per config version. */
  onConfig(handler: ConfigHandler): this {
    this.#configHandler = handler;
    return this;
  }

  /**
   * Publishes the config the device actually runs to `$fleet/{id}/config/reported` (retained,
   * QoS 1). When offline, the latest report is kept and published on the next connect; the
   * promise resolves once the broker acknowledged it.
   */
  reportConfig(config: DesiredConfig): Promise<void> {
    if (this.#state === 'stopped') return Promise.reject(new DeviceError('BW_ERR_DEVICE_STOPPED'));
    const payload = JSON.stringify(config);
    return new Promise((resolve, reject) => {
      const waiters = this.#reported?.waiters ?? [];
      waiters.push({ resolve, reject });
      this.#reported = { payload, waiters };
      if (this.#current?.connected) this.#flushReported(this.#current);
    });
  }

  /** Registers the command handler for `$fleet/{id}/commands/#`. */
  onCommand(handler: CommandHandler): this {
    this.#commandHandler = handler;
    return this;
  }

  /** Registers the OTA handler and subscribes to `$fleet/{id}/ota`. */
  onOta(handler: OtaHandler): this {
    if (typeof handler?.apply !== 'function') {
      throw new DeviceError('BW_ERR_DEVICE_OPTIONS_INVALID', 'onOta: handler.apply must be a function');
    }
    this.#ota?.close();
    this.#ota = new OtaRunner(
      handler,
      (report) => this.#publishOtaStatus(report),
      () => this.#firmware,
      (version) => {
        this.#firmware = version;
      },
    );
    const a = this.#current;
    if (a?.connected && !a.done) this.#subscribe(a, [this.topics.ota]);
    return this;
  }

  // ---- the reconnect loop ----

  async #attempt(): Promise<void> {
    const gen = ++this.#generation;
    if (this.#current && !this.#current.done) {
      // Never two clients: end the previous one first (defensive; #finish normally did).
      this.#current.done = true;
      destroyClient(this.#current.client);
    }
    this.#current = null;
    this.#setState('connecting');
    this.#counters.attempts++;
    this.#cycleAttempts++;
    let token: string | undefined;
    let tokenExpiresAt: number | null = null;
    if (this.#tokens) {
      try {
        const t = await this.#tokens.fresh();
        token = t.token;
        tokenExpiresAt = t.expiresAt;
      } catch (err) {
        if (gen !== this.#generation) return;
        this.#counters.failures++;
        this.#lastError = err as Error;
        this.#emitError(err as Error);
        this.#scheduleRetry('token', null, null, null);
        return;
      }
      if (gen !== this.#generation) return;
    }
    const url = this.#servers.next();
    const client = this.#factory(url, this.#clientOptions(token));
    const a: Attempt = {
      client,
      url,
      connack: null,
      disconnect: null,
      error: null,
      connected: false,
      done: false,
      planned: false,
      tokenExpiresAt,
    };
    this.#current = a;
    this.#setTcpKeepAlive(client);
    client.on('packetreceive', (p: Packet) => {
      if (p.cmd === 'connack') a.connack = p;
      else if (p.cmd === 'disconnect') {
        a.disconnect = p;
        // The server closes the connection after a DISCONNECT (MQTT 5 §3.14); don't wait for it.
        queueMicrotask(() => this.#finish(a));
      }
    });
    client.on('connect', () => this.#onConnected(a));
    client.on('message', this.#onMessage);
    client.on('error', (err: Error) => {
      a.error = err;
      if (!a.connected) this.#finish(a);
    });
    client.on('close', () => this.#finish(a));
  }

  #clientOptions(token: string | undefined): IClientOptions {
    const o = this.#options;
    const opts: IClientOptions = {
      clientId: this.deviceId,
      protocolVersion: this.#protocolVersion,
      keepalive: o.keepaliveSec ?? 60,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      // Our loop decides when to reconnect; MQTT.js must never do it behind our back.
      reconnectPeriod: 0,
      reconnectOnConnackError: false,
      clean: o.cleanStart ?? false,
      // Subscriptions are made by us on every connect; MQTT.js's replay would duplicate them.
      resubscribe: false,
      queueQoSZero: false,
    };
    // `passphrase` is passed through to tls.connect by MQTT.js but missing from its types.
    Object.assign(opts, credentialFields(this.deviceId, o.credentials, token));
    if (this.#protocolVersion === 5) {
      opts.properties = { sessionExpiryInterval: o.sessionExpirySec ?? 86_400 };
    }
    if (o.tls?.ca !== undefined && opts.ca === undefined) opts.ca = o.tls.ca;
    if (o.tls?.rejectUnauthorized !== undefined) opts.rejectUnauthorized = o.tls.rejectUnauthorized;
    if (o.tls?.servername !== undefined) opts.servername = o.tls.servername;
    if (o.will) opts.will = o.will;
    return opts;
  }

  #setTcpKeepAlive(client: MqttClient): void {
    const ms = this.#options.tcpKeepAliveMs ?? 30_000;
    if (ms === false) return;
    // MQTT.js builds the stream synchronously in connect(): a net.Socket for mqtt://, a
    // TLSSocket (also a net.Socket) for mqtts://; websockets have no setKeepAlive. Setting it
    // before the TCP handshake completes is fine: Node applies it once the handle exists.
    const stream = client.stream as unknown as Partial<Socket> | undefined;
    if (typeof stream?.setKeepAlive === 'function') stream.setKeepAlive(true, ms);
  }

  #onConnected(a: Attempt): void {
    if (a.done || this.#current !== a) return;
    a.connected = true;
    this.#counters.connects++;
    const attempt = this.#cycleAttempts;
    this.#cycleAttempts = 0;
    this.#retry = 0;
    this.#breaker.recordSuccess();
    this.#setState('connected');
    const topics: string[] = [];
    if (this.#options.fleetTopics !== false) topics.push(this.topics.config, this.topics.commands);
    if (this.#ota) topics.push(this.topics.ota);
    if (topics.length > 0) this.#subscribe(a, topics);
    this.#scheduleTokenRenewal(a);
    this.#flushOutbox(a);
    if (this.#reported) this.#flushReported(a);
    this.emit('connected', { url: a.url, sessionPresent: a.connack?.sessionPresent === true, attempt });
  }

  /** The end of an attempt or of a connection, whatever caused it. Idempotent. */
  #finish(a: Attempt): void {
    if (a.done) return;
    a.done = true;
    if (this.#current === a) this.#current = null;
    destroyClient(a.client);
    this.#clearTokenTimers();
    if (this.#state === 'stopped') return;
    const v5 = this.#protocolVersion === 5;
    const refusal = a.connected ? null : a.connack;
    const packet = a.disconnect ?? refusal;
    const code =
      a.disconnect?.reasonCode ?? (refusal ? ((v5 ? refusal.reasonCode : refusal.returnCode) ?? null) : null);
    const hint = readRetryAfterMs(packet?.properties?.userProperties);
    let redirectedTo: string | null = null;
    const reference = packet?.properties?.serverReference;
    if (v5 && (code === USE_ANOTHER_SERVER || code === SERVER_MOVED) && reference) {
      redirectedTo = this.#servers.redirect(reference, code === SERVER_MOVED, a.url);
    }
    const error =
      a.error ??
      (code !== null && code !== 0
        ? new DeviceError(
            a.connected ? 'BW_ERR_DEVICE_CONNECT_FAILED' : 'BW_ERR_DEVICE_CONNECT_REFUSED',
            undefined,
            {
              reasonCode: code,
            },
          )
        : null);
    if (error) this.#lastError = error;

    if (a.connected) {
      this.#counters.disconnects++;
      this.emit('disconnected', {
        url: a.url,
        reasonCode: a.disconnect?.reasonCode ?? null,
        reason: a.planned ? 'planned' : a.disconnect ? 'server-disconnect' : 'connection-lost',
        error,
      });
      if (a.planned) {
        void this.#attempt();
        return;
      }
      this.#scheduleRetry(redirectedTo ? 'redirect' : 'disconnected', code, hint, redirectedTo);
      return;
    }

    this.#counters.failures++;
    if (a.planned) {
      void this.#attempt();
      return;
    }
    if (!redirectedTo) this.#servers.failed();
    if (refusal && code !== null && code !== 0 && isAuthFailure(this.#protocolVersion, code)) {
      this.#counters.authFailures++;
      // A refused provider token will not get better: fetch a new one before the next try.
      this.#tokens?.invalidate();
      const openForMs = this.#breaker.recordAuthFailure(this.#scheduler.now(), this.#random);
      if (openForMs !== null) {
        this.#openBreaker(openForMs);
        return;
      }
      this.#scheduleRetry('auth', code, hint, null);
      return;
    }
    this.#scheduleRetry(
      redirectedTo ? 'redirect' : refusal ? 'refused' : 'network',
      code,
      hint,
      redirectedTo,
    );
  }

  #scheduleRetry(
    cause: ReconnectingEvent['cause'],
    reasonCode: number | null,
    serverHintMs: number | null,
    redirectedTo: string | null,
  ): void {
    this.#retry++;
    const delayMs = Math.max(
      0,
      Math.floor(
        this.policy.nextDelayMs(
          { attempt: this.#retry, serverHintMs: serverHintMs ?? undefined },
          this.#random,
        ),
      ),
    );
    this.#wait = { kind: 'backoff', startedAt: this.#scheduler.now() };
    this.#setState('backoff');
    this.#timer = this.#scheduler.setTimeout(() => this.#waitOver(), delayMs);
    this.emit('reconnecting', {
      delayMs,
      attempt: this.#retry,
      cause,
      reasonCode,
      serverHintMs,
      redirectedTo,
    });
  }

  #openBreaker(openForMs: number): void {
    const now = this.#scheduler.now();
    this.#wait = { kind: 'auth-blocked', startedAt: now };
    this.#setState('auth-blocked');
    this.#timer = this.#scheduler.setTimeout(() => this.#waitOver(), openForMs);
    this.emit('auth-breaker-open', {
      openForMs,
      until: now + openForMs,
      consecutiveFailures: this.#breaker.consecutiveFailures,
      lastError: this.#lastError,
    });
    this.#oob?.report({
      deviceId: this.deviceId,
      reason: 'auth-breaker-open',
      attempts: this.#counters.attempts,
      firmware: this.#firmware,
      lastError: this.#lastError?.message ?? null,
      at: new Date(now).toISOString(),
    });
  }

  #waitOver(): void {
    this.#timer = null;
    this.#accountWait();
    void this.#attempt();
  }

  #accountWait(): void {
    const w = this.#wait;
    if (!w) return;
    this.#wait = null;
    const elapsed = this.#scheduler.now() - w.startedAt;
    if (w.kind === 'backoff') this.#counters.backoffMs += elapsed;
    else this.#counters.authBlockedMs += elapsed;
  }

  #clearWait(): void {
    if (this.#timer !== null) this.#scheduler.clearTimeout(this.#timer);
    this.#timer = null;
    this.#accountWait();
  }

  /**
   * Provider tokens: fetch a new one `refreshMarginMs` before expiry, and reconnect with it when
   * the token this connection authenticated with expires (the broker may cut us then anyway).
   */
  #scheduleTokenRenewal(a: Attempt): void {
    const tokens = this.#tokens;
    if (!tokens || a.tokenExpiresAt === null) return;
    const now = this.#scheduler.now();
    const refreshIn = a.tokenExpiresAt - tokens.marginMs - now;
    if (refreshIn > 0) {
      this.#tokenTimers.push(
        this.#scheduler.setTimeout(() => {
          tokens.refresh().catch((err: Error) => this.#emitError(err));
        }, refreshIn),
      );
    }
    this.#tokenTimers.push(
      this.#scheduler.setTimeout(
        () => {
          if (this.#current === a && !a.done) {
            a.planned = true;
            this.#finish(a);
          }
        },
        Math.max(0, a.tokenExpiresAt - now),
      ),
    );
  }

  #clearTokenTimers(): void {
    for (const t of this.#tokenTimers) this.#scheduler.clearTimeout(t);
    this.#tokenTimers = [];
  }

  #setState(state: DeviceState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #emitError(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  // ---- fleet topics ----

  #subscribe(a: Attempt, topics: string[]): void {
    a.client.subscribe(topics, { qos: 1 }, (err, granted) => {
      if (a.done) return;
      if (err) return this.#emitError(err);
      for (const g of granted ?? []) {
        if (g.qos >= 0x80) {
          this.#emitError(
            new DeviceError('BW_ERR_DEVICE_CONNECT_REFUSED', `subscription to ${g.topic} refused`, {
              reasonCode: g.qos,
            }),
          );
        }
      }
    });
  }

  // One bound handler for every client: no closure per message.
  readonly #onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    if (topic === this.topics.config) this.#handleConfig(payload);
    else if (topic.startsWith(this.#commandsPrefix)) this.#handleCommand(topic, payload, packet);
    else if (topic === this.topics.ota) this.#handleOta(payload);
  };

  #handleConfig(payload: Buffer): void {
    if (payload.length === 0) return; // retained config cleared
    let config: DesiredConfig;
    try {
      const v: unknown = JSON.parse(payload.toString('utf8'));
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
      config = v as DesiredConfig;
    } catch (err) {
      this.#emitError(
        new DeviceError('BW_ERR_DEVICE_HANDLER', `config: ${(err as Error).message}`, { cause: err }),
      );
      return;
    }
    const raw = config.version;
    const version =
      typeof raw === 'string' || typeof raw === 'number'
        ? String(raw)
        : `sha256:${createHash('sha256').update(payload).digest('hex')}`;
    // Serialized: a config arriving while the previous one is being applied waits its turn.
    this.#configChain = this.#configChain.then(async () => {
      if (version === this.#appliedConfigVersion) return;
      try {
        await this.#configHandler?.(config, { version });
      } catch (err) {
        // Not marked applied: the retained config is offered again on the next connect.
        this.#emitError(new DeviceError('BW_ERR_DEVICE_HANDLER', `config ${version}`, { cause: err }));
        return;
      }
      this.#appliedConfigVersion = version;
      this.emit('config', { version, config });
    });
  }

  #handleCommand(topic: string, payload: Buffer, packet: IPublishPacket): void {
    let data: unknown;
    try {
      data = payload.length ? JSON.parse(payload.toString('utf8')) : undefined;
    } catch {
      data = undefined;
    }
    const command: Command = {
      name: topic.slice(this.#commandsPrefix.length),
      topic,
      payload,
      data,
      responseTopic: packet.properties?.responseTopic ?? null,
      correlationData: packet.properties?.correlationData ?? null,
    };
    this.emit('command', command);
    const handler = this.#commandHandler;
    if (!handler) return;
    void (async () => {
      let response: { ok: boolean; result?: unknown; error?: string };
      try {
        response = { ok: true, result: await handler(command) };
      } catch (err) {
        this.#emitError(new DeviceError('BW_ERR_DEVICE_HANDLER', `command ${command.name}`, { cause: err }));
        response = { ok: false, error: (err as Error)?.message ?? String(err) };
      }
      if (command.responseTopic === null) return;
      const options: IClientPublishOptions = { qos: 1 };
      if (command.correlationData) options.properties = { correlationData: command.correlationData };
      await this.publish(command.responseTopic, JSON.stringify(response), options).catch((err: Error) =>
        this.#emitError(err),
      );
    })();
  }

  #handleOta(payload: Buffer): void {
    const ota = this.#ota;
    if (!ota) return;
    try {
      const msg = parseOtaMessage(payload);
      if (msg) ota.handle(msg);
    } catch (err) {
      this.#emitError(err as Error);
    }
  }

  #publishOtaStatus(report: OtaStatusReport): void {
    this.emit('ota', report);
    const entry: OutboxEntry = {
      topic: this.topics.otaStatus,
      payload: JSON.stringify(report),
      retain: false,
    };
    const a = this.#current;
    if (a?.connected && !a.done) {
      this.#publishEntry(a, entry);
      return;
    }
    // Offline: keep the statuses for the next connect (bounded; the oldest go first).
    this.#outbox.push(entry);
    if (this.#outbox.length > OUTBOX_LIMIT) this.#outbox.shift();
  }

  #publishEntry(a: Attempt, entry: OutboxEntry): void {
    a.client.publish(entry.topic, entry.payload, { qos: 1, retain: entry.retain }, (err) => {
      if (err && !a.done) this.#emitError(err);
    });
  }

  #flushOutbox(a: Attempt): void {
    const entries = this.#outbox;
    this.#outbox = [];
    for (const e of entries) this.#publishEntry(a, e);
  }

  #flushReported(a: Attempt): void {
    const r = this.#reported;
    if (!r) return;
    a.client.publish(this.topics.configReported, r.payload, { qos: 1, retain: true }, (err) => {
      // Superseded by a newer report, or the connection dropped: the newer/next flush settles it.
      if (this.#reported !== r) return;
      if (err) {
        if (!a.done) this.#emitError(err);
        return;
      }
      this.#reported = null;
      for (const w of r.waiters) w.resolve();
    });
  }
}

function destroyClient(client: MqttClient): void {
  try {
    client.end(true);
  } catch {
    // end() on a client whose stream failed to build can throw; the destroy below still runs.
  }
  client.stream?.destroy();
}

/** Creates a device. Call `start()` to connect (after registering handlers). */
export function createDevice(options: DeviceOptions): Device {
  return new Device(options);
}
