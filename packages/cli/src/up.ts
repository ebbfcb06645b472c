import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import {
  AdmissionGate,
  AdmissionMetrics,
  AuditLog,
  type BreakwaterConfig,
  BreakwaterError,
  Broker,
  BrokerMetrics,
  type BrokerStorage,
  brokerAdminRoutes,
  brokerHttpRoutes,
  ensureAdminToken,
  fdHeadroomWarning,
  Guard,
  Listeners,
  listenError,
  MemoryStorage,
  type NodeControl,
  NodeDrain,
  procFdUsage,
  type ReadinessState,
  resolveAdmissionConfig,
  SqliteStorage,
  systemClock,
  urlHost,
} from '@breakwater/broker';
// Types only: the control plane is loaded when it is enabled, so the other `breakwater` commands
// (which all go through this module) do not pay for importing it.
import type { NatsCluster } from '@breakwater/cluster';
import type { ControlPlane, ControlStorage } from '@breakwater/control';
import type { Integration } from '@breakwater/integration';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createLogger } from './log-output.js';
import {
  type ControlStorageConfig,
  localJwksUrl,
  resolveUpConfig,
  type UpConfig,
  type UpFlags,
} from './up-config.js';

export interface UpIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /**
   * Resolves when the process should shut down. Defaults to the first SIGTERM or SIGINT; tests
   * running in-process pass their own.
   */
  shutdownSignal?: Promise<string>;
}

/**
 * `breakwater up`: broker + MQTT listeners + HTTP endpoints + the fleet control plane (issue 5)
 * in one process, until SIGTERM/SIGINT. Returns the exit code: 0 after a clean shutdown, 1 when
 * start-up fails (one line on stderr).
 *
 * Shutdown order (issue 2): /readyz → 503, stop accepting, control plane services stop (before
 * the broker closes, so no config push or OTA job is published into a closed broker),
 * broker.close() (MQTT 5 clients get DISCONNECT 0x8B, storage is flushed and closed), close
 * leftover sockets, close HTTP, close the control plane's database.
 */
