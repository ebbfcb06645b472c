/**
 * The kill switches and the alert feed a scenario acts through. When the control plane
 * (@breakwater/control) is installed in this process, credential revocation goes through it (the
 * operator's path: `createControlPlane` + `brokerFleet`, its revocation API); otherwise straight
 * to the guard's denylist (`Guard.revoke`), the same effect without the audit trail.
 *
 * The control plane is loaded with a dynamic import and probed for what it offers, so the game day
 * neither depends on it at build time (control's own end-to-end tests use the game day: a static
 * dependency would be a cycle) nor breaks while its features are still landing.
 */
import type { BrokerEnv } from './environment.js';

/** An alert the control plane fired or resolved during the run. */
export interface AlertRecord {
  at: number;
  /** Seconds since t = 0. */
  t: number;
  ruleId: string;
  name: string;
  state: 'firing' | 'resolved';
  severity: string;
}

export interface AlertFeed {
  /** Which engine, for the report. */
  readonly description: string;
  setOrigin(t0: number): void;
  firing(): number;
  records(): AlertRecord[];
  /** Raises an event rule (e.g. `telemetry-validation-failures`, which a validator reports). */
  raise(ruleId: string, input: { value?: number; summary?: string; startedAt?: number }): void;
}

/** OTA campaigns through the control plane's API. */
export interface OtaApi {
  /** Puts the devices into the registry (needed before a campaign can target them). */
  registerDevices(ids: readonly string[], firmware: string): Promise<void>;
  /** Creates and starts a campaign; returns its id. */
  startCampaign(body: Record<string, unknown>): Promise<string>;
  campaign(id: string): Promise<CampaignView>;
}

export interface CampaignView {
  id: string;
  state: string;
  haltReason: string | null;
  haltedBy: string | null;
  currentWave: number | null;
  targetCount: number;
}

export interface ControlAdapter {
  /** `control-plane` (its API) or `guard` (Guard.revoke directly). */
  readonly kind: 'control-plane' | 'guard';
  /** Revokes devices: live sessions end, reconnects are refused. Resolves when in force. */
  revoke(ids: readonly string[], reason: string): Promise<void>;
  /** Without a denylist (protections off): only ends the live sessions, as a broker without auth can. */
  kick(ids: readonly string[], reason: string): number;
  readonly alerts: AlertFeed | null;
  readonly ota: OtaApi | null;
  close(): Promise<void>;
}

type ControlModule = Record<string, unknown>;

/** Loads @breakwater/control if it is installed; null otherwise. */
export async function loadControlModule(): Promise<ControlModule | null> {
  // A variable specifier: TypeScript does not resolve it, so there is no build-time dependency.
  const specifier = '@breakwater/control';
  try {
    return (await import(specifier)) as ControlModule;
  } catch {
    return null;
  }
}

export async function startControl(
  env: BrokerEnv,
  dataDir: string,
  log: (line: string) => void,
): Promise<ControlAdapter> {
  const inProcess = env.inProcess;
  if (!inProcess) throw new Error('credential revocation needs the in-process broker');
  const { broker, guard } = inProcess;
  const plane = await startControlPlane(env, dataDir, log).catch((err: unknown) => {
    log(`control plane: not started (${err instanceof Error ? err.message : String(err)}); using the guard`);
    return null;
  });
  if (plane) return plane;
  return {
    kind: 'guard',
    async revoke(ids) {
      if (!guard) throw new Error('no guard: nothing can refuse a revoked device');
      for (const id of ids) guard.revoke({ clientId: id });
    },
    kick(ids, reason) {
      let n = 0;
      for (const id of ids) if (broker.disconnectClient(id, 0x87, reason)) n++;
      return n;
    },
    alerts: null,
    ota: null,
    async close() {},
  };
}

interface InjectResponse {
  statusCode: number;
  body: string;
  json(): unknown;
}

interface FastifyLike {
  register(plugin: unknown): Promise<unknown>;
  ready(): Promise<unknown>;
  inject(o: {
    method: string;
    url: string;
    headers?: Record<string, string>;
    payload?: unknown;
  }): Promise<InjectResponse>;
  close(): Promise<unknown>;
}

interface AlertEventLike {
  ruleId: string;
  name: string;
  state: 'firing' | 'resolved';
  severity: string;
  at: number;
}

interface ControlPlaneLike {
  plugin: unknown;
  initialAdminKey: string | null;
  start(): Promise<void>;
  close(): Promise<void>;
  alerts?: {
    engine?: {
      subscribe(sink: { onAlert(e: AlertEventLike): void }): () => void;
      active?(): { state: string }[];
      raise?(ruleId: string, input: Record<string, unknown>): void;
    };
  };
}

