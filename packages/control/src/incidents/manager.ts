/**
 * IncidentManager: turns alert events into incidents (an AlertSink) and carries every operator
 * change (create, acknowledge, mitigate, resolve, note, status update) with its audit entry in
 * one transaction.
 *
 * Grouping: a firing alert joins the open incident that already holds its series (same rule and
 * labels), else the open incident of its type, else opens a new one. A series already firing on
 * an incident is a duplicate (no new timeline entry). A resolved alert is recorded on the
 * timeline; it never resolves the incident: a human decides that the fleet has recovered.
 */
import { join } from 'node:path';
import type { Clock } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { AlertEvent, AlertSink } from '../alerts/types.js';
import type { AuditRepository } from '../audit/model.js';
import { ApiError } from '../errors.js';
import type { Transactional } from '../storage/transactional.js';
import {
  type Durations,
  durations,
  type QuarterSummary,
  quarterRange,
  summarize,
  transition,
} from './lifecycle.js';
import {
  type AlertSeverity,
  type IncidentAlertRecord,
  type IncidentRecord,
  type IncidentRepository,
  type IncidentState,
  type IncidentType,
  incidentRef,
  incidentTypes,
  type StatusComponent,
  type TimelineRecord,
  type UpdateStatus,
} from './model.js';
import { type RunbookLibrary, type RunbookMeta, runbookPath } from './runbooks.js';
import { buildTimeline, type TimelineItem } from './timeline.js';

/** Who makes a change (an API key, or the alert engine) and why, for the audit log. */
export interface IncidentActor {
  id: string;
  name: string;
  reason: string | null;
}

const ALERT_ENGINE: IncidentActor = { id: 'system', name: 'alert engine', reason: null };

const severityRank: Record<AlertSeverity, number> = { info: 0, warning: 1, critical: 2 };

/** What a customer would see degrade, per incident type and per specific runbook. */
const componentsByType: Record<IncidentType, StatusComponent[]> = {
  'bad-firmware-push': ['ota'],
  'mass-disconnect': ['broker'],
  security: ['auth'],
  'data-quality': ['broker'],
  'capacity-cost': ['broker'],
};
const componentsByRunbook: Record<string, StatusComponent[]> = {
  'auth-failing-fleet-wide': ['auth', 'broker'],
  'socket-fd-exhaustion': ['broker'],
};

export function defaultComponents(type: IncidentType, runbook: string): StatusComponent[] {
  return [...new Set([...componentsByType[type], ...(componentsByRunbook[runbook] ?? [])])];
}

const genericRunbooks: ReadonlySet<string> = new Set(incidentTypes);

/**
 * Whether a joining alert's runbook should replace the incident's. A storm trips the generic
 * rules first (connection bursts: the mass-disconnect runbook) and the telling one a few seconds
 * later (auth failure ratio: auth-failing-fleet-wide); responders need the specific one. So: a
 * specific runbook replaces a generic one, and between two of the same kind the more severe
 * alert's wins. Never specific → generic.
 */
export function betterRunbook(
  incident: Pick<IncidentRecord, 'runbook' | 'severity'>,
  runbook: string,
  severity: AlertSeverity,
): boolean {
  if (runbook === incident.runbook) return false;
  const specific = (slug: string) => (genericRunbooks.has(slug) ? 0 : 1);
  const delta = specific(runbook) - specific(incident.runbook);
  return delta > 0 || (delta === 0 && severityRank[severity] > severityRank[incident.severity]);
}

