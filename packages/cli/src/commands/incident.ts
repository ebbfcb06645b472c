/**
 * `breakwater incident list|show|create|ack|mitigate|resolve|note|postmortem|message|summary`
 * and `breakwater status update` (issue 7): the incident lifecycle from a terminal, over the
 * control-plane API (`/api/v1/incidents…`). Runbooks use these exact commands.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BreakwaterError } from '@breakwater/broker';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  type OutputFlags,
  pageOptions,
  renderFields,
  renderTable,
  runApi,
  writeJson,
  writePage,
} from './common.js';

const INCIDENT_TYPES = ['bad-firmware-push', 'mass-disconnect', 'security', 'data-quality', 'capacity-cost'];
const SEVERITIES = ['critical', 'warning', 'info'];
const STATES = ['open', 'detected', 'acknowledged', 'mitigated', 'resolved'];
const UPDATE_STATUSES = ['investigating', 'identified', 'monitoring', 'resolved'];
const AUDIENCES = ['internal', 'customer', 'regulator'];

interface Durations {
  ttdMs: number | null;
  ttaMs: number | null;
  ttmMs: number | null;
  ttrMs: number | null;
}

interface IncidentView {
  id: number;
  ref: string;
  type: string;
  severity: string;
  title: string;
  state: string;
  commander: string | null;
  runbook: { slug: string; title: string | null; path: string };
  components: string[];
  source: string;
  startedAt: string;
  detectedAt: string;
  acknowledgedAt: string | null;
  mitigatedAt: string | null;
  resolvedAt: string | null;
  createdBy: string;
  durations: Durations;
}

interface IncidentDetail {
  incident: IncidentView;
  alerts: Array<{ ruleId: string; name: string; firing: boolean; value: number; threshold: number }>;
  timeline: Array<{ at: string; kind: string; source: string; actor: string; text: string }>;
}

interface DurationStats {
  count: number;
  medianMs: number | null;
  p90Ms: number | null;
}

/** `12` or `INC-12` → the path segment the API takes. */
function incidentId(value: string): string {
  if (!/^(INC-)?[1-9][0-9]{0,15}$/i.test(value)) {
    throw new InvalidArgumentError('must be an incident id such as 12 or INC-12.');
  }
  return value.toUpperCase();
}

function oneOf(values: readonly string[]) {
  return (value: string): string => {
    if (!values.includes(value)) throw new InvalidArgumentError(`must be one of ${values.join(', ')}.`);
    return value;
  };
}

function quarter(value: string): string {
  if (!/^\d{4}Q[1-4]$/.test(value)) throw new InvalidArgumentError('must look like 2026Q4.');
  return value;
}