/**
 * The control plane beside the in-process broker, driven through its HTTP API (fastify inject:
 * the same routes, schemas and audit trail an operator's `curl` goes through). null when
 * @breakwater/control is not installed.
 */
async function startControlPlane(
  env: BrokerEnv,
  dataDir: string,
  log: (line: string) => void,
): Promise<ControlAdapter | null> {
  const mod = await loadControlModule();
  const inProcess = env.inProcess;
  if (!mod || !inProcess) return null;
  const { createControlPlane, brokerFleet, SqliteControlStorage } = mod as {
    createControlPlane?: (o: Record<string, unknown>) => Promise<ControlPlaneLike>;
    brokerFleet?: (broker: unknown, guard: unknown) => unknown;
    SqliteControlStorage?: { open(o: { file: string }): { close(): Promise<void> | void } };
  };
  if (!createControlPlane || !brokerFleet || !SqliteControlStorage) return null;
  const fastifySpecifier = 'fastify';
  const fastifyMod = (await import(fastifySpecifier)) as { default: (o: unknown) => FastifyLike };
  const storage = SqliteControlStorage.open({ file: `${dataDir}/control.db` });
  const cp = await createControlPlane({
    storage,
    dataDir: `${dataDir}/control`,
    fleet: brokerFleet(inProcess.broker, inProcess.guard),
    metrics: { registry: inProcess.metrics.registry },
  });
  const app = fastifyMod.default({ logger: false, bodyLimit: 16 * 1024 * 1024 });
  await app.register(cp.plugin);
  await app.ready();
  await cp.start();
  const key = cp.initialAdminKey;
  if (!key) throw new Error('control plane: no admin key');
  const call = async (method: string, url: string, payload?: unknown): Promise<unknown> => {
    const res = await app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}` },
      ...(payload !== undefined ? { payload } : {}),
    });
    if (res.statusCode >= 300) {
      throw new Error(`control plane ${method} ${url}: HTTP ${res.statusCode} ${res.body.slice(0, 300)}`);
    }
    return res.json();
  };
  log('control plane: in-process (SQLite), kill switches through its API');

  const records: AlertRecord[] = [];
  let origin = Date.now();
  const engine = cp.alerts?.engine;
  const unsubscribe = engine
    ? engine.subscribe({
        onAlert(e) {
          records.push({
            at: e.at,
            t: Math.round(((e.at - origin) / 1000) * 10) / 10,
            ruleId: e.ruleId,
            name: e.name,
            state: e.state,
            severity: e.severity,
          });
        },
      })
    : null;
  const alerts: AlertFeed | null = engine
    ? {
        description: 'control plane alert engine (built-in rules)',
        setOrigin(t0) {
          origin = t0;
        },
        firing: () => engine.active?.().filter((a) => a.state === 'firing').length ?? 0,
        raise(ruleId, input) {
          engine.raise?.(ruleId, input);
        },
        records: () =>
          records
            .filter((r) => r.at >= origin)
            .map((r) => ({ ...r, t: Math.round(((r.at - origin) / 1000) * 10) / 10 })),
      }
    : null;

  return {
    kind: 'control-plane',
    async revoke(ids, reason) {
      // One kill-switch call per device (ids selectors need the devices in the registry).
      await Promise.all(
        ids.map((deviceId) => call('POST', '/api/v1/killswitch/revoke', { deviceId, reason })),
      );
    },
    kick(ids, reason) {
      let n = 0;
      for (const id of ids) if (inProcess.broker.disconnectClient(id, 0x87, reason)) n++;
      return n;
    },
    alerts,
    ota: {
      async registerDevices(ids, firmware) {
        for (let i = 0; i < ids.length; i += 5_000) {
          const rows = ids.slice(i, i + 5_000).map((id) => ({ id, firmwareVersion: firmware }));
          await call('POST', '/api/v1/devices/import', rows);
        }
      },
      async startCampaign(body) {
        const created = (await call('POST', '/api/v1/campaigns', body)) as {
          campaign?: { id: string };
          id?: string;
        };
        const id = created.campaign?.id ?? created.id;
        if (!id) throw new Error('control plane: campaign created without an id');
        await call('POST', `/api/v1/campaigns/${id}/start`, {});
        return id;
      },
      async campaign(id) {
        const r = (await call('GET', `/api/v1/campaigns/${id}`)) as {
          campaign?: CampaignView;
        } & CampaignView;
        return r.campaign ?? r;
      },
    },
    async close() {
      unsubscribe?.();
      await cp.close();
      await app.close();
      await storage.close();
    },
  };
}
