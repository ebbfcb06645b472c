/**
 * Telemetry validation → data quality (issue 16): once a second the integration reports which
 * devices sent invalid telemetry; here each device is mapped to its cohort (registry lookup, one
 * query per report, cached), failures are counted per cohort, and the `telemetry-validation-failures`
 * event rule is raised per cohort — which opens (or joins) a `data-quality` incident with its
 * runbook. The rule resolves by itself `clearSec` after the last report.
 */
import type { Integration, ValidationReport } from '@breakwater/integration';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { AlertEngine } from '../alerts/engine.js';
import type { DeviceRepository } from '../devices/model.js';

/** Devices whose cohort is remembered (entries expire after COHORT_TTL_MS). */
const COHORT_CACHE_MAX = 50_000;
const COHORT_TTL_MS = 5 * 60_000;
/** The cohort label of a device that is not registered or has no cohort. */
export const NO_COHORT = 'none';

/** A ControlService (start/close), structurally: importing its type from http/app.ts would be a cycle. */
export class ValidationAlerts {
  readonly #integration: Pick<Integration, 'onValidationReport'>;
  readonly #devices: Pick<DeviceRepository, 'list'>;
  readonly #alerts: Pick<AlertEngine, 'raise'>;
  readonly #log: Logger | null;
  readonly #counter: Counter<'cohort'> | null;
  readonly #cohorts = new Map<string, { cohort: string; at: number }>();
  readonly #totals = new Map<string, number>();
  #stop: (() => void) | null = null;
  #chain: Promise<void> = Promise.resolve();

  constructor(o: {
    integration: Pick<Integration, 'onValidationReport'>;
    devices: Pick<DeviceRepository, 'list'>;
    alerts: Pick<AlertEngine, 'raise'>;
    registry: Registry | null;
    logger: Logger | null;
  }) {
    this.#integration = o.integration;
    this.#devices = o.devices;
    this.#alerts = o.alerts;
    this.#log = o.logger;
    this.#counter =
      o.registry === null
        ? null
        : new Counter({
            name: 'breakwater_telemetry_validation_failures_total',
            help: 'Telemetry messages that failed validation, by the cohort of the publishing device (none: unregistered or no cohort).',
            labelNames: ['cohort'],
            registers: [o.registry],
          });
  }

  start(): void {
    this.#stop = this.#integration.onValidationReport((r) => {
      // In order, one report at a time: cohort lookups are async.
      this.#chain = this.#chain
        .then(() => this.#onReport(r))
        .catch((err: unknown) => this.#log?.error({ err }, 'validation report failed'));
    });
  }

  async close(): Promise<void> {
    this.#stop?.();
    await this.#chain;
  }

  /** Failures per cohort since start, most first. */
  cohorts(): Array<{ cohort: string; failures: number }> {
    return [...this.#totals]
      .map(([cohort, failures]) => ({ cohort, failures }))
      .sort((a, b) => b.failures - a.failures);
  }

  /** The cohort of each device (cached; unknown devices get NO_COHORT). */
  async cohortsOf(ids: readonly string[], now: number): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const missing: string[] = [];
    for (const id of ids) {
      const c = this.#cohorts.get(id);
      if (c !== undefined && now - c.at < COHORT_TTL_MS) out.set(id, c.cohort);
      else missing.push(id);
    }
    for (let i = 0; i < missing.length; i += 1000) {
      const chunk = missing.slice(i, i + 1000);
      const page = await this.#devices.list({ ids: chunk }, chunk.length, null);
      const found = new Map(page.items.map((d) => [d.id, d.cohort ?? NO_COHORT]));
      for (const id of chunk) {
        const cohort = found.get(id) ?? NO_COHORT;
        out.set(id, cohort);
        if (this.#cohorts.size >= COHORT_CACHE_MAX)
          this.#cohorts.delete(this.#cohorts.keys().next().value as string);
        this.#cohorts.set(id, { cohort, at: now });
      }
    }
    return out;
  }

  async #onReport(r: ValidationReport): Promise<void> {
    const cohorts = await this.cohortsOf(
      r.devices.map((d) => d.device),
      r.at,
    );
    const byCohort = new Map<string, { failures: number; devices: string[]; example: string }>();
    for (const d of r.devices) {
      const cohort = cohorts.get(d.device) ?? NO_COHORT;
      let c = byCohort.get(cohort);
      if (c === undefined) {
        c = { failures: 0, devices: [], example: `${d.device}: ${d.lastError}` };
        byCohort.set(cohort, c);
      }
      c.failures += d.failures;
      c.devices.push(d.device);
    }
    for (const [cohort, c] of byCohort) {
      this.#totals.set(cohort, (this.#totals.get(cohort) ?? 0) + c.failures);
      this.#counter?.labels(cohort).inc(c.failures);
      this.#alerts.raise('telemetry-validation-failures', {
        labels: { cohort },
        value: this.#totals.get(cohort)!,
        summary: `${this.#totals.get(cohort)} telemetry messages from cohort ${cohort} failed validation (${c.devices.length} devices in the last second; e.g. ${c.example})`,
      });
    }
  }
}