export async function runUp(flags: UpFlags, io: UpIo): Promise<number> {
  let resolved: UpConfig;
  try {
    resolved = resolveUpConfig(flags);
  } catch (err) {
    return fail(io, err);
  }
  const { config } = resolved;
  const logger = createLogger(config.log.level, config.log.format);

  let state: ReadinessState = 'starting';
  const signals = io.shutdownSignal ?? shutdownSignals(logger);

  const admissionConfig = resolveAdmissionConfig(config.admission);
  const capacity = connectionCapacity(config, admissionConfig.global.maxConnections);
  // issue 3: warn at start when `ulimit -n` is below the configured max connections plus 10 %.
  const fdWarning = fdHeadroomWarning(capacity);
  if (fdWarning) logger.warn({ capacity }, fdWarning);

  const guardOn = Object.keys(config.guard.listeners).length > 0;
  const metrics = new BrokerMetrics();
  const admission = new AdmissionGate(admissionConfig, {
    clock: systemClock,
    metrics: new AdmissionMetrics(metrics.registry),
    logger,
    ...fdUsageDep(),
  });
  // Break-glass changes (admin API) and bypass expiries (guard) share one trail.
  const auditLog = new AuditLog(join(config.dataDir, 'audit.log'));
  let storage: BrokerStorage;
  const clustered = config.cluster.servers.length > 0;
  try {
    if (config.storage.driver === 'sqlite' || guardOn || config.http.enabled) {
      mkdirSync(config.dataDir, { recursive: true });
    }
    // In a cluster the durable state (sessions, QoS 1/2 messages, retained) lives in JetStream:
    // a node's local copy must not come back from a restart as if it were current.
    storage =
      config.storage.driver === 'sqlite' && !clustered
        ? new SqliteStorage({ file: config.storage.file! })
        : new MemoryStorage();
  } catch (err) {
    return fail(
      io,
      new BreakwaterError('BW_ERR_STORAGE', `cannot open ${config.storage.file}`, { cause: err }),
    );
  }

  // Data integration (issue 16): its buffer opens before the broker exists, because the broker's
  // storage flush must also wait for the buffer (a matched QoS 1 message is buffered before PUBACK).
  let integration: Integration | null = null;
  if (integrationConfigured(config)) {
    try {
      const { Integration } = await import('@breakwater/integration');
      integration = new Integration({ config: config.integration, registry: metrics.registry, logger });
      storage = integration.joinFlush(storage);
    } catch (err) {
      return fail(io, err);
    }
  }

  let guard: Guard | null = null;
  let adminToken: ReturnType<typeof ensureAdminToken> | null = null;
  let httpPort = config.http.port;
  try {
    let guardConfig = config.guard;
    if (resolved.localJwks.length > 0 && httpPort === 0) {
      // The guard needs the JWKS URL before HTTP listens (fastify takes no plugins after
      // listen): pick the free port now instead of letting listen() pick it.
      httpPort = await freePort(config.http.host);
      guardConfig = withJwksUrl(config.guard, resolved.localJwks, localJwksUrl(config.http.host, httpPort));
    }
    if (guardOn) {
      guard = new Guard(guardConfig, { dataDir: config.dataDir, logger, metrics, auditLog, admission });
    }
    if (config.http.enabled) adminToken = ensureAdminToken(config.dataDir);
  } catch (err) {
    return fail(io, err);
  }
  warnAboutAuthentication(config, logger);
  if (config.control.enabled && !config.http.enabled) {
    logger.warn(
      'the control plane is not served: it needs http.enabled (set control.enabled: false to silence this)',
    );
  }
  let cluster: NatsCluster | null = null;
  if (clustered) {
    try {
      cluster = await joinCluster(config, logger, metrics.registry);
    } catch (err) {
      await guard?.close();
      return fail(io, err);
    }
  }
  const broker = new Broker({
    storage,
    limits: config.mqtt,
    logger,
    metrics,
    admission,
    ...(guard ? { hooks: guard } : {}),
    ...(cluster ? { cluster } : {}),
  });
  const drain = new NodeDrain(broker);
  integration?.attach(broker);
  const listeners = new Listeners(broker, resolved.listeners, { logger, limits: config.mqtt, admission });
  let http: FastifyInstance | undefined;
  let brokerStarted = false;
  let controlStorage: ControlStorage | null = null;
  let control: ControlPlane | null = null;
  let controlStarted = false;

  const teardown = async () => {
    state = 'draining';
    listeners.stopAccepting();
    drain.stop();
    if (controlStarted) await control?.close();
    if (brokerStarted) await broker.close();
    await cluster?.close();
    // After the broker: what it handed over is committed; batches in flight finish or stay buffered.
    await integration?.close();
    await listeners.close();
    await guard?.close();
    await http?.close();
    await controlStorage?.close();
  };

  /** `breakwater node drain`: readiness false first, then no new connections, then eviction. */
  const nodeControl: NodeControl = {
    drain(request) {
      state = 'draining';
      listeners.stopAccepting();
      const ref = request.serverReference;
      return drain.start({
        ratePerSec: request.ratePerSec ?? config.cluster.drainRatePerSec,
        serverReference: () => ref ?? cluster?.otherNodeAddress() ?? null,
      });
    },
    drainStatus: () => drain.status(),
  };

  const lines: string[] = [];
  try {
    if (resolved.control) {
      const { brokerFleet, createControlPlane } = await import('@breakwater/control');
      controlStorage = await openControlStorage(resolved.control);
      control = await createControlPlane({
        storage: controlStorage,
        dataDir: config.dataDir,
        logger,
        fleet: brokerFleet(broker, guard),
        metrics: { registry: metrics.registry },
        alerts: config.alerts,
        gamedayReportsDir: config.control.gamedayReports,
        deviceEventsPerDevice: config.control.deviceEventsPerDevice,
        ...(integration ? { integration } : {}),
      });
    }
    if (config.http.enabled) {
      http = Fastify({ logger: false });
      await http.register(brokerHttpRoutes, {
        registry: metrics.registry,
        // A cluster node cut off from NATS/JetStream is not ready (issue 15).
        readiness: () => (state === 'ready' && cluster !== null && !cluster.healthy ? 'degraded' : state),
      });
      // The broker's break-glass routes are /api/v1/listeners/*; the control plane's are
      // /api/v1/{keys,audit,devices,selectors,tokens,device-token,…}, /api/openapi.json and
      // /.well-known/jwks.json. Both plugins are encapsulated: each one's auth hook and error
      // handler apply to its own routes only.
      await http.register(brokerAdminRoutes, {
        token: adminToken!.token,
        guard,
        listeners: config.listeners.map((l) => l.name),
        audit: auditLog,
        registry: metrics.registry,
        admission,
        node: nodeControl,
        // The console (issue 14) reaches break-glass and flapping bans with API keys too.
        apiKeys: control ? (credential, role) => control!.verifyBearer(credential, role) : null,
      });
      if (control) await http.register(control.plugin);
      try {
        await http.listen({ port: httpPort, host: config.http.host });
      } catch (err) {
        throw listenError(err, 'HTTP', config.http.host, httpPort, resolved.httpPortSource);
      }
    }
    // Loads keys and password files; never fails because a backend is down (it retries). The
    // local JWKS is served by now, so a jwt authenticator pointing at it loads its keys at once.
    await guard?.start();
    await broker.start();
    brokerStarted = true;
    // Retained messages loaded, ownership watch and heartbeats running: before the listeners.
    await cluster?.start();
    // The survivors of a node loss admit its devices from cache (guard.secret shared by the nodes).
    const knownGood = guard?.knownGood;
    if (cluster && knownGood) await cluster.shareKnownGood(knownGood);
    // Before the listeners accept: the presence feed sees every connect from the first one.
    await control?.start();
    controlStarted = true;
    for (const address of await listeners.start()) {
      lines.push(`  ${address.name.padEnd(8)} ${address.url}`);
    }
    if (cluster) {
      const tcp = listeners.addresses.find((a) => a.type === 'tcp');
      const advertise = config.cluster.advertise ?? (tcp ? advertisedAddress(tcp.host, tcp.port) : null);
      cluster.setAdvertise(advertise);
      lines.push(`  ${'cluster'.padEnd(8)} node ${cluster.nodeId} on ${config.cluster.servers.join(',')}`);
    }
    if (http) {
      const port = (http.server.address() as { port: number }).port;
      const base = `http://${urlHost(config.http.host)}:${port}`;
      lines.push(`  ${'http'.padEnd(8)} ${base}/metrics  (/healthz, /readyz)`);
      if (control) {
        lines.push(`  ${'control'.padEnd(8)} ${base}/api/v1  (OpenAPI: ${base}/api/openapi.json)`);
        lines.push(`  ${'console'.padEnd(8)} ${base}/console/  (log in with an API key)`);
      }
    }
  } catch (err) {
    await teardown().catch((closeErr: unknown) =>
      logger.error({ err: closeErr }, 'error during start-up cleanup'),
    );
    return fail(io, err);
  }

  state = 'ready';
  cluster?.onHealthChange((_healthy, isolated) => {
    // Cut off long enough that the other nodes will count this one dead: send the clients over
    // to them (their wills fire there); back in the cluster, stop evicting.
    if (isolated && state === 'ready') {
      logger.warn('cut off from the cluster: evicting clients towards the other nodes');
      drain.start({
        ratePerSec: config.cluster.drainRatePerSec,
        serverReference: () => cluster!.otherNodeAddress(),
        reason: 'node cut off from its cluster',
      });
    } else if (!isolated && state === 'ready' && drain.draining) {
      drain.stop();
    }
  });
  const storageLine = clustered
    ? `NATS JetStream cluster (prefix ${config.cluster.prefix})`
    : config.storage.driver === 'sqlite'
      ? `sqlite ${config.storage.file}`
      : 'memory (not persistent)';
  io.stdout.write(`breakwater is up (storage: ${storageLine})\n${lines.join('\n')}\n`);
  if (control?.initialAdminKey) {
    // First start only: the control plane's first admin API key (the file keeps it, mode 0600).
    io.stdout.write(
      `control-plane admin API key (created ${control.adminKeyFile}, mode 0600; shown only now): ${control.initialAdminKey}\n`,
    );
  }
  if (adminToken?.created) {
    // Printed once, when created: the file keeps it (mode 0600) for `breakwater listener …`.
    io.stdout.write(
      `admin token (created ${adminToken.path}, mode 0600; shown only now): ${adminToken.token}\n`,
    );
  }

  const stopReload =
    integration && flags.config !== undefined ? reloadOnSighup(flags, integration, logger) : null;
  const signal = await signals;
  stopReload?.();
  logger.info({ signal }, 'shutting down: no new connections, disconnecting clients, flushing storage');
  try {
    await teardown();
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    return fail(io, err);
  }
  logger.info('shutdown complete');
  return 0;
}

