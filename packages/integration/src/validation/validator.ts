/**
 * Telemetry validation (issue 16): a JSON Schema per topic filter, compiled once with ajv. A
 * failure is counted per device (bounded table, least recently failing evicted), sampled into the
 * dead-letter queue (at most one entry per device per `sampleIntervalSec`), and reported once a
 * second to listeners — the control plane maps devices to cohorts and raises the data-quality alert.
 */
import { readFileSync } from 'node:fs';
import { BreakwaterError, MessageTap, type ValidationConfig } from '@breakwater/broker';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

export interface CompiledValidation {
  filter: string;
  tap: MessageTap;
  validate: ValidateFunction;
  onInvalid: 'drop' | 'deliver';
  sampleIntervalMs: number;
}

/** One device's failures since the integration started. */
export interface DeviceFailures {
  device: string;
  count: number;
  lastAt: number;
  lastTopic: string;
  lastError: string;
  filter: string;
}

/** What happened in the last second, for the alert engine. */
export interface ValidationReport {
  at: number;
  /** Failures in the interval, per device. */
  devices: Array<{ device: string; failures: number; filter: string; lastError: string }>;
  total: number;
}

export type ValidationListener = (report: ValidationReport) => void;

const MAX_DEVICES_TRACKED = 10_000;

export function compileValidations(list: readonly ValidationConfig[]): CompiledValidation[] {
  const ajv = new Ajv({ allErrors: false, strict: false });
  return list.map((v, i) => {
    let schema: object;
    if (v.schema !== undefined) schema = v.schema;
    else {
      try {
        schema = JSON.parse(readFileSync(v.schemaFile!, 'utf8')) as object;
      } catch (err) {
        throw new BreakwaterError(
          'BW_ERR_CONFIG_INVALID',
          `integration.validation[${i}].schemaFile ${v.schemaFile}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    let validate: ValidateFunction;
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      throw new BreakwaterError(
        'BW_ERR_CONFIG_INVALID',
        `integration.validation[${i}].schema is not a valid JSON Schema: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return {
      filter: v.filter,
      tap: new MessageTap(v.filter, noop),
      validate,
      onInvalid: v.onInvalid,
      sampleIntervalMs: v.sampleIntervalSec * 1000,
    };
  });
}

function noop(): void {}

/** `/temp must be number` from ajv's first error; `payload is not JSON` when it did not parse. */
export function describeInvalid(errors: readonly ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'fails the schema';
  return `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}`;
}

/** Failure bookkeeping: per-device totals, the per-second report, the DLQ sampling decision. */
export class ValidationTracker {
  readonly #devices = new Map<string, DeviceFailures>();
  readonly #lastSampled = new Map<string, number>();
  #interval = new Map<string, { failures: number; filter: string; lastError: string }>();
  #intervalTotal = 0;
  #total = 0;

  get total(): number {
    return this.#total;
  }

  /** Records one failure; true when this one should be sampled into the DLQ. */
  record(
    device: string,
    topic: string,
    filter: string,
    error: string,
    at: number,
    sampleIntervalMs: number,
  ): boolean {
    this.#total++;
    this.#intervalTotal++;
    let d = this.#devices.get(device);
    if (d === undefined) {
      if (this.#devices.size >= MAX_DEVICES_TRACKED) {
        // Evict the least recently failing device (Map order = insertion; re-inserted on failure).
        const oldest = this.#devices.keys().next().value as string;
        this.#devices.delete(oldest);
        this.#lastSampled.delete(oldest);
      }
      d = { device, count: 0, lastAt: at, lastTopic: topic, lastError: error, filter };
    } else this.#devices.delete(device);
    d.count++;
    d.lastAt = at;
    d.lastTopic = topic;
    d.lastError = error;
    d.filter = filter;
    this.#devices.set(device, d);
    const i = this.#interval.get(device);
    if (i === undefined) this.#interval.set(device, { failures: 1, filter, lastError: error });
    else {
      i.failures++;
      i.lastError = error;
    }
    const last = this.#lastSampled.get(device);
    if (last !== undefined && sampleIntervalMs > 0 && at - last < sampleIntervalMs) return false;
    this.#lastSampled.set(device, at);
    return true;
  }

  /** The failures since the last call (null when there were none). */
  takeReport(at: number): ValidationReport | null {
    if (this.#intervalTotal === 0) return null;
    const report: ValidationReport = {
      at,
      total: this.#intervalTotal,
      devices: [...this.#interval].map(([device, v]) => ({ device, ...v })),
    };
    this.#interval = new Map();
    this.#intervalTotal = 0;
    return report;
  }

  /** Devices by failure count, most first. */
  top(limit: number): DeviceFailures[] {
    return [...this.#devices.values()]
      .sort((a, b) => b.count - a.count)
      .slice(0, limit)
      .map((d) => ({ ...d }));
  }

  get devicesTracked(): number {
    return this.#devices.size;
  }
}
