/**
 * `createControlPlane()`: prepares storage-backed state (first admin key, signing key) and returns
 * a fastify plugin serving the control-plane API. `breakwater up` registers the plugin on its
 * HTTP instance next to `brokerHttpRoutes`; tests register it on their own instance.
 *
 * Routes: `/api/...` (JSON, API key required unless marked public), `/api/openapi.json`,
 * `/.well-known/jwks.json`. The plugin is encapsulated (not fastify-plugin wrapped): its
 * validator, error handler, auth hook and CSV parser apply to its own routes only.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AlertsConfig, type Clock, systemClock } from '@breakwater/broker';
import type { Integration } from '@breakwater/integration';
import swagger from '@fastify/swagger';
import { Ajv, type Options as AjvOptions } from 'ajv';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Alerting, createAlerting } from '../alerts/index.js';
import { generateApiKey, hashApiKey, roleAllows } from '../auth/api-keys.js';
import type { ApiKeyRecord, ApiKeyRole } from '../auth/model.js';
import { authzRoutes } from '../authz/routes.js';
import { ConfigReportFollower } from '../config-push/reports.js';
import { configPushRoutes } from '../config-push/routes.js';
import { consoleApiRoutes, consoleStaticRoutes } from '../console/routes.js';
import { ConsoleSessionTokens, SESSION_TOKEN_PREFIX } from '../console/session-tokens.js';
import { defaultConsoleDir, loadStaticFiles } from '../console/static-files.js';
import { ConsoleStreamHub } from '../console/stream.js';
import { DevicePresence } from '../devices/presence.js';
import { AttemptLimiter } from '../devices/rate-limit.js';
import { SelectorResolver } from '../devices/selector-resolver.js';
import { ApiError } from '../errors.js';
import type { FleetBroker } from '../fleet-broker.js';
import { gamedayRoutes } from '../gamedays/routes.js';
import { IncidentManager } from '../incidents/manager.js';
import { incidentRoutes } from '../incidents/routes.js';
import { RunbookLibrary } from '../incidents/runbooks.js';
import { integrationRoutes } from '../integration/routes.js';
import { ValidationAlerts } from '../integration/validation-alerts.js';
import { otaGateAlerts } from '../ota/alerts.js';
import { CampaignEngine } from '../ota/engine.js';
import { campaignRoutes } from '../ota/routes.js';
import { revocationRoutes } from '../revocation/routes.js';
import { revocationService } from '../revocation/service.js';
import { statusRoutes } from '../status/routes.js';
import type { ControlStorage } from '../storage/types.js';
import { TokenIssuer } from '../tokens/issuer.js';
import { loadOrCreateKek } from '../tokens/key-encryption.js';
import type { Actor, RouteContext } from './context.js';
import { errorHandler, notFound } from './errors.js';
import { accessRoutes } from './routes-access.js';
import { deviceRoutes } from './routes-devices.js';
import { jwksRoute, tokenRoutes } from './routes-tokens.js';
import { DeviceInput } from './schemas.js';

export interface ControlPlaneOptions {
  storage: ControlStorage;
  /** Holds `admin.key` (first start) and `signing-keys.kek`. */
  dataDir: string;
  clock?: Clock;
  logger?: Logger;
  /**
   * The broker the kill switches act on (`brokerFleet(broker, guard)` in-process). Without it the
   * registry and issuer work; revocations and config pushes are stored and answer with a
   * `warnings` entry (no broker attached); revocations are loaded into the guard at a start with one.
   */
  fleet?: FleetBroker;
  /** Overrides `<dataDir>/signing-keys.kek` (processes sharing PostgreSQL must share it). */
  keyEncryptionKey?: Buffer;
  tokens?: {
    issuer?: string;
    audience?: string;
    /** Longest token an operator may mint (default 24 h). */
    maxTtlSec?: number;
    /** Lifetime of tokens from the device-token exchange (default 1 h). */
    deviceTokenTtlSec?: number;
  };
  /** Device-token exchange budget per device id (default 10 per minute). */
  deviceTokenRateLimit?: { max?: number; windowMs?: number };
  /** The broker's metrics (BrokerMetrics.registry): sampled into the history the alert rules read. */
  metrics?: { registry: Registry };
  /** The config's `alerts:` section (rule overrides, webhooks). */
  alerts?: Partial<AlertsConfig>;
  /**
   * The data-integration engine (issue 16): serves /api/v1/rules, /sinks, /dlq and
   * /telemetry/validation, and turns its validation reports into the data-quality alert.
   */
  integration?: Integration;
  /**
   * The web console (issue 14): `dir` is its built bundle (default: `@breakwater/console`'s dist;
   * null: /console answers 503), `sessionTtlSec` the life of a console session token (default 1 h).
   */
  console?: { dir?: string | null; sessionTtlSec?: number };
  /** Where `breakwater gameday run` writes its reports (default `./gameday-reports`). */
  gamedayReportsDir?: string;
  /** Events kept in each device's history (config `control.deviceEventsPerDevice`, default 200). */
  deviceEventsPerDevice?: number;
}

