/**
 * Kill switch 2, config push: store the desired config of every targeted device (one
 * transaction, with its audit entry), then publish it retained QoS 1 on `$fleet/{id}/config`.
 *
 * Retained is the whole delivery mechanism (issue 5): a device that is online gets it at once
 * (the SDK subscribes to its config topic), a device that is offline gets it from the broker's
 * retained store on its next (re)connect, with no "get after subscribe" round trip; the broker
 * persists retained messages, so nothing is re-published when the control plane restarts.
 *
 * Publishing is the slow part: the broker's publish() resolves after a storage flush (fsync).
 * Publishes are started together, a chunk at a time, so one flush covers a whole chunk: 10,000
 * devices cost a few flushes, not 10,000 sequential ones.
 */
import type { Clock } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { AuditRepository } from '../audit/model.js';
import type { DeviceRepository } from '../devices/model.js';
import { ApiError } from '../errors.js';
import type { FleetBroker } from '../fleet-broker.js';
import type { Selector } from '../selector.js';
import type { Transactional } from '../storage/transactional.js';
import {
  assertConfigSize,
  assertNoReservedKeys,
  configHash,
  desiredPayload,
  type JsonObject,
  mergePatch,
} from './document.js';
import type { ConfigPushRepository, DesiredConfigWrite } from './model.js';

/** Publishes started together (one broker flush covers them). */
const PUBLISH_CHUNK = 1000;

export type PushTarget = { deviceId: string } | { selector: Selector };

export interface PushInput {
  target: PushTarget;
  /** The new config (merge false) or a JSON Merge Patch onto each device's current one. */
  config: JsonObject;
  merge: boolean;
  /** API key id of the caller (kept on the push row; the audit entry has the full who/why). */
  actorId: string;
}

export interface PushAuditDetails {
  version: number | null;
  merge: boolean;
  deviceId?: string;
  selector?: Selector;
  matchedDevices: number;
  config: JsonObject;
}

export interface PushResult {
  /** The version every reached device now has as desired; null when nothing matched. */
  version: number | null;
  matchedDevices: number;
  /** Retained publishes the broker accepted (online and offline devices alike). */
  published: number;
  /** Targeted devices connected at publish time (they receive it live). */
  online: number;
  warnings: string[];
}

/** A push resolves devices, stores desired configs and writes its audit entry, in one transaction. */
export interface ConfigPushRepositories {
  readonly devices: DeviceRepository;
  readonly configPushes: ConfigPushRepository;
  readonly audit: AuditRepository;
}

export type ConfigPushStorage = Transactional<ConfigPushRepositories>;

export interface ConfigPusherOptions {
  storage: ConfigPushStorage;
  fleet: FleetBroker | null;
  clock: Clock;
  logger?: Logger | null;
}

export function configTopic(deviceId: string): string {
  return `$fleet/${deviceId}/config`;
}