/**
 * Connection capacity for the FD-headroom warning: the admission cap, or when that is unlimited
 * (0) the sum of `listeners[].maxConnections` if every listener has one; 0 = unknown (no warning).
 */
function connectionCapacity(config: Readonly<BreakwaterConfig>, admissionMax: number): number {
  if (admissionMax > 0) return admissionMax;
  if (config.listeners.every((l) => l.maxConnections !== undefined))
    return config.listeners.reduce((sum, l) => sum + (l.maxConnections ?? 0), 0);
  return 0;
}

/**
 * Without `guard.listeners` there is no guard: every listener admits anonymous clients with full
 * access, which is what the quick tour needs and never what production wants — say so loudly,
 * once per listener. With a guard, a listener without an entry refuses every CONNECT: say that too.
 */
function warnAboutAuthentication(config: Readonly<BreakwaterConfig>, logger: Logger): void {
  const configured = config.guard.listeners;
  for (const l of config.listeners) {
    if (Object.keys(configured).length === 0) {
      logger.warn(
        { listener: l.name },
        `authentication is off on listener ${l.name}: any client may connect and use any topic; configure guard.listeners`,
      );
    } else if (!configured[l.name] && !configured['*']) {
      logger.warn(
        { listener: l.name },
        `listener ${l.name} has no guard.listeners entry: every CONNECT on it is refused`,
      );
    }
  }
}