/** Who a Bearer credential (API key or console session token) is, or why it is refused. */
export type BearerCheck =
  | { ok: true; actor: { id: string; name: string; role: ApiKeyRole } }
  | { ok: false; status: 401 | 403; message: string };

export interface ControlPlane {
  /** Register on a fastify instance: `await app.register(cp.plugin)`. */
  plugin: FastifyPluginAsync;
  /** The first admin key, only on the start that created it (print it once), else null. */
  initialAdminKey: string | null;
  /** Where the first admin key was written (mode 0600). */
  adminKeyFile: string;
  /** Feed broker connect, disconnect and queue-drop events here. */
  presence: DevicePresence;
  selectors: SelectorResolver;
  issuer: TokenIssuer;
  storage: ControlStorage;
  fleet: FleetBroker | null;
  /** Alert engine (`alerts.engine.subscribe(sink)`, `.raise(ruleId, …)`) and metric history. */
  alerts: Alerting;
  /** Incidents (an AlertSink subscribed to `alerts.engine`), runbooks, postmortems. */
  incidents: IncidentManager;
  /**
   * Checks a Bearer credential against the API keys and console sessions for a route that needs
   * `role`: `breakwater up` hands it to the broker's admin routes (break-glass, flapping bans),
   * so the console reaches them with the same keys and roles as the control API.
   */
  verifyBearer(credential: string, role: ApiKeyRole): Promise<BearerCheck>;
  /** Starts the background services (presence feed, config/OTA followers, campaign engine). */
  start(): Promise<void>;
  /** Stops them and waits for pending writes; does not close `storage` (the caller owns it). */
  close(): Promise<void>;
}

/** A background part of the control plane with a lifecycle (campaign engine, report followers). */
export interface ControlService {
  start(): Promise<void> | void;
  close(): Promise<void> | void;
}

export const ADMIN_KEY_FILE = 'admin.key';

/**
 * Two validators. Bodies: no coercion and unknown keys rejected (a typo like `firmwre` must be a
 * 400, not silently dropped — fastify's default ajv removes additional properties). Query
 * strings and params: types coerced (`?limit=5`), single values coerced to arrays (`?tag=eu`).
 */
function validatorCompiler() {
  const base: AjvOptions = { allErrors: false, strict: false, useDefaults: true, removeAdditional: false };
  const bodyAjv = new Ajv({ ...base, coerceTypes: false });
  const queryAjv = new Ajv({ ...base, coerceTypes: 'array' });
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? bodyAjv : queryAjv).compile(schema);
}

async function bootstrapAdminKey(
  storage: ControlStorage,
  clock: Clock,
  file: string,
): Promise<string | null> {
  if ((await storage.apiKeys.count()) > 0) return null;
  const { id, key, keyHash } = generateApiKey();
  // The file first: a key that only exists in the database would lock everyone out.
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // an existing file keeps its old mode on overwrite
  await storage.transaction(async (tx) => {
    await tx.apiKeys.insert({
      id,
      name: 'bootstrap admin',
      role: 'admin',
      keyHash,
      createdAt: clock.now(),
      createdBy: null,
      revokedAt: null,
      lastUsedAt: null,
    });
    await tx.audit.append({
      at: clock.now(),
      actorId: 'system',
      actorName: 'first start',
      action: 'apikey.create',
      targetType: 'apikey',
      targetId: id,
      reason: 'first start: no API keys',
      details: { role: 'admin', file },
    });
  });
  return key;
}