function duration(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)}h${m % 60 ? `${m % 60}m` : ''}`;
}

const reasonOption = () => new Option('--reason <text>', 'why (written to the audit log)');

export function registerIncidentCommands(program: Command, ctx: ApiCommandContext): void {
  const out = ctx.io.stdout;
  const incident = program
    .command('incident')
    .description('incidents: detection to postmortem (TTD, TTA, TTM, TTR), with runbooks');

  const printIncident = (i: IncidentView) =>
    out.write(
      renderFields([
        ['incident', `${i.ref} ${i.title}`],
        ['state', i.state],
        ['type', i.type],
        ['severity', i.severity],
        ['commander', i.commander],
        ['runbook', `${i.runbook.slug}${i.runbook.title ? ` (${i.runbook.title})` : ''}: ${i.runbook.path}`],
        ['components', i.components],
        ['started', i.startedAt],
        ['detected', i.detectedAt],
        ['acknowledged', i.acknowledgedAt],
        ['mitigated', i.mitigatedAt],
        ['resolved', i.resolvedAt],
        [
          'TTD/TTA/TTM/TTR',
          [i.durations.ttdMs, i.durations.ttaMs, i.durations.ttmMs, i.durations.ttrMs]
            .map(duration)
            .join(' / '),
        ],
      ]),
    );

  pageOptions(
    apiCommand(
      incident
        .command('list')
        .description('incidents, newest first')
        .option(
          '--state <state>',
          `only this state (${STATES.join(', ')}; open = not resolved)`,
          oneOf(STATES),
        )
        .option('--type <type>', `only this type (${INCIDENT_TYPES.join(', ')})`, oneOf(INCIDENT_TYPES)),
    ),
  ).action((flags: OutputFlags & { state?: string; type?: string; limit?: number; cursor?: string }) =>
    runApi(ctx, flags, async (api) => {
      const page = await api.get<{ items: IncidentView[]; nextCursor: string | null }>('/api/v1/incidents', {
        query: { state: flags.state, type: flags.type, limit: flags.limit, cursor: flags.cursor },
      });
      if (flags.json) return writeJson(ctx, page);
      writePage(
        ctx,
        page,
        [
          ['id', (i) => i.ref],
          ['state', (i) => i.state],
          ['severity', (i) => i.severity],
          ['type', (i) => i.type],
          ['started', (i) => i.startedAt],
          ['ttd', (i) => duration(i.durations.ttdMs)],
          ['ttr', (i) => duration(i.durations.ttrMs)],
          ['title', (i) => i.title],
        ],
        'no incidents',
      );
    }),
  );

  apiCommand(
    incident.command('show <id>').description('one incident: state, TTx, runbook, alerts and the timeline'),
  ).action((id: string, flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const d = await api.get<IncidentDetail>(`/api/v1/incidents/${incidentId(id)}`);
      if (flags.json) return writeJson(ctx, d);
      printIncident(d.incident);
      if (d.alerts.length) {
        out.write('\nalerts:\n');
        out.write(
          renderTable(d.alerts, [
            ['rule', (a) => a.ruleId],
            ['firing', (a) => (a.firing ? 'yes' : 'no')],
            ['value', (a) => String(a.value)],
            ['threshold', (a) => String(a.threshold)],
          ]),
        );
      }
      out.write('\ntimeline:\n');
      out.write(
        renderTable(d.timeline, [
          ['at', (e) => e.at],
          ['kind', (e) => e.kind],
          ['who', (e) => e.actor],
          ['what', (e) => e.text],
        ]),
      );
    }),
  );

  apiCommand(
    incident
      .command('create')
      .description('declare an incident by hand (alerts open theirs automatically)')
      .requiredOption('--type <type>', INCIDENT_TYPES.join(', '), oneOf(INCIDENT_TYPES))
      .requiredOption('--title <text>', 'what is wrong, in a line')
      .requiredOption('--severity <severity>', SEVERITIES.join(', '), oneOf(SEVERITIES))
      .option('--commander <name>', 'incident commander')
      .option('--runbook <slug>', 'runbook (default: the type)')
      .option('--started-at <time>', 'ISO 8601: when it started, if known (default: now)')
      .addOption(reasonOption()),
  ).action(
    (
      flags: OutputFlags & {
        type: string;
        title: string;
        severity: string;
        commander?: string;
        runbook?: string;
        startedAt?: string;
        reason?: string;
      },
    ) =>
      runApi(ctx, flags, async (api) => {
        const i = await api.post<IncidentView>('/api/v1/incidents', {
          body: {
            type: flags.type,
            title: flags.title,
            severity: flags.severity,
            ...(flags.commander !== undefined ? { commander: flags.commander } : {}),
            ...(flags.runbook !== undefined ? { runbook: flags.runbook } : {}),
            ...(flags.startedAt !== undefined ? { startedAt: flags.startedAt } : {}),
            ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
          },
        });
        if (flags.json) return writeJson(ctx, i);
        out.write(
          `declared ${i.ref} (${i.severity} ${i.type}); runbook ${i.runbook.slug} (${i.runbook.path})\n`,
        );
      }),
  );

  const transitions = [
    ['ack', 'acknowledged', 'acknowledge: you own it now (commander defaults to your API key name)'],
    ['mitigate', 'mitigated', 'mitigated: the impact has stopped'],
    ['resolve', 'resolved', 'resolved: the incident is over (final)'],
  ] as const;
  for (const [verb, state, description] of transitions) {
    const cmd = incident.command(`${verb} <id>`).description(description);
    if (verb === 'ack') cmd.option('--commander <name>', 'incident commander');
    apiCommand(cmd.option('--note <text>', 'a note on the timeline entry').addOption(reasonOption())).action(
      (id: string, flags: OutputFlags & { commander?: string; note?: string; reason?: string }) =>
        runApi(ctx, flags, async (api) => {
          const i = await api.post<IncidentView>(`/api/v1/incidents/${incidentId(id)}/${verb}`, {
            body: {
              ...(flags.commander !== undefined ? { commander: flags.commander } : {}),
              ...(flags.note !== undefined ? { note: flags.note } : {}),
              ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
            },
          });
          if (flags.json) return writeJson(ctx, i);
          const d = i.durations;
          const metric =
            state === 'acknowledged'
              ? `TTA ${duration(d.ttaMs)}`
              : state === 'mitigated'
                ? `TTM ${duration(d.ttmMs)}`
                : `TTR ${duration(d.ttrMs)}; next: breakwater incident postmortem ${i.ref}`;
          out.write(`${i.ref} ${i.state}${i.commander ? ` (commander ${i.commander})` : ''}: ${metric}\n`);
        }),
    );
  }

  apiCommand(
    incident
      .command('runbook <id>')
      .description("print the incident's runbook (markdown): confirm, contain, …"),
  ).action((id: string, flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const d = await api.get<IncidentDetail>(`/api/v1/incidents/${incidentId(id)}`);
      const runbook = await api.get<{ slug: string; title: string; markdown: string }>(
        d.incident.runbook.path,
      );
      if (flags.json) return writeJson(ctx, runbook);
      out.write(runbook.markdown.endsWith('\n') ? runbook.markdown : `${runbook.markdown}\n`);
    }),
  );

  apiCommand(
    incident
      .command('note <id> <text...>')
      .description('add an internal note to the timeline')
      .addOption(reasonOption()),
  ).action((id: string, words: string[], flags: OutputFlags & { reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const entry = await api.post<{ seq: number; at: string }>(`/api/v1/incidents/${incidentId(id)}/notes`, {
        body: { text: words.join(' '), ...(flags.reason !== undefined ? { reason: flags.reason } : {}) },
      });
      if (flags.json) return writeJson(ctx, entry);
      out.write(`noted on ${incidentId(id)} at ${entry.at}\n`);
    }),
  );

  apiCommand(
    incident
      .command('postmortem <id>')
      .description('write the postmortem draft (markdown): timeline, detection, response, action items')
      .option('--out <file>', 'where to write it (- for stdout; default: ./postmortem-INC-<id>.md)'),
  ).action((id: string, flags: OutputFlags & { out?: string }) =>
    runApi(ctx, flags, async (api) => {
      const pm = await api.get<{ ref: string; markdown: string }>(
        `/api/v1/incidents/${incidentId(id)}/postmortem`,
        { query: { format: 'json' } },
      );
      if (flags.json) return writeJson(ctx, pm);
      if (flags.out === '-') {
        out.write(pm.markdown);
        return;
      }
      const file = resolve(flags.out ?? `postmortem-${pm.ref}.md`);
      try {
        writeFileSync(file, pm.markdown, { flag: 'wx' }); // never overwrite an edited draft
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new BreakwaterError(
          'BW_ERR_API_VALIDATION',
          code === 'EEXIST'
            ? `${file} exists; pass --out <file> (or - for stdout)`
            : `cannot write ${file} (${code})`,
          { cause: err },
        );
      }
      out.write(`wrote ${file}\n`);
    }),
  );

  apiCommand(
    incident
      .command('message <id>')
      .description('a message for an audience, filled from the incident')
      .addOption(
        new Option('--audience <audience>', AUDIENCES.join(', ')).choices(AUDIENCES).default('internal'),
      ),
  ).action((id: string, flags: OutputFlags & { audience: string }) =>
    runApi(ctx, flags, async (api) => {
      const m = await api.get<{ subject: string; body: string }>(
        `/api/v1/incidents/${incidentId(id)}/messages`,
        {
          query: { audience: flags.audience },
        },
      );
      if (flags.json) return writeJson(ctx, m);
      out.write(`Subject: ${m.subject}\n\n${m.body}\n`);
    }),
  );

  apiCommand(
    incident
      .command('summary')
      .description('TTD / TTA / TTM / TTR for a quarter: median and p90')
      .option('--quarter <quarter>', 'e.g. 2026Q4 (default: this quarter)', quarter),
  ).action((flags: OutputFlags & { quarter?: string }) =>
    runApi(ctx, flags, async (api) => {
      const s = await api.get<{
        quarter: string;
        incidents: number;
        open: number;
        ttd: DurationStats;
        tta: DurationStats;
        ttm: DurationStats;
        ttr: DurationStats;
      }>('/api/v1/incidents/summary', { query: { quarter: flags.quarter } });
      if (flags.json) return writeJson(ctx, s);
      out.write(`${s.quarter}: ${s.incidents} incidents (${s.open} open)\n`);
      out.write(
        renderTable(
          (['ttd', 'tta', 'ttm', 'ttr'] as const).map((k) => ({ k, ...s[k] })),
          [
            ['metric', (r) => r.k.toUpperCase()],
            ['incidents', (r) => String(r.count)],
            ['median', (r) => duration(r.medianMs)],
            ['p90', (r) => duration(r.p90Ms)],
          ],
        ),
      );
    }),
  );

  const status = program.command('status').description('the public status page (/status)');
  apiCommand(
    status
      .command('update <id>')
      .description('post a customer-facing update for an incident; it appears on /status')
      .requiredOption('--status <status>', UPDATE_STATUSES.join(', '), oneOf(UPDATE_STATUSES))
      .requiredOption('--message <text>', 'what customers read')
      .option('--title <text>', 'public title (default: the incident title)')
      .addOption(reasonOption()),
  ).action(
    (id: string, flags: OutputFlags & { status: string; message: string; title?: string; reason?: string }) =>
      runApi(ctx, flags, async (api) => {
        const entry = await api.post<{ at: string }>(`/api/v1/incidents/${incidentId(id)}/updates`, {
          body: {
            status: flags.status,
            message: flags.message,
            ...(flags.title !== undefined ? { title: flags.title } : {}),
            ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
          },
        });
        if (flags.json) return writeJson(ctx, entry);
        out.write(`published on /status at ${entry.at}: ${flags.status}\n`);
      }),
  );
}
