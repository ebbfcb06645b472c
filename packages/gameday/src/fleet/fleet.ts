/**
 * The fleet simulator: N devices in one process, each a raw net.Socket speaking MQTT through
 * mqtt-packet's generator and a hand-rolled frame reader (wire.ts). Reconnects follow the device
 * SDK's own policy code and auth circuit breaker (@breakwater/device/policy), so a simulated storm
 * is the real schedule. Devices obey config pushes and OTA jobs like SDK devices do.
 *
 * Cost model: a device is a plain object (device.ts) plus its socket. Keepalive pings, connect
 * timeouts and telemetry run from two fleet-wide sweeps instead of per-device intervals; the only
 * per-device timers are the one-shot backoff/reboot/drop timer and an OTA step timer.
 *
 * Time: `timeScale` multiplies every delay the devices choose themselves (policy, auth breaker,
 * OTA steps, crash loop). Durations passed to reboot() and flap() are used as given.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  AuthBreaker,
  defaultAuthBreakerOptions,
  isAuthFailure,
  type ReconnectPolicy,
} from '@breakwater/device/policy';
import { CONTROL_PACKET_IDS, type FlapPlan, type OutboxEntry, SimDevice } from './device.js';
import { fleetDeviceIds, inRange, resolvePolicy, validateFleetOptions } from './fleet-options.js';
import { otaStatusPayload, type SimOtaJob } from './ota.js';
import { type OtaReportExtra, SimOtaRunner } from './ota-runner.js';
import type {
  CrashLoopOptions,
  FleetOptions,
  FleetStats,
  SimDeviceState,
  TelemetryOptions,
} from './types.js';
import {
  connectPacket,
  DISCONNECT_V4,
  DISCONNECT_V5,
  PacketType,
  PINGREQ,
  pubackPacket,
  publishPacket,
  readControl,
  readPublish,
  reasonName,
  scanFrames,
  subscribePacket,
} from './wire.js';

const OUTBOX_LIMIT = 64;
const SWEEP_MS = 1000;

interface Counters {
  attempts: number;
  connacksOk: number;
  refusals: Record<string, number>;
  authFailures: number;
  networkErrors: number;
  disconnectsByServer: Record<string, number>;
  published: number;
  qos1Acked: number;
  received: number;
  configApplied: number;
  otaStatus: Record<string, number>;
  reboots: number;
  authBreakerOpened: number;
}

type Gauges = Record<SimDeviceState, number>;

function increment(record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1;
}

export class Fleet extends EventEmitter {
  readonly options: Readonly<FleetOptions>;
  readonly policy: ReconnectPolicy;
  readonly #devices: SimDevice[];
  readonly #byId = new Map<string, SimDevice>();
  readonly #random: () => number;
  readonly #scale: number;
  readonly #version: 4 | 5;
  readonly #keepalive: number;
  readonly #connectTimeoutMs: number;
  readonly #counters: Counters = {
    attempts: 0,
    connacksOk: 0,
    refusals: {},
    authFailures: 0,
    networkErrors: 0,
    disconnectsByServer: {},
    published: 0,
    qos1Acked: 0,
    received: 0,
    configApplied: 0,
    otaStatus: {},
    reboots: 0,
    authBreakerOpened: 0,
  };
  readonly #gauges: Gauges = {
    idle: 0,
    connecting: 0,
    connected: 0,
    backoff: 0,
    'auth-stopped': 0,
    down: 0,
    stopped: 0,
  };
  readonly #initialDevices: number;
  #telemetry: TelemetryOptions | null;
  #crashLoop: CrashLoopOptions | null;
  #sourceIndex = 0;
  #openSockets = 0;
  #onAllClosed: (() => void) | null = null;
  #started = false;
  #stopping = false;
  #rampTimer: NodeJS.Timeout | null = null;
  /** Set during a closed-loop ramp: launches more devices when a handshake ends. */
  #rampNext: (() => void) | null = null;
  #sweepTimer: NodeJS.Timeout | null = null;
  #telemetryTimer: NodeJS.Timeout | null = null;
  /** The device whose bytes are being scanned (saves a closure per read). */
  #reading: SimDevice | null = null;
  readonly #ota: SimOtaRunner;

  constructor(options: FleetOptions) {
    super();
    validateFleetOptions(options);
    this.options = options;
    this.policy = resolvePolicy(options.policy);
    this.#random = options.random ?? Math.random;
    this.#scale = options.timeScale ?? 1;
    this.#version = options.protocolVersion ?? 5;
    this.#keepalive = options.keepaliveSec ?? 60;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#telemetry = options.telemetry ?? null;
    this.#crashLoop = options.crashLoop ?? null;
    const fleet = this;
    this.#ota = new SimOtaRunner(
      {
        get stopping() {
          return fleet.#stopping;
        },
        report: (d, job, status, extra) => this.#report(d, job, status, extra),
        reboot: (d, downMs) => this.#rebootDevice(d, downMs, 'ota'),
      },
      options.ota,
      this.#random,
      this.#scale,
    );
    const breaker = { ...defaultAuthBreakerOptions, ...options.authBreaker };
    const breakerOptions = {
      threshold: breaker.threshold,
      openMinMs: breaker.openMinMs * this.#scale,
      openMaxMs: breaker.openMaxMs * this.#scale,
    };
    this.#devices = [];
    const ids = fleetDeviceIds(options.devices, options.idPrefix);
    for (let i = 0; i < options.devices; i++) {
      const id = ids[i]!;
      const fw = options.firmware;
      const firmware = typeof fw === 'function' ? fw(id) : (fw ?? '1.0.0');
      const d = new SimDevice(id, i, firmware, new AuthBreaker(breakerOptions));
      this.#devices.push(d);
      this.#byId.set(id, d);
    }
    this.#gauges.idle = options.devices;
    this.#initialDevices = Math.min(options.devices, options.initialDevices ?? options.devices);
  }

  /**
   * Begins the ramp of the first `initialDevices` (default every device); resolves when each of
   * them has made its first attempt. The others stay idle until `join()`.
   */
  start(): Promise<void> {
    if (this.#started) throw new Error('Fleet already started');
    this.#started = true;
    this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#scheduleTelemetry();
    const rate = this.options.rampPerSec ?? 500;
    const startedAt = Date.now();
    const initial = this.#initialDevices;
    let next = 0;
    const launch = (): boolean => {
      const due = Math.min(initial, Math.floor(((Date.now() - startedAt) / 1000) * rate) + 1);
      const maxConnecting = this.options.maxConnecting ?? Number.POSITIVE_INFINITY;
      while (next < due && !this.#stopping && this.#gauges.connecting < maxConnecting) {
        const d = this.#devices[next++]!;
        if (d.state === 'idle') this.#attempt(d);
      }
      return next >= initial || this.#stopping;
    };
    return new Promise((resolve) => {
      const done = () => {
        if (this.#rampTimer) clearInterval(this.#rampTimer);
        this.#rampTimer = null;
        this.#rampNext = null;
        this.emit('ramped');
        resolve();
      };
      if (launch()) {
        done();
        return;
      }
      this.#rampTimer = setInterval(() => {
        if (launch()) done();
      }, 10);
      // A closed-loop ramp also refills the moment a handshake ends, not only on the next tick.
      if (this.options.maxConnecting !== undefined) {
        this.#rampNext = () => {
          if (launch()) done();
        };
      }
    });
  }

  /** Devices launched by `start()` (the rest wait for `join()`). */
  get initialDevices(): number {
    return this.#initialDevices;
  }

  /**
   * Devices that never made an attempt yet (held back by `initialDevices`) join now: up to `count`
   * of them (default all), in id order, each making its first attempt after a random delay in
   * `spreadMs` (default at once) — never-seen devices powering on, or a batch booting together.
   * Returns their ids. Only after `start()`.
   */
  join(count = Number.POSITIVE_INFINITY, spreadMs: [number, number] = [0, 0]): string[] {
    if (!this.#started) throw new Error('join() before start()');
    const out: string[] = [];
    for (let i = this.#initialDevices; i < this.#devices.length && out.length < count; i++) {
      const d = this.#devices[i]!;
      if (d.state !== 'idle' || d.timer) continue;
      this.#setTimer(d, 'join', inRange(this.#random, spreadMs));
      out.push(d.id);
    }
    return out;
  }

  /** Ends every connection (DISCONNECT when connected) and resolves when every socket closed. */
  async stop(): Promise<void> {
    if (this.#stopping) return this.#waitClosed();
    this.#stopping = true;
    for (const t of [this.#rampTimer, this.#sweepTimer, this.#telemetryTimer]) if (t) clearInterval(t);
    this.#rampTimer = this.#sweepTimer = this.#telemetryTimer = null;
    this.#rampNext = null;
    for (const d of this.#devices) {
      this.#clearTimer(d);
      this.#ota.abort(d);
      const socket = d.socket;
      const wasConnected = d.state === 'connected';
      this.#setState(d, 'stopped');
      d.socket = null;
      d.pending = null;
      if (!socket) continue;
      if (wasConnected && socket.writable) socket.end(this.#version === 5 ? DISCONNECT_V5 : DISCONNECT_V4);
      else socket.destroy();
    }
    return this.#waitClosed();
  }

  async #waitClosed(): Promise<void> {
    if (this.#openSockets === 0) return;
    // A peer that never answers our FIN must not hold stop() forever.
    const force = setTimeout(() => {
      for (const d of this.#devices) d.socket?.destroy();
    }, 5_000);
    await new Promise<void>((resolve) => {
      const previous = this.#onAllClosed;
      this.#onAllClosed = () => {
        previous?.();
        resolve();
      };
    });
    clearTimeout(force);
  }

  /** Sockets this fleet holds open right now (0 after stop()). */
  openSockets(): number {
    return this.#openSockets;
  }

  stats(): FleetStats {
    const c = this.#counters;
    const g = this.#gauges;
    return {
      devices: this.#devices.length,
      connected: g.connected,
      connecting: g.connecting,
      backingOff: g.backoff,
      authStopped: g['auth-stopped'],
      attempts: c.attempts,
      connacksOk: c.connacksOk,
      refusals: { ...c.refusals },
      authFailures: c.authFailures,
      networkErrors: c.networkErrors,
      disconnectsByServer: { ...c.disconnectsByServer },
      published: c.published,
      qos1Acked: c.qos1Acked,
      received: c.received,
      configApplied: c.configApplied,
      otaStatus: { ...c.otaStatus },
      rebooting: g.down,
      reboots: c.reboots,
      authBreakerOpened: c.authBreakerOpened,
    };
  }

  /** Resolves with the first stats that satisfy `pred`; rejects after `timeoutMs`. */
  waitFor(pred: (s: FleetStats) => boolean, timeoutMs: number): Promise<FleetStats> {
    return new Promise((resolve, reject) => {
      const first = this.stats();
      if (pred(first)) {
        resolve(first);
        return;
      }
      const deadline = Date.now() + timeoutMs;
      const timer = setInterval(() => {
        const s = this.stats();
        if (pred(s)) {
          clearInterval(timer);
          resolve(s);
        } else if (Date.now() >= deadline) {
          clearInterval(timer);
          reject(
            new Error(
              `fleet condition not met within ${timeoutMs} ms: connected ${s.connected}/${s.devices}, ` +
                `connecting ${s.connecting}, backing off ${s.backingOff}, auth-stopped ${s.authStopped}, ` +
                `attempts ${s.attempts}, refusals ${JSON.stringify(s.refusals)}, network errors ${s.networkErrors}`,
            ),
          );
        }
      }, 25);
    });
  }

  /** The state of one device (for scenarios that follow a cohort). */
  deviceState(id: string): { state: SimDeviceState; firmware: string; config: string | null } | null {
    const d = this.#byId.get(id);
    return d ? { state: d.state, firmware: d.firmware, config: d.appliedConfig } : null;
  }

  ids(): string[] {
    return this.#devices.map((d) => d.id);
  }

  /**
   * Drops `count` devices without DISCONNECT (connected ones first, picked at random); each comes
   * back after a random time in `downMs` and connects at once, like a device that just booted.
   */
  reboot(count: number, downMs: [number, number]): string[] {
    const picked = this.#pick(
      count,
      (d) => d.state === 'connected',
      (d) => d.state !== 'stopped' && d.state !== 'down' && d.state !== 'idle',
    );
    for (const d of picked) this.#rebootDevice(d, inRange(this.#random, downMs), 'reboot');
    return picked.map((d) => d.id);
  }

  /**
   * The connection monkey: a random `fraction` of the fleet cycles up (random time in `upMs` after
   * each connect) and down (random time in `downMs`). Returns a function that ends the cycling;
   * devices that are down then come back as planned and stay.
   */
  flap(fraction: number, upMs: [number, number], downMs: [number, number]): () => void {
    const plan: FlapPlan = { upMs, downMs };
    const n = Math.round(Math.min(1, Math.max(0, fraction)) * this.#devices.length);
    const cohort = this.#pick(
      n,
      (d) => d.state !== 'stopped',
      () => false,
    );
    for (const d of cohort) {
      d.flap = plan;
      if (d.state === 'connected') this.#scheduleDrop(d);
    }
    return () => {
      for (const d of cohort) {
        if (d.flap !== plan) continue;
        d.flap = null;
        if (d.state === 'connected' && d.timer && d.timerKind === 'drop-flap') {
          this.#clearTimer(d);
          this.#scheduleDrop(d);
        }
      }
    };
  }

  /** Replaces the telemetry of every device (null: stop publishing). */
  setTelemetry(t: FleetOptions['telemetry'] | null): void {
    if (t && !(t.intervalMs > 0)) throw new RangeError('telemetry.intervalMs must be > 0');
    this.#telemetry = t ?? null;
    const now = Date.now();
    if (t) for (const d of this.#devices) d.nextTelemetryAt = now + Math.floor(this.#random() * t.intervalMs);
    if (this.#started && !this.#stopping) this.#scheduleTelemetry();
  }

  /** Gives some devices their own payload (e.g. a cohort that starts sending garbage). */
  setPayload(
    ids: string[] | ((id: string) => boolean),
    payload: (id: string, seq: number) => Buffer | string,
  ): void {
    if (Array.isArray(ids)) {
      for (const id of ids) {
        const d = this.#byId.get(id);
        if (d) d.payload = payload;
      }
    } else {
      for (const d of this.#devices) if (ids(d.id)) d.payload = payload;
    }
  }

  /** Sets (or clears) the crash-looping firmware versions; connected devices on them start crashing. */
  setCrashLoop(crashLoop: CrashLoopOptions | null): void {
    this.#crashLoop = crashLoop;
    for (const d of this.#devices) {
      if (d.state !== 'connected') continue;
      if (d.timer && d.timerKind === 'drop-crash') this.#clearTimer(d);
      if (!d.timer) this.#scheduleDrop(d);
    }
  }

  // ---- connection life cycle ----

  #setState(d: SimDevice, state: SimDeviceState): void {
    const was = d.state;
    this.#gauges[was]--;
    this.#gauges[state]++;
    d.state = state;
    if (was === 'connecting' && this.#rampNext) queueMicrotask(this.#rampNext);
  }

  #setTimer(d: SimDevice, kind: SimDevice['timerKind'], ms: number): void {
    if (d.timer) clearTimeout(d.timer);
    d.timerKind = kind;
    d.timer = setTimeout(this.#onTimer, Math.max(0, Math.floor(ms)), d);
  }

  #clearTimer(d: SimDevice): void {
    if (d.timer) clearTimeout(d.timer);
    d.timer = null;
  }

  readonly #onTimer = (d: SimDevice): void => {
    d.timer = null;
    if (this.#stopping) return;
    switch (d.timerKind) {
      case 'retry':
        if (d.state === 'backoff' || d.state === 'auth-stopped') this.#attempt(d);
        return;
      case 'join':
        if (d.state === 'idle') this.#attempt(d);
        return;
      case 'boot':
        if (d.state === 'down') {
          d.retry = 0;
          this.#attempt(d);
        }
        return;
      case 'drop-flap':
        if (d.state === 'connected')
          this.#rebootDevice(d, inRange(this.#random, d.flap?.downMs ?? [0, 0]), 'flap');
        return;
      case 'drop-crash':
        if (d.state === 'connected') this.#crash(d);
        return;
    }
  };

  #attempt(d: SimDevice): void {
    this.#setState(d, 'connecting');
    this.#counters.attempts++;
    d.attemptStartedAt = Date.now();
    d.serverHintMs = null;
    d.disconnectCounted = false;
    const list = this.options.targets;
    const n = list?.length ?? 0;
    // Each retry moves on; the step differs between devices so the fleet of a lost server
    // spreads over all the others instead of piling onto the next one.
    const step = 1 + (Math.floor(d.index / Math.max(1, n)) % Math.max(1, n - 1));
    const { host, port } =
      list !== undefined && n > 0 ? list[(d.index + d.attempts * step) % n]! : this.options.target;
    d.attempts++;
    const sources = this.options.sourceAddresses;
    const opts: net.NetConnectOpts = { host, port, noDelay: true };
    if (sources) opts.localAddress = sources[this.#sourceIndex++ % sources.length]!;
    const socket = net.connect(opts);
    this.#openSockets++;
    d.socket = socket;
    d.pending = null;
    socket.on('data', (chunk: Buffer) => this.#onData(d, socket, chunk));
    socket.on('error', () => {}); // 'close' follows and decides
    socket.once('close', () => this.#onClose(d, socket));
    const creds = this.options.credentials?.(d.id);
    socket.write(
      connectPacket({
        clientId: d.id,
        protocolVersion: this.#version,
        keepalive: this.#keepalive,
        clean: this.options.cleanStart ?? true,
        username: creds?.username,
        password: creds?.password,
      }),
    );
    d.lastWriteAt = d.attemptStartedAt;
    this.emit('attempt', d.id);
  }

  /** Closes the device's socket from our side; its 'close' is then ignored. No DISCONNECT. */
  #dropSocket(d: SimDevice): void {
    const socket = d.socket;
    d.socket = null;
    d.pending = null;
    socket?.destroy();
  }

  #onClose(d: SimDevice, socket: net.Socket): void {
    this.#openSockets--;
    if (this.#openSockets === 0 && this.#onAllClosed) {
      const done = this.#onAllClosed;
      this.#onAllClosed = null;
      done();
    }
    if (d.socket !== socket) return;
    d.socket = null;
    d.pending = null;
    if (d.state === 'connecting') {
      this.#counters.networkErrors++;
      this.#scheduleRetry(d, null);
    } else if (d.state === 'connected') {
      if (!d.disconnectCounted) increment(this.#counters.disconnectsByServer, 'closed');
      this.#clearTimer(d);
      this.#scheduleRetry(d, d.serverHintMs);
    }
  }

  #scheduleRetry(d: SimDevice, hintMs: number | null): void {
    d.retry++;
    const delay = this.policy.nextDelayMs(
      { attempt: d.retry, serverHintMs: hintMs ?? undefined },
      this.#random,
    );
    this.#setState(d, 'backoff');
    this.#setTimer(d, 'retry', Math.max(0, delay) * this.#scale);
  }

  #onData(d: SimDevice, socket: net.Socket, chunk: Buffer): void {
    if (d.socket !== socket) return;
    this.#reading = d;
    d.pending = scanFrames(d.pending, chunk, this.#onFrame);
    this.#reading = null;
  }

  readonly #onFrame = (
    type: number,
    flags: number,
    buf: Buffer,
    frameStart: number,
    bodyStart: number,
    end: number,
  ): void => {
    const d = this.#reading;
    if (!d?.socket) return;
    switch (type) {
      case PacketType.Publish:
        this.#onPublish(d, flags, buf, bodyStart, end);
        return;
      case PacketType.Puback:
        // Telemetry only: reports use ids from CONTROL_PACKET_IDS up.
        if (end - bodyStart >= 2 && buf.readUInt16BE(bodyStart) < CONTROL_PACKET_IDS)
          this.#counters.qos1Acked++;
        return;
      case PacketType.Connack:
        if (d.state === 'connecting') this.#onConnack(d, buf, frameStart, bodyStart, end);
        return;
      case PacketType.Disconnect: {
        const outcome = readControl(this.#version, type, buf, frameStart, bodyStart, end);
        if (d.state === 'connected') {
          increment(this.#counters.disconnectsByServer, reasonName(this.#version, outcome.code));
          d.disconnectCounted = true;
          d.serverHintMs = outcome.retryAfterMs;
        }
        return;
      }
      default:
        return;
    }
  };

  #onConnack(d: SimDevice, buf: Buffer, frameStart: number, bodyStart: number, end: number): void {
    const { code, retryAfterMs } = readControl(
      this.#version,
      PacketType.Connack,
      buf,
      frameStart,
      bodyStart,
      end,
    );
    if (code === 0) {
      this.#onConnected(d);
      return;
    }
    increment(this.#counters.refusals, reasonName(this.#version, code));
    this.#dropSocket(d);
    if (isAuthFailure(this.#version, code)) {
      this.#counters.authFailures++;
      const openForMs = d.breaker.recordAuthFailure(Date.now(), this.#random);
      if (openForMs !== null) {
        this.#counters.authBreakerOpened++;
        this.#setState(d, 'auth-stopped');
        this.#setTimer(d, 'retry', openForMs);
        this.emit('auth-breaker-open', d.id, openForMs);
        return;
      }
    }
    this.#scheduleRetry(d, retryAfterMs);
  }

  #onConnected(d: SimDevice): void {
    this.#counters.connacksOk++;
    this.#setState(d, 'connected');
    d.retry = 0;
    d.breaker.recordSuccess();
    const socket = d.socket!;
    if (this.options.subscribeFleetTopics) {
      socket.write(subscribePacket(this.#version, d.controlPacketId(), [d.topics.config, d.topics.ota]));
    }
    if (this.#telemetry)
      d.nextTelemetryAt = Date.now() + Math.floor(this.#random() * this.#telemetry.intervalMs);
    // The firmware just booted after an OTA reboot: report success, unless it is a crash looper.
    const ota = d.ota;
    if (ota?.phase === 'activating' && !this.#crashes(d)) {
      d.ota = null;
      d.rememberJob(ota.job.jobId);
      this.#report(d, ota.job, 'succeeded');
    }
    this.#flush(d);
    this.#scheduleDrop(d);
    this.emit('connected', d.id);
  }

  /** While connected, the device's timer is its next planned drop: a crash first, else a flap. */
  #scheduleDrop(d: SimDevice): void {
    if (this.#crashes(d)) {
      this.#setTimer(d, 'drop-crash', inRange(this.#random, this.#crashLoop!.upMs) * this.#scale);
    } else if (d.flap) {
      this.#setTimer(d, 'drop-flap', inRange(this.#random, d.flap.upMs));
    }
  }

  #crashes(d: SimDevice): boolean {
    return this.#crashLoop?.versions.includes(d.firmware) === true;
  }

  /** Drop without DISCONNECT, stay down `downMs`, then boot and connect at once. */
  #rebootDevice(d: SimDevice, downMs: number, cause: 'reboot' | 'flap' | 'ota' | 'crash-loop'): void {
    if (d.state === 'stopped') return;
    this.#dropSocket(d);
    this.#clearTimer(d);
    // A reboot kills a job in flight (its retained message will run it again), not an activation.
    if (d.ota && d.ota.phase !== 'activating') this.#ota.abort(d);
    this.#counters.reboots++;
    this.#setState(d, 'down');
    this.#setTimer(d, 'boot', downMs);
    this.emit('reboot', d.id, cause);
  }

  #crash(d: SimDevice): void {
    const loop = this.#crashLoop!;
    d.crashes++;
    const rollbackAfter = loop.rollbackAfter ?? 3;
    if (rollbackAfter > 0 && d.crashes >= rollbackAfter && d.previousFirmware !== null) {
      // The bootloader gives up on the new image: back to the previous one, and say so.
      d.firmware = d.previousFirmware;
      d.previousFirmware = null;
      d.crashes = 0;
      const ota = d.ota;
      if (ota?.phase === 'activating') {
        d.ota = null;
        d.rememberJob(ota.job.jobId);
        const error = { code: 'BW_ERR_DEVICE_OTA_APPLY', message: `crash loop: ${rollbackAfter} crashes` };
        this.#report(d, ota.job, 'failed', { error });
        this.#report(d, ota.job, 'rolled-back');
      }
    }
    this.#rebootDevice(d, inRange(this.#random, loop.downMs) * this.#scale, 'crash-loop');
  }

  // ---- periodic work ----

  /** Once a second: keepalive pings and connect timeouts. */
  #sweep(): void {
    const now = Date.now();
    const pingAfter = this.#keepalive > 0 ? (this.#keepalive * 1000) / 2 : Number.POSITIVE_INFINITY;
    for (const d of this.#devices) {
      if (d.state === 'connected') {
        if (now - d.lastWriteAt >= pingAfter) this.#write(d, PINGREQ);
      } else if (d.state === 'connecting' && now - d.attemptStartedAt >= this.#connectTimeoutMs) {
        this.#counters.networkErrors++;
        this.#dropSocket(d);
        this.#scheduleRetry(d, null);
      }
    }
  }

  #scheduleTelemetry(): void {
    if (this.#telemetryTimer) clearInterval(this.#telemetryTimer);
    this.#telemetryTimer = null;
    const t = this.#telemetry;
    if (!t) return;
    const tick = Math.min(1000, Math.max(20, Math.floor(t.intervalMs / 4)));
    this.#telemetryTimer = setInterval(() => this.#publishTelemetry(), tick);
  }

  #publishTelemetry(): void {
    const t = this.#telemetry;
    if (!t) return;
    const now = Date.now();
    for (const d of this.#devices) {
      if (d.state !== 'connected' || d.nextTelemetryAt > now) continue;
      // After a gap (offline, slow loop) resume the cadence instead of bursting to catch up.
      d.nextTelemetryAt = Math.max(d.nextTelemetryAt + t.intervalMs, now - t.intervalMs);
      const seq = ++d.telemetrySeq;
      const topic = t.topic ? t.topic(d.id) : `devices/${d.id}/telemetry`;
      const make = d.payload ?? t.payload;
      const payload = make ? make(d.id, seq) : `{"seq":${seq},"t":${now}}`;
      this.#write(d, publishPacket(this.#version, topic, payload, t.qos, t.qos > 0 ? d.packetId() : 0));
      this.#counters.published++;
    }
  }

  #write(d: SimDevice, bytes: Buffer): void {
    d.socket?.write(bytes);
    d.lastWriteAt = Date.now();
  }

  // ---- fleet topics ----

  #onPublish(d: SimDevice, flags: number, buf: Buffer, bodyStart: number, end: number): void {
    this.#counters.received++;
    const p = readPublish(this.#version, flags, buf, bodyStart, end);
    if (!p) return;
    if (p.qos > 0) this.#write(d, pubackPacket(this.#version, p.messageId));
    if (p.topic === d.topics.config) this.#onConfig(d, p.payload);
    else if (p.topic === d.topics.ota) this.#ota.onJob(d, p.payload);
  }

  #onConfig(d: SimDevice, payload: Buffer): void {
    if (payload.length === 0) return;
    let config: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(payload.toString('utf8'));
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return;
      config = v as Record<string, unknown>;
    } catch {
      return;
    }
    const raw = config.version;
    const version =
      typeof raw === 'string' || typeof raw === 'number' ? String(raw) : payload.toString('base64');
    if (version === d.appliedConfig) return;
    d.appliedConfig = version;
    this.#counters.configApplied++;
    // The device reports what it runs: the desired config, applied as is.
    d.reported = JSON.stringify(config);
    this.#flush(d);
    this.emit('config', d.id, version);
  }

  /** Publishes an OTA status report now, or queues it until the next connect. */
  #report(d: SimDevice, job: SimOtaJob, status: string, extra: OtaReportExtra = {}): void {
    increment(this.#counters.otaStatus, status);
    this.emit('ota', d.id, status, job.jobId, job.version);
    const entry: OutboxEntry = {
      topic: d.topics.otaStatus,
      payload: otaStatusPayload(job, status, extra),
      retain: false,
    };
    d.outbox ??= [];
    d.outbox.push(entry);
    if (d.outbox.length > OUTBOX_LIMIT) d.outbox.shift();
    this.#flush(d);
  }

  #flush(d: SimDevice): void {
    if (d.state !== 'connected' || !d.socket) return;
    if (d.reported !== null) {
      this.#write(
        d,
        publishPacket(this.#version, d.topics.configReported, d.reported, 1, d.controlPacketId(), true),
      );
      d.reported = null;
    }
    const outbox = d.outbox;
    if (!outbox) return;
    d.outbox = null;
    for (const e of outbox)
      this.#write(d, publishPacket(this.#version, e.topic, e.payload, 1, d.controlPacketId(), e.retain));
  }

  /** Up to `count` random devices, from `preferred` first, then from `fallback`. */
  #pick(
    count: number,
    preferred: (d: SimDevice) => boolean,
    fallback: (d: SimDevice) => boolean,
  ): SimDevice[] {
    const first: SimDevice[] = [];
    const second: SimDevice[] = [];
    for (const d of this.#devices) {
      if (preferred(d)) first.push(d);
      else if (fallback(d)) second.push(d);
    }
    const out: SimDevice[] = [];
    for (const pool of [first, second]) {
      // Partial Fisher-Yates: only as many swaps as picks.
      for (let i = 0; i < pool.length && out.length < count; i++) {
        const j = i + Math.floor(this.#random() * (pool.length - i));
        const tmp = pool[i]!;
        pool[i] = pool[j]!;
        pool[j] = tmp;
        out.push(pool[i]!);
      }
    }
    return out;
  }
}
