/**
 * The device: one MQTT connection to a Breakwater broker, kept up by a fleet-safe reconnect loop.
 *
 * MQTT.js's own reconnect is off (`reconnectPeriod: 0`): each attempt is a new MqttClient, and
 * the previous one is always ended with `end(true)` and its stream destroyed before the next is
 * created, so a device never holds two sockets (the zombie-socket incident in DESIGN.md §1 was a
 * client-side leak as much as a server-side one).
 *
 * This module is the connection loop (attempt, connected, finish, backoff, auth breaker, token
 * renewal). One attempt's client options and how its end is read: connection-attempt.ts. What
 * flows over the connection: desired-config.ts (config push), commands.ts, ota-channel.ts (the
 * glue to the OTA runner in ota.ts). Options: device-options.ts; events and counters:
 * device-events.ts.
 */
import { EventEmitter } from 'node:events';
import { type IClientPublishOptions, type IPublishPacket, connect as mqttConnect, type Packet } from 'mqtt';
import { AuthBreaker, isAuthFailure } from './auth-breaker.js';
import { CommandChannel, type CommandHandler } from './commands.js';
import {
  type Attempt,
  attemptEnding,
  clientOptions,
  destroyClient,
  setTcpKeepAlive,
} from './connection-attempt.js';
import { defaultRefreshMarginMs, signBody, TokenManager } from './credentials.js';
import { type ConfigHandler, type DesiredConfig, DesiredConfigChannel } from './desired-config.js';
import type { DeviceCounters, DeviceEvents, DeviceState, ReconnectingEvent } from './device-events.js';
import { type ClientFactory, type DeviceOptions, resolvePolicy, validateOptions } from './device-options.js';
import { DeviceError } from './errors.js';
import { type OobOptions, OobReporter, type OobStats } from './oob.js';
import type { OtaHandler } from './ota.js';
import { OtaChannel } from './ota-channel.js';
import type { ReconnectPolicy } from './policy.js';
import { type Random, systemRandom } from './random.js';
import { type Scheduler, systemScheduler } from './scheduler.js';
import { ServerRotation } from './servers.js';

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
  readonly #config: DesiredConfigChannel;
  readonly #commands: CommandChannel;
  readonly #ota: OtaChannel;
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
    this.#config = new DesiredConfigChannel(this.topics.configReported, {
      config: (event) => this.emit('config', event),
      error: (err) => this.#emitError(err),
    });
    this.#commands = new CommandChannel(`${base}/commands/`, {
      publish: (topic, payload, publishOptions) => this.publish(topic, payload, publishOptions),
      command: (command) => this.emit('command', command),
      error: (err) => this.#emitError(err),
    });
    this.#ota = new OtaChannel(this.topics.otaStatus, {
      current: () => this.#current,
      firmware: () => this.#firmware,
      setFirmware: (version) => {
        this.#firmware = version;
      },
      status: (report) => this.emit('ota', report),
      error: (err) => this.#emitError(err),
    });
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
    return this.#ota.idle();
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
    this.#ota.close();
    this.#oob?.close();
    this.#config.abandon(new DeviceError('BW_ERR_DEVICE_STOPPED'));
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
    this.#config.onConfig(handler);
    return this;
  }

  /**
   * Publishes the config the device actually runs to `$fleet/{id}/config/reported` (retained,
   * QoS 1). When offline, the latest report is kept and published on the next connect; the
   * promise resolves once the broker acknowledged it.
   */
  reportConfig(config: DesiredConfig): Promise<void> {
    if (this.#state === 'stopped') return Promise.reject(new DeviceError('BW_ERR_DEVICE_STOPPED'));
    return this.#config.report(config, this.#current);
  }

  /** Registers the command handler for `$fleet/{id}/commands/#`. */
  onCommand(handler: CommandHandler): this {
    this.#commands.onCommand(handler);
    return this;
  }

  /** Registers the OTA handler and subscribes to `$fleet/{id}/ota`. */
  onOta(handler: OtaHandler): this {
    this.#ota.setHandler(handler);
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
    const client = this.#factory(url, clientOptions(this.#options, this.#protocolVersion, token));
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
    setTcpKeepAlive(client, this.#options.tcpKeepAliveMs);
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
    if (this.#ota.enabled) topics.push(this.topics.ota);
    if (topics.length > 0) this.#subscribe(a, topics);
    this.#scheduleTokenRenewal(a);
    this.#ota.flush(a);
    this.#config.flush(a);
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
    const { refusal, code, hintMs: hint, redirect, error } = attemptEnding(a, this.#protocolVersion);
    const redirectedTo = redirect
      ? this.#servers.redirect(redirect.reference, redirect.permanent, a.url)
      : null;
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
    if (topic === this.topics.config) this.#config.handle(payload);
    else if (topic.startsWith(this.#commands.prefix)) this.#commands.handle(topic, payload, packet);
    else if (topic === this.topics.ota) this.#ota.handle(payload);
  };
}

/** Creates a device. Call `start()` to connect (after registering handlers). */
export function createDevice(options: DeviceOptions): Device {
  return new Device(options);
}