/** Dedup key of an alert series: `rule{a="1",b="2"}` with labels sorted. */
export function alertKey(ruleId: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${ruleId}{${parts.join(',')}}`;
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

export interface CreateIncidentInput {
  type: IncidentType;
  title: string;
  severity: AlertSeverity;
  commander?: string | null;
  runbook?: string;
  components?: StatusComponent[];
  /** When the problem started, if known; defaults to now. */
  startedAt?: number;
}

export interface IncidentDetail {
  incident: IncidentRecord;
  durations: Durations;
  alerts: IncidentAlertRecord[];
  timeline: TimelineItem[];
  runbook: (RunbookMeta & { path: string }) | { slug: string; title: null; path: string };
}

/** Incidents change with their audit entry, in one transaction. */
export interface IncidentRepositories {
  readonly incidents: IncidentRepository;
  readonly audit: AuditRepository;
}

export interface IncidentManagerOptions {
  storage: Transactional<IncidentRepositories>;
  clock: Clock;
  runbooks: RunbookLibrary;
  logger?: Logger | null;
  /** The broker's break-glass log (`<dataDir>/audit.log`); null when there is none. */
  brokerAuditLog?: string | null;
}

const stateAction: Record<IncidentState, string> = {
  detected: 'incident.create',
  acknowledged: 'incident.acknowledge',
  mitigated: 'incident.mitigate',
  resolved: 'incident.resolve',
};

export class IncidentManager implements AlertSink {
  readonly #storage: Transactional<IncidentRepositories>;
  readonly #clock: Clock;
  readonly #logger: Logger | null;
  readonly runbooks: RunbookLibrary;
  readonly brokerAuditLog: string | null;
  /** Alert events are applied one at a time, in arrival order (grouping reads then writes). */
  #alertQueue: Promise<void> = Promise.resolve();

  constructor(options: IncidentManagerOptions) {
    this.#storage = options.storage;
    this.#clock = options.clock;
    this.#logger = options.logger ?? null;
    this.runbooks = options.runbooks;
    this.brokerAuditLog = options.brokerAuditLog ?? null;
  }

  static brokerAuditLogIn(dataDir: string): string {
    return join(dataDir, 'audit.log');
  }

  /**
   * AlertSink. Never rejects (an engine must not die of a storage hiccup): failures are logged.
   * The returned promise settles when the event has been applied.
   */
  onAlert(event: AlertEvent): Promise<void> {
    const run = this.#alertQueue.then(() =>
      this.#applyAlert(event).catch((err: unknown) =>
        this.#logger?.error({ err, ruleId: event.ruleId, state: event.state }, 'incident: alert not applied'),
      ),
    );
    this.#alertQueue = run;
    return run;
  }

  async #applyAlert(e: AlertEvent): Promise<void> {
    const key = alertKey(e.ruleId, e.labels);
    await this.#storage.transaction(async (tx) => {
      const repo = tx.incidents;
      await repo.lockGrouping();
      const held = await repo.findAlert(key);
      if (e.state === 'resolved') {
        if (held === null || !held.firing) return; // nothing open holds this series
        await repo.upsertAlert({
          ...held,
          firing: false,
          lastEventAt: e.at,
          value: e.value,
          summary: e.summary,
        });
        await repo.appendTimeline({
          incidentId: held.incidentId,
          at: e.at,
          kind: 'alert',
          actor: ALERT_ENGINE.name,
          text: `${e.name} resolved${labelText(e.labels)}: ${e.summary}`,
          details: { ruleId: e.ruleId, labels: e.labels, state: 'resolved', value: e.value },
        });
        await this.#audit(tx, ALERT_ENGINE, 'incident.alert', held.incidentId, {
          ruleId: e.ruleId,
          state: 'resolved',
        });
        return;
      }
      if (held?.firing) {
        // Duplicate: the series is already firing on an open incident. Keep its latest value.
        await repo.upsertAlert({
          ...held,
          severity: e.severity,
          lastEventAt: e.at,
          value: e.value,
          summary: e.summary,
        });
        return;
      }
      let incident = held ? await repo.get(held.incidentId) : await repo.findOpen(e.incidentType);
      const runbook = this.runbooks.get(e.runbook) ? e.runbook : e.incidentType;
      if (incident === null) {
        incident = await repo.insert({
          type: e.incidentType,
          severity: e.severity,
          title: `${e.name}${labelText(e.labels)}`,
          commander: null,
          runbook,
          components: defaultComponents(e.incidentType, runbook),
          source: 'alert',
          startedAt: Math.min(e.startedAt, e.at),
          detectedAt: e.at,
          createdBy: ALERT_ENGINE.name,
        });
        await repo.appendTimeline({
          incidentId: incident.id,
          at: e.at,
          kind: 'state',
          actor: ALERT_ENGINE.name,
          text: `Detected by alert ${e.name}; runbook ${runbook}`,
          details: { state: 'detected', ruleId: e.ruleId, runbook },
        });
        await this.#audit(tx, ALERT_ENGINE, 'incident.create', incident.id, {
          type: incident.type,
          severity: incident.severity,
          ruleId: e.ruleId,
        });
      } else {
        // Join: the incident is as severe as its worst alert, and started at its earliest sample.
        const components = [
          ...new Set([...incident.components, ...defaultComponents(e.incidentType, runbook)]),
        ];
        const adopt = betterRunbook(incident, runbook, e.severity);
        const patch = {
          severity:
            severityRank[e.severity] > severityRank[incident.severity] ? e.severity : incident.severity,
          startedAt: Math.min(incident.startedAt, e.startedAt),
          components,
          ...(adopt ? { runbook } : {}),
        };
        if (!(await repo.update(incident.id, patch, e.at, incident.state))) {
          const now = (await repo.get(incident.id))!;
          await repo.update(incident.id, patch, e.at, now.state);
        }
        if (adopt) {
          await repo.appendTimeline({
            incidentId: incident.id,
            at: e.at,
            kind: 'state',
            actor: ALERT_ENGINE.name,
            text: `Runbook ${incident.runbook} → ${runbook} (alert ${e.name})`,
            details: { runbook, previous: incident.runbook, ruleId: e.ruleId },
          });
        }
        await this.#audit(tx, ALERT_ENGINE, 'incident.alert', incident.id, {
          ruleId: e.ruleId,
          state: 'firing',
        });
      }
      await repo.upsertAlert({
        incidentId: incident.id,
        alertKey: key,
        ruleId: e.ruleId,
        name: e.name,
        severity: e.severity,
        labels: e.labels,
        firing: true,
        startedAt: e.startedAt,
        firstFiredAt: held?.firstFiredAt ?? e.at,
        lastEventAt: e.at,
        value: e.value,
        threshold: e.threshold,
        summary: e.summary,
      });
      await repo.appendTimeline({
        incidentId: incident.id,
        at: e.at,
        kind: 'alert',
        actor: ALERT_ENGINE.name,
        text: `${e.name} firing${labelText(e.labels)}: ${e.summary}`,
        details: {
          ruleId: e.ruleId,
          labels: e.labels,
          state: 'firing',
          severity: e.severity,
          value: e.value,
          threshold: e.threshold,
          startedAt: e.startedAt,
          runbook: e.runbook,
        },
      });
    });
  }

  #audit(
    tx: IncidentRepositories,
    by: IncidentActor,
    action: string,
    incidentId: number,
    details: Record<string, unknown>,
  ): Promise<number> {
    return tx.audit.append({
      at: this.#clock.now(),
      actorId: by.id,
      actorName: by.name,
      action,
      targetType: 'incident',
      targetId: String(incidentId),
      reason: by.reason,
      details,
    });
  }

  async #mustGet(repos: Pick<IncidentRepositories, 'incidents'>, id: number): Promise<IncidentRecord> {
    const incident = await repos.incidents.get(id);
    if (incident === null) throw new ApiError('BW_ERR_API_NOT_FOUND', `incident ${incidentRef(id)}`);
    return incident;
  }

  async create(input: CreateIncidentInput, by: IncidentActor): Promise<IncidentRecord> {
    const now = this.#clock.now();
    const runbook = input.runbook ?? input.type;
    if (this.runbooks.get(runbook) === null) {
      throw new ApiError(
        'BW_ERR_API_VALIDATION',
        `runbook "${runbook}" does not exist (GET /api/v1/runbooks)`,
        {
          field: 'runbook',
        },
      );
    }
    if (input.startedAt !== undefined && input.startedAt > now) {
      throw new ApiError('BW_ERR_API_VALIDATION', 'startedAt is in the future', { field: 'startedAt' });
    }
    return this.#storage.transaction(async (tx) => {
      const incident = await tx.incidents.insert({
        type: input.type,
        severity: input.severity,
        title: input.title,
        commander: input.commander ?? null,
        runbook,
        components: input.components ?? defaultComponents(input.type, runbook),
        source: 'manual',
        startedAt: input.startedAt ?? now,
        detectedAt: now,
        createdBy: by.name,
      });
      await tx.incidents.appendTimeline({
        incidentId: incident.id,
        at: now,
        kind: 'state',
        actor: by.name,
        text: `Declared by ${by.name}${input.commander ? `; commander ${input.commander}` : ''}`,
        details: { state: 'detected', commander: input.commander ?? null },
      });
      await this.#audit(tx, by, 'incident.create', incident.id, {
        type: incident.type,
        severity: incident.severity,
        title: incident.title,
      });
      return incident;
    });
  }

  /** acknowledge / mitigate / resolve. `commander` on acknowledge defaults to the actor. */
  async transition(
    id: number,
    to: Exclude<IncidentState, 'detected'>,
    by: IncidentActor,
    input: { commander?: string; note?: string } = {},
  ): Promise<IncidentRecord> {
    return this.#storage.transaction(async (tx) => {
      const incident = await this.#mustGet(tx, id);
      const now = this.#clock.now();
      const { patch, implied } = transition(incident, to, now);
      // A named commander always takes over; acknowledging without one makes the caller
      // commander unless someone already is.
      if (input.commander !== undefined) patch.commander = input.commander;
      else if (to === 'acknowledged' && incident.commander === null) patch.commander = by.name;
      if (!(await tx.incidents.update(id, patch, now, incident.state))) {
        // Someone else moved it between our read and write: report what it is now.
        const current = await this.#mustGet(tx, id);
        transition(current, to, now); // throws the 409 if it is now illegal
        throw new ApiError('BW_ERR_INCIDENT_TRANSITION', `${incidentRef(id)} changed concurrently; retry`);
      }
      const verb = { acknowledged: 'Acknowledged', mitigated: 'Mitigated', resolved: 'Resolved' }[to];
      const parts = [`${verb} by ${by.name}`];
      if (patch.commander) parts.push(`commander ${patch.commander}`);
      if (implied.length) parts.push(`(implies ${implied.join(', ')})`);
      await tx.incidents.appendTimeline({
        incidentId: id,
        at: now,
        kind: 'state',
        actor: by.name,
        text: `${parts.join('; ')}${input.note ? `: ${input.note}` : ''}`,
        details: {
          state: to,
          from: incident.state,
          implied,
          commander: patch.commander ?? incident.commander,
        },
      });
      await this.#audit(tx, by, stateAction[to], id, { from: incident.state, to, implied });
      return (await tx.incidents.get(id))!;
    });
  }

  async note(id: number, text: string, by: IncidentActor): Promise<TimelineRecord> {
    return this.#append(id, by, 'note', text, null, 'incident.note');
  }

  /** A customer-facing status update (shown on /status). */
  async postUpdate(
    id: number,
    update: { status: UpdateStatus; message: string; title?: string },
    by: IncidentActor,
  ): Promise<TimelineRecord> {
    const details = { status: update.status, ...(update.title !== undefined ? { title: update.title } : {}) };
    return this.#append(id, by, 'update', update.message, details, 'incident.update');
  }

  async #append(
    id: number,
    by: IncidentActor,
    kind: 'note' | 'update',
    text: string,
    details: Record<string, unknown> | null,
    action: string,
  ): Promise<TimelineRecord> {
    return this.#storage.transaction(async (tx) => {
      await this.#mustGet(tx, id);
      const at = this.#clock.now();
      const seq = await tx.incidents.appendTimeline({
        incidentId: id,
        at,
        kind,
        actor: by.name,
        text,
        details,
      });
      await this.#audit(tx, by, action, id, { seq, ...(details ?? {}) });
      return { seq, incidentId: id, at, kind, actor: by.name, text, details };
    });
  }

  async detail(id: number): Promise<IncidentDetail> {
    const incident = await this.#mustGet(this.#storage, id);
    const meta = this.runbooks.list().find((r) => r.slug === incident.runbook);
    return {
      incident,
      durations: durations(incident),
      alerts: await this.#storage.incidents.alerts(id),
      timeline: await buildTimeline(this.#storage.incidents, incident, {
        now: this.#clock.now(),
        brokerAuditLog: this.brokerAuditLog,
      }),
      runbook: meta
        ? { ...meta, path: runbookPath(meta.slug) }
        : { slug: incident.runbook, title: null, path: runbookPath(incident.runbook) },
    };
  }

  async summary(quarter: string): Promise<QuarterSummary> {
    const { since, until } = quarterRange(quarter);
    return summarize(quarter, await this.#storage.incidents.startedBetween(since, until));
  }
}