/** Opens the control plane's database; errors name the config key, never a password. */
async function openControlStorage(c: ControlStorageConfig): Promise<ControlStorage> {
  const { PostgresControlStorage, SqliteControlStorage } = await import('@breakwater/control');
  try {
    if (c.driver === 'sqlite') {
      mkdirSync(dirname(c.file), { recursive: true });
      return SqliteControlStorage.open({ file: c.file });
    }
    return await PostgresControlStorage.open({
      connectionString: c.url,
      ...(c.schema ? { schema: c.schema } : {}),
    });
  } catch (err) {
    const where =
      c.driver === 'sqlite' ? `control.storage.file ${c.file}` : `control.storage.url ${redactUrl(c.url)}`;
    const why = err instanceof Error ? `: ${err.message}` : '';
    throw new BreakwaterError('BW_ERR_STORAGE', `cannot open the control-plane database (${where})${why}`, {
      cause: err,
    });
  }
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** Connects this node to its cluster; errors name `cluster.servers`. */
async function joinCluster(
  config: Readonly<BreakwaterConfig>,
  logger: Logger,
  registry: BrokerMetrics['registry'],
): Promise<NatsCluster> {
  const { NatsCluster } = await import('@breakwater/cluster');
  const c = config.cluster;
  try {
    return await NatsCluster.connect({
      servers: [...c.servers],
      discoverServers: c.discoverServers,
      prefix: c.prefix,
      replicas: c.replicas,
      streamMaxAgeSec: c.streamMaxAgeSec,
      heartbeatMs: c.heartbeatMs,
      deadAfterMs: c.deadAfterMs,
      isolateAfterMs: c.isolateAfterMs,
      requestTimeoutMs: c.requestTimeoutMs,
      sharedAckWaitMs: c.sharedAckWaitMs,
      sharedMaxAckPending: c.sharedMaxAckPending,
      sharedInFlightPerNode: c.sharedInFlightPerNode,
      sharedInactiveMs: c.sharedInactiveMs,
      liveConnections: c.liveConnections,
      logger,
      registry,
    });
  } catch (err) {
    const why = err instanceof Error ? `: ${err.message}` : '';
    throw new BreakwaterError(
      'BW_ERR_CLUSTER',
      `cannot join the cluster at cluster.servers ${c.servers.join(',')}${why}`,
      { cause: err },
    );
  }
}

/** `host:port` other nodes hand to redirected clients; a wildcard bind is named by loopback. */
function advertisedAddress(host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `${urlHost(h)}:${port}`;
}

/** A free TCP port on `host`, found by binding port 0 and releasing it. */
async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A copy of the guard config with `jwksUrl` set on the named jwt authenticators. */
function withJwksUrl(
  guard: Readonly<BreakwaterConfig['guard']>,
  names: readonly string[],
  jwksUrl: string,
): BreakwaterConfig['guard'] {
  const copy = structuredClone(guard) as BreakwaterConfig['guard'];
  for (const name of names) copy.authenticators.jwt[name]!.jwksUrl = jwksUrl;
  return copy;
}

function fdUsageDep(): { fdUsage?: NonNullable<ReturnType<typeof procFdUsage>> } {
  const fdUsage = procFdUsage();
  return fdUsage ? { fdUsage } : {};
}

/** Whether the config asks for the integration engine (any sink, rule or validation). */
function integrationConfigured(config: Readonly<BreakwaterConfig>): boolean {
  const i = config.integration;
  return (
    i.rules.length > 0 ||
    i.validation.length > 0 ||
    Object.values(i.sinks).some((byName) => Object.keys(byName).length > 0)
  );
}

/**
 * SIGHUP re-reads the config file and applies its integration rules and validation at once
 * (sinks need a restart). A broken file is logged and changes nothing.
 */
function reloadOnSighup(flags: UpFlags, integration: Integration, logger: Logger): () => void {
  const onHup = () => {
    try {
      const { config } = resolveUpConfig(flags);
      const out = integration.reload(config.integration);
      for (const w of out.warnings) logger.warn(w);
      logger.info({ rules: out.rules, validations: out.validations }, 'SIGHUP: integration rules reloaded');
    } catch (err) {
      logger.error({ err: err instanceof Error ? err.message : String(err) }, 'SIGHUP: config not reloaded');
    }
  };
  process.on('SIGHUP', onHup);
  return () => process.off('SIGHUP', onHup);
}

/** One line on stderr: the message (with its BW_ERR_* code), never a stack trace. */
function fail(io: UpIo, err: unknown): number {
  const code = err instanceof BreakwaterError ? ` [${err.code}]` : '';
  const message = err instanceof Error ? err.message : String(err);
  io.stderr.write(`breakwater: ${message}${code}\n`);
  return 1;
}

/**
 * The first SIGTERM/SIGINT starts a graceful shutdown; a second one while it runs means "now":
 * exit at once, as an operator pressing Ctrl-C twice expects.
 */
function shutdownSignals(logger: Logger): Promise<string> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) {
        logger.warn({ signal }, 'second signal during shutdown: exiting now');
        process.exit(1);
      }
      received = true;
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