export class ConfigPusher {
  readonly #storage: ConfigPushStorage;
  readonly #fleet: FleetBroker | null;
  readonly #clock: Clock;
  readonly #logger: Logger | null;
  // One push at a time in this process, from version allocation to the last publish, so the
  // broker's retained config is always the one with the highest version.
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: ConfigPusherOptions) {
    this.#storage = options.storage;
    this.#fleet = options.fleet;
    this.#clock = options.clock;
    this.#logger = options.logger ?? null;
  }

  /**
   * `audit` writes the audit entry inside the push transaction (nothing is stored without it).
   * Throws ApiError 404 (unknown device), 400/413 (`config`).
   */
  push(
    input: PushInput,
    audit: (tx: ConfigPushRepositories, details: PushAuditDetails) => Promise<unknown>,
  ): Promise<PushResult> {
    assertNoReservedKeys(input.config, 'config');
    // The largest version is 15 digits; check the plain push's size before touching storage.
    if (!input.merge) assertConfigSize(desiredPayload(Number.MAX_SAFE_INTEGER, input.config), 'config');
    const run = this.#tail.then(() => this.#push(input, audit));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #push(
    input: PushInput,
    audit: (tx: ConfigPushRepositories, details: PushAuditDetails) => Promise<unknown>,
  ): Promise<PushResult> {
    const at = this.#clock.now();
    const warnings: string[] = [];
    const { version, docs } = await this.#storage.transaction(async (tx) => {
      let ids: string[];
      if ('deviceId' in input.target) {
        ids = await tx.devices.existing([input.target.deviceId]);
        if (ids.length === 0) throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${input.target.deviceId}`);
      } else {
        ids = await tx.devices.resolve(input.target.selector);
      }
      const where =
        'deviceId' in input.target
          ? { deviceId: input.target.deviceId }
          : { selector: input.target.selector };
      if (ids.length === 0) {
        await audit(tx, {
          version: null,
          merge: input.merge,
          ...where,
          matchedDevices: 0,
          config: input.config,
        });
        return { version: null, docs: [] };
      }
      await tx.configPushes.lockPushes();
      const version = await tx.configPushes.createPush({
        at,
        actorId: input.actorId,
        selector: 'selector' in input.target ? input.target.selector : null,
        merge: input.merge,
        config: input.config,
        deviceCount: ids.length,
      });
      const writes = await this.#desiredWrites(tx, ids, input, version, at);
      await tx.configPushes.setDesired(writes);
      await audit(tx, {
        version,
        merge: input.merge,
        ...where,
        matchedDevices: ids.length,
        config: input.config,
      });
      return { version, docs: writes.map((w) => ({ deviceId: w.deviceId, payload: w.payload })) };
    });
    if (version === null) {
      warnings.push('the selector matched no registered device: nothing was pushed');
      return { version, matchedDevices: 0, published: 0, online: 0, warnings };
    }
    const fleet = this.#fleet;
    if (fleet === null) {
      warnings.push(
        'no broker attached: the desired config is stored but not published; devices get it once a ' +
          'broker-attached control plane pushes again',
      );
      return { version, matchedDevices: docs.length, published: 0, online: 0, warnings };
    }
    const connected = new Set(fleet.connectedClientIds());
    const online = docs.reduce((n, d) => (connected.has(d.deviceId) ? n + 1 : n), 0);
    const { published, failures } = await publishAll(fleet, docs);
    if (failures.length > 0) {
      const first = failures[0]!;
      this.#logger?.warn({ err: first.error, failed: failures.length, version }, 'config publish failed');
      warnings.push(
        `${failures.length} of ${docs.length} publishes failed (first: ${first.deviceId}: ` +
          `${(first.error as Error)?.message ?? String(first.error)}); the desired config is stored, push again`,
      );
    }
    return { version, matchedDevices: docs.length, published, online, warnings };
  }

  async #desiredWrites(
    tx: ConfigPushRepositories,
    ids: string[],
    input: PushInput,
    version: number,
    at: number,
  ): Promise<Array<DesiredConfigWrite & { payload: string }>> {
    if (!input.merge) {
      // One document for every device: serialised and hashed once.
      const payload = desiredPayload(version, input.config);
      const hash = configHash(input.config);
      return ids.map((deviceId) => ({ deviceId, version, config: input.config, hash, at, payload }));
    }
    const current = await tx.configPushes.desired(ids);
    return ids.map((deviceId) => {
      const config = mergePatch(current.get(deviceId) ?? {}, input.config);
      const payload = desiredPayload(version, config);
      assertConfigSize(payload, 'config', `the merged config of device ${deviceId}`);
      return { deviceId, version, config, hash: configHash(config), at, payload };
    });
  }
}

async function publishAll(
  fleet: FleetBroker,
  docs: ReadonlyArray<{ deviceId: string; payload: string }>,
): Promise<{ published: number; failures: Array<{ deviceId: string; error: unknown }> }> {
  let published = 0;
  const failures: Array<{ deviceId: string; error: unknown }> = [];
  for (let i = 0; i < docs.length; i += PUBLISH_CHUNK) {
    const chunk = docs.slice(i, i + PUBLISH_CHUNK);
    const results = await Promise.allSettled(
      chunk.map((d) =>
        fleet.publish({ topic: configTopic(d.deviceId), payload: d.payload, qos: 1, retain: true }),
      ),
    );
    results.forEach((r, j) => {
      if (r.status === 'fulfilled') published++;
      else failures.push({ deviceId: chunk[j]!.deviceId, error: r.reason });
    });
  }
  return { published, failures };
}