// last_used_at is informative; one write per key per minute is plenty.
const TOUCH_INTERVAL_MS = 60_000;

export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { storage, dataDir } = options;
  const clock = options.clock ?? systemClock;
  mkdirSync(dataDir, { recursive: true });
  const adminKeyFile = join(dataDir, ADMIN_KEY_FILE);
  const initialAdminKey = await bootstrapAdminKey(storage, clock, adminKeyFile);
  const kek = options.keyEncryptionKey ?? loadOrCreateKek(dataDir);
  const issuer = new TokenIssuer({ storage, clock, kek, ...options.tokens });
  const sessions = new ConsoleSessionTokens(kek, (options.console?.sessionTtlSec ?? 3600) * 1000);
  await issuer.init();
  const fleet = options.fleet ?? null;
  const presence = new DevicePresence(storage, {
    logger: options.logger,
    keepPerDevice: options.deviceEventsPerDevice,
  });
  // Feature modules push their background services here; start() runs them in order.
  const services: ControlService[] = [];
  const alerting = createAlerting({
    clock,
    logger: options.logger ?? null,
    registry: options.metrics?.registry ?? null,
    config: options.alerts ?? {},
  });
  services.push(alerting);
  // Alerts open (or join) incidents; the broker's break-glass log feeds their timelines.
  const incidents = new IncidentManager({
    storage,
    clock,
    logger: options.logger ?? null,
    runbooks: new RunbookLibrary(),
    brokerAuditLog: IncidentManager.brokerAuditLogIn(dataDir),
  });
  alerting.engine.subscribe(incidents);
  if (fleet !== null) {
    let stopPresence: (() => void) | null = null;
    services.push({
      start: () => {
        stopPresence = fleet.onPresence({
          connected: (id, at) => presence.connected(id, at),
          disconnected: (id, at, reason) => presence.disconnected(id, at, reason),
          messagesDropped: (id, at, dropped) => presence.messagesDropped(id, at, dropped),
        });
      },
      close: async () => {
        stopPresence?.();
        await presence.flush();
      },
    });
  }
  const ctx: RouteContext = {
    storage,
    clock,
    fleet,
    logger: options.logger ?? null,
    issuer,
    limiter: new AttemptLimiter({ clock, ...options.deviceTokenRateLimit }),
    deviceTokenTtlSec: options.tokens?.deviceTokenTtlSec ?? 3600,
  };
  if (fleet !== null) services.push(new ConfigReportFollower({ storage, fleet, clock, logger: ctx.logger }));
  const campaigns = new CampaignEngine({
    storage,
    clock,
    fleet,
    logger: ctx.logger,
    events: otaGateAlerts(alerting.engine),
  });
  services.push(campaigns);
  const integration = options.integration ?? null;
  const validationAlerts =
    integration === null
      ? null
      : new ValidationAlerts({
          integration,
          devices: storage.devices,
          alerts: alerting.engine,
          registry: options.metrics?.registry ?? null,
          logger: options.logger ?? null,
        });
  if (validationAlerts !== null) services.push(validationAlerts);
  // Active revocations onto the guard denylist before anything else acts on the fleet.
  if (fleet !== null) services.unshift(revocationService(storage, fleet, ctx.logger));
  const lastTouched = new Map<string, number>();
  const consoleDir = options.console?.dir === undefined ? defaultConsoleDir() : options.console.dir;
  const consoleFiles = consoleDir === null ? null : loadStaticFiles(consoleDir);
  const consoleHub = new ConsoleStreamHub({
    clock,
    history: alerting.history,
    engine: alerting.engine,
    audit: storage.audit,
  });
  services.push({ start: () => {}, close: () => consoleHub.close() });

  /** The API key behind a Bearer credential: the key itself, or a console session token for it. */
  async function keyFor(credential: string): Promise<ApiKeyRecord | null> {
    if (credential.startsWith(SESSION_TOKEN_PREFIX)) {
      const claims = sessions.verify(credential, clock.now());
      return claims === null ? null : storage.apiKeys.get(claims.keyId);
    }
    return storage.apiKeys.findByHash(hashApiKey(credential));
  }

  /** Who the credential is (touching the key's last use), or why it is not accepted. */
  async function identify(credential: string): Promise<Actor | string> {
    const key = await keyFor(credential);
    if (!key || key.revokedAt !== null) {
      if (key) return 'the API key is revoked';
      return credential.startsWith(SESSION_TOKEN_PREFIX)
        ? 'console session expired or invalid: log in again'
        : 'unknown API key';
    }
    const now = clock.now();
    if (now - (lastTouched.get(key.id) ?? 0) >= TOUCH_INTERVAL_MS) {
      lastTouched.set(key.id, now);
      storage.apiKeys
        .touch(key.id, now)
        .catch((err: unknown) => options.logger?.warn({ err }, 'api key touch failed'));
    }
    return { id: key.id, name: key.name, role: key.role };
  }

  async function verifyBearer(credential: string, role: ApiKeyRole): Promise<BearerCheck> {
    const actor = await identify(credential);
    if (typeof actor === 'string') return { ok: false, status: 401, message: actor };
    if (!roleAllows(actor.role, role)) {
      return { ok: false, status: 403, message: `needs role ${role}; key ${actor.id} is ${actor.role}` };
    }
    return { ok: true, actor };
  }

  async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const access = request.routeOptions.config?.access;
    if (access === undefined || access === 'public') return; // unknown routes: 404 handler
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      reply.header('www-authenticate', 'Bearer');
      throw new ApiError('BW_ERR_API_UNAUTHENTICATED', 'send Authorization: Bearer <API key>');
    }
    const actor = await identify(match[1]!);
    if (typeof actor === 'string') {
      reply.header('www-authenticate', 'Bearer error="invalid_token"');
      throw new ApiError('BW_ERR_API_UNAUTHENTICATED', actor);
    }
    request.actor = actor;
    if (!roleAllows(actor.role, access)) {
      throw new ApiError(
        'BW_ERR_API_FORBIDDEN',
        `${request.method} ${request.routeOptions.url} needs role ${access}; key ${actor.id} is ${actor.role}`,
      );
    }
  }

  const plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
    app.setValidatorCompiler(validatorCompiler());
    app.setErrorHandler(errorHandler);
    app.decorateRequest('actor', null);
    app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_req, body, done) => done(null, body));
    app.addHook('onRequest', authenticate);
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Breakwater control plane',
          version: '1',
          description:
            'Device registry, API keys, audit log and token issuer. Errors: `{ error: { code, message, field? } }`.',
        },
        components: {
          securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'API key (bwk_…)' } },
        },
        security: [{ apiKey: [] }],
      },
    });
    const validateRow = new Ajv({ allErrors: false, strict: false, removeAdditional: false }).compile(
      DeviceInput,
    );

    jwksRoute(app, ctx);
    statusRoutes(app, ctx);
    consoleStaticRoutes(app, consoleFiles);
    await app.register(
      async (api) => {
        api.setNotFoundHandler(notFound);
        api.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () =>
          app.swagger(),
        );
        accessRoutes(api, ctx);
        deviceRoutes(api, ctx, validateRow);
        tokenRoutes(api, ctx);
        campaignRoutes(api, ctx, campaigns);
        alerting.routes(api, ctx);
        revocationRoutes(api, ctx);
        configPushRoutes(api, ctx);
        incidentRoutes(api, ctx, incidents);
        integrationRoutes(api, ctx, integration, validationAlerts);
        consoleApiRoutes(api, ctx, sessions, consoleHub);
        gamedayRoutes(api, ctx, options.gamedayReportsDir ?? 'gameday-reports');
        authzRoutes(api, ctx);
      },
      { prefix: '/api' },
    );
  };

  return {
    plugin,
    initialAdminKey,
    adminKeyFile,
    presence,
    selectors: new SelectorResolver(storage.devices),
    issuer,
    storage,
    fleet,
    alerts: alerting,
    incidents,
    verifyBearer,
    start: async () => {
      for (const s of services) await s.start();
    },
    close: async () => {
      for (const s of [...services].reverse()) await s.close();
    },
  };
}
