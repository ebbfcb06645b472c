/**
 * Data integration from the command line (issue 16): `breakwater rules list|show|add|remove`,
 * `breakwater sinks list|show|pause|resume`, `breakwater dlq list|show|replay|purge`
 * (`/api/v1/rules`, `/api/v1/sinks`, `/api/v1/dlq`).
 */
import { BreakwaterError } from '@breakwater/broker';
import { type Command, Option } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  cell,
  collect,
  type OutputFlags,
  pageOptions,
  renderFields,
  renderTable,
  runApi,
  seg,
  writeJson,
  writePage,
} from './common.js';

interface RuleView {
  id: string;
  filter: string;
  where?: Array<{ path: string; op: string; value?: unknown }>;
  sinks: string[];
  enabled: boolean;
  description?: string;
  source: 'config' | 'api';
  stats: { matched: number; filtered: number; invalid: number };
}

interface SinkView {
  name: string;
  type: string;
  state: string;
  paused: { reason: string | null; at: string } | null;
  queued: number;
  queuedBytes: number;
  oldestAgeSec: number | null;
  delivered: number;
  failedAttempts: number;
  deadLettered: number;
  dropped: number;
  lastError: { code: string; message: string; at: string } | null;
  lastDeliveryAt: string | null;
  nextRetryAt: string | null;
  maxPerSec: number;
  batchSize: number;
  bufferLimits: { maxMessages: number; maxBytes: number; overflow: string };
}

interface DeadLetterView {
  id: number;
  sink: string | null;
  msgId: number;
  rule: string | null;
  topic: string;
  publisher: string | null;
  receivedAt: string;
  failedAt: string;
  reason: string;
  errorCode: string;
  error: string;
  attempts: number;
  context: Record<string, unknown> | null;
  payloadBytes: number;
  payload: string;
  encoding: string;
}

function conditions(r: RuleView): string {
  return (r.where ?? [])
    .map((w) => `${w.path} ${w.op}${w.value === undefined ? '' : ` ${JSON.stringify(w.value)}`}`)
    .join(' and ');
}

/** `--where 'temp gt 30'` (repeatable): path, op, JSON value (a bare word is a string). */
function parseWhere(text: string): { path: string; op: string; value?: unknown } {
  const m = /^\s*(\S+)\s+(eq|ne|gt|gte|lt|lte|exists|missing)(?:\s+(.+))?\s*$/.exec(text);
  if (!m) {
    throw new BreakwaterError(
      'BW_ERR_API_VALIDATION',
      `--where "${text}": use "<path> <eq|ne|gt|gte|lt|lte|exists|missing> [value]"`,
    );
  }
  if (m[3] === undefined) return { path: m[1]!, op: m[2]! };
  let value: unknown;
  try {
    value = JSON.parse(m[3]);
  } catch {
    value = m[3];
  }
  return { path: m[1]!, op: m[2]!, value };
}

function age(sec: number | null): string {
  if (sec === null) return '-';
  if (sec < 120) return `${Math.round(sec)}s`;
  if (sec < 7200) return `${Math.round(sec / 60)}m`;
  return `${(sec / 3600).toFixed(1)}h`;
}

interface SelectionFlags extends OutputFlags {
  id?: string[];
  sink?: string;
  rule?: string;
  kind?: string;
  all?: boolean;
  reason?: string;
}

function selectionBody(flags: SelectionFlags): Record<string, unknown> {
  const ids = flags.id?.map((v) => {
    if (!/^\d+$/.test(v))
      throw new BreakwaterError('BW_ERR_API_VALIDATION', `--id ${v}: dead-letter ids are numbers`);
    return Number(v);
  });
  return {
    ...(ids?.length ? { ids } : {}),
    ...(flags.sink !== undefined ? { sink: flags.sink } : {}),
    ...(flags.rule !== undefined ? { rule: flags.rule } : {}),
    ...(flags.kind !== undefined ? { dlqReason: flags.kind } : {}),
    ...(flags.all ? { all: true } : {}),
    ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
  };
}

function selectionOptions(cmd: Command): Command {
  return cmd
    .option('--id <id>', 'dead-letter id (repeat or comma-separate)', collect)
    .option('--sink <name>', 'entries of this sink')
    .option('--rule <id>', 'entries of this rule')
    .addOption(
      new Option('--kind <kind>', 'rejected (by the sink) or invalid (failed validation)').choices([
        'rejected',
        'invalid',
      ]),
    )
    .option('--all', 'every entry (needed when nothing else selects)');
}

export function registerIntegrationCommands(program: Command, ctx: ApiCommandContext): void {
  const out = ctx.io.stdout;

  const rules = program
    .command('rules')
    .description('data-integration rules: topic filter (+ payload conditions) → sinks');

  apiCommand(rules.command('list').description('every rule, with what it matched since start')).action(
    (flags: OutputFlags) =>
      runApi(ctx, flags, async (api) => {
        const res = await api.get<{ items: RuleView[] }>('/api/v1/rules');
        if (flags.json) return writeJson(ctx, res);
        out.write(
          res.items.length === 0
            ? 'no rules\n'
            : renderTable(res.items, [
                ['id', (r) => r.id],
                ['filter', (r) => r.filter],
                ['where', (r) => cell(conditions(r))],
                ['sinks', (r) => r.sinks.join(',')],
                ['enabled', (r) => (r.enabled ? 'yes' : 'no')],
                ['source', (r) => r.source],
                ['matched', (r) => String(r.stats.matched)],
                ['filtered', (r) => String(r.stats.filtered)],
                ['invalid', (r) => String(r.stats.invalid)],
              ]),
        );
      }),
  );

  apiCommand(rules.command('show <id>').description('one rule')).action((id: string, flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const r = await api.get<RuleView>(`/api/v1/rules/${seg(id)}`);
      if (flags.json) return writeJson(ctx, r);
      out.write(
        renderFields([
          ['id', r.id],
          ['filter', r.filter],
          ['where', conditions(r)],
          ['sinks', r.sinks],
          ['enabled', r.enabled ? 'yes' : 'no'],
          ['source', r.source === 'config' ? 'config file (edit it and send SIGHUP)' : 'api'],
          ['description', r.description],
          ['matched', r.stats.matched],
          ['filtered', r.stats.filtered],
          ['invalid', r.stats.invalid],
        ]),
      );
    }),
  );

  apiCommand(
    rules
      .command('add <id>')
      .description('create a rule (applied at once); config-file rules are changed in the file')
      .requiredOption('--filter <filter>', 'MQTT topic filter, e.g. devices/+/telemetry')
      .requiredOption('--sink <name>', 'sink to deliver to (repeat or comma-separate)', collect)
      .option(
        '--where <condition>',
        'payload condition "<path> <op> [value]", e.g. "temp gt 30" (repeat: all must hold)',
        (v, p: string[] | undefined) => [...(p ?? []), v],
      )
      .option('--disabled', 'create it disabled')
      .option('--description <text>', 'what it is for')
      .option('--replace', 'replace an existing API rule with this id')
      .option('--reason <text>', 'why (written to the audit log)'),
  ).action(
    (
      id: string,
      flags: OutputFlags & {
        filter: string;
        sink: string[];
        where?: string[];
        disabled?: boolean;
        description?: string;
        replace?: boolean;
        reason?: string;
      },
    ) =>
      runApi(ctx, flags, async (api) => {
        const body = {
          id,
          filter: flags.filter,
          sinks: flags.sink,
          ...(flags.where?.length ? { where: flags.where.map(parseWhere) } : {}),
          ...(flags.disabled ? { enabled: false } : {}),
          ...(flags.description !== undefined ? { description: flags.description } : {}),
          ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
        };
        const r = flags.replace
          ? await api.request<RuleView>('PUT', `/api/v1/rules/${seg(id)}`, { body })
          : await api.post<RuleView>('/api/v1/rules', { body });
        if (flags.json) return writeJson(ctx, r);
        out.write(
          `${flags.replace ? 'replaced' : 'created'} rule ${r.id}: ${r.filter} → ${r.sinks.join(', ')}\n`,
        );
      }),
  );

  apiCommand(
    rules
      .command('remove <id>')
      .description('delete an API rule')
      .option('--reason <text>', 'why (written to the audit log)'),
  ).action((id: string, flags: OutputFlags & { reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const r = await api.request<RuleView>(
        'DELETE',
        `/api/v1/rules/${seg(id)}`,
        flags.reason !== undefined ? { reason: flags.reason } : {},
      );
      if (flags.json) return writeJson(ctx, r);
      out.write(`removed rule ${r.id}\n`);
    }),
  );

  const sinks = program
    .command('sinks')
    .description('data-integration sinks: state, durable buffer, pause and resume');

  apiCommand(
    sinks
      .command('list')
      .description('every sink: state, buffered messages, age of the oldest, delivered, failures'),
  ).action((flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.get<{ items: SinkView[] }>('/api/v1/sinks');
      if (flags.json) return writeJson(ctx, res);
      out.write(
        res.items.length === 0
          ? 'no sinks\n'
          : renderTable(res.items, [
              ['name', (s) => s.name],
              ['type', (s) => s.type],
              ['state', (s) => s.state],
              ['queued', (s) => String(s.queued)],
              ['oldest', (s) => age(s.oldestAgeSec)],
              ['delivered', (s) => String(s.delivered)],
              ['failed', (s) => String(s.failedAttempts)],
              ['dead', (s) => String(s.deadLettered)],
              ['dropped', (s) => String(s.dropped)],
              ['last error', (s) => cell(s.lastError?.message)],
            ]),
      );
    }),
  );

  apiCommand(sinks.command('show <name>').description('one sink')).action(
    (name: string, flags: OutputFlags) =>
      runApi(ctx, flags, async (api) => {
        const s = await api.get<SinkView>(`/api/v1/sinks/${seg(name)}`);
        if (flags.json) return writeJson(ctx, s);
        out.write(
          renderFields([
            ['name', s.name],
            ['type', s.type],
            ['state', s.state],
            ['paused', s.paused === null ? null : `${s.paused.at}: ${s.paused.reason ?? ''}`],
            [
              'queued',
              `${s.queued} messages, ${s.queuedBytes} bytes (limit ${s.bufferLimits.maxMessages} / ${s.bufferLimits.maxBytes}, ${s.bufferLimits.overflow})`,
            ],
            ['oldest', age(s.oldestAgeSec)],
            ['rate', `${s.maxPerSec} msg/s, batches of ${s.batchSize}`],
            ['delivered', s.delivered],
            ['failed attempts', s.failedAttempts],
            ['dead-lettered', s.deadLettered],
            ['dropped', s.dropped],
            ['last delivery', s.lastDeliveryAt],
            [
              'last error',
              s.lastError === null ? null : `${s.lastError.at} [${s.lastError.code}] ${s.lastError.message}`,
            ],
            ['next retry', s.nextRetryAt],
          ]),
        );
      }),
  );

  apiCommand(
    sinks
      .command('pause <name>')
      .description('stop delivering to a sink (it keeps buffering, within its limits) until resumed')
      .requiredOption('--reason <text>', 'why (written to the audit log)'),
  ).action((name: string, flags: OutputFlags & { reason: string }) =>
    runApi(ctx, flags, async (api) => {
      const s = await api.post<SinkView>(`/api/v1/sinks/${seg(name)}/pause`, {
        body: { reason: flags.reason },
      });
      if (flags.json) return writeJson(ctx, s);
      out.write(`paused sink ${s.name} (${s.queued} buffered); undo: breakwater sinks resume ${s.name}\n`);
    }),
  );

  apiCommand(
    sinks
      .command('resume <name>')
      .description('deliver again (a failing sink is retried now); the backlog drains at the sink rate')
      .option('--reason <text>', 'why (written to the audit log)'),
  ).action((name: string, flags: OutputFlags & { reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const s = await api.post<SinkView>(`/api/v1/sinks/${seg(name)}/resume`, {
        body: flags.reason !== undefined ? { reason: flags.reason } : {},
      });
      if (flags.json) return writeJson(ctx, s);
      out.write(`resumed sink ${s.name}: ${s.queued} buffered, draining at up to ${s.maxPerSec} msg/s\n`);
    }),
  );

  const dlq = program
    .command('dlq')
    .description('the dead-letter queue: rejected messages and sampled invalid telemetry');

  pageOptions(
    apiCommand(
      dlq
        .command('list')
        .description('dead letters, newest first')
        .option('--sink <name>', 'of this sink')
        .option('--rule <id>', 'of this rule')
        .addOption(new Option('--kind <kind>', 'rejected or invalid').choices(['rejected', 'invalid'])),
    ),
  ).action(
    (flags: OutputFlags & { sink?: string; rule?: string; kind?: string; limit?: number; cursor?: string }) =>
      runApi(ctx, flags, async (api) => {
        const page = await api.get<{ items: DeadLetterView[]; nextCursor: string | null; total: number }>(
          '/api/v1/dlq',
          {
            query: {
              sink: flags.sink,
              rule: flags.rule,
              reason: flags.kind,
              limit: flags.limit,
              cursor: flags.cursor,
            },
          },
        );
        if (flags.json) return writeJson(ctx, page);
        writePage(
          ctx,
          page,
          [
            ['id', (d) => String(d.id)],
            ['failed', (d) => d.failedAt],
            ['kind', (d) => d.reason],
            ['sink', (d) => cell(d.sink)],
            ['rule', (d) => cell(d.rule)],
            ['topic', (d) => d.topic],
            ['publisher', (d) => cell(d.publisher)],
            ['error', (d) => d.error],
          ],
          'the dead-letter queue is empty',
        );
        if (page.items.length > 0) out.write(`${page.total} in the dead-letter queue\n`);
      }),
  );

  apiCommand(dlq.command('show <id>').description('one dead letter with its payload')).action(
    (id: string, flags: OutputFlags) =>
      runApi(ctx, flags, async (api) => {
        const d = await api.get<DeadLetterView>(`/api/v1/dlq/${seg(id)}`);
        if (flags.json) return writeJson(ctx, d);
        out.write(
          renderFields([
            ['id', d.id],
            ['kind', d.reason],
            ['sink', d.sink],
            ['rule', d.rule],
            ['message id', d.msgId],
            ['topic', d.topic],
            ['publisher', d.publisher],
            ['received', d.receivedAt],
            ['failed', d.failedAt],
            ['error', `[${d.errorCode}] ${d.error}`],
            ['context', d.context === null ? null : JSON.stringify(d.context)],
            ['payload', `${d.payloadBytes} bytes (${d.encoding})`],
          ]),
        );
        out.write(`${d.payload}\n`);
      }),
  );

  for (const [verb, what] of [
    [
      'replay',
      'send dead letters again: rejected ones to their sink (same message id), invalid ones through the rules',
    ],
    ['purge', 'delete dead letters'],
  ] as const) {
    selectionOptions(
      apiCommand(
        dlq.command(verb).description(what).option('--reason <text>', 'why (written to the audit log)'),
      ),
    ).action((flags: SelectionFlags) =>
      runApi(ctx, flags, async (api) => {
        const body = selectionBody(flags);
        if (verb === 'replay') {
          const res = await api.post<{ replayed: number; skipped: Array<{ id: number; why: string }> }>(
            '/api/v1/dlq/replay',
            { body },
          );
          if (flags.json) return writeJson(ctx, res);
          out.write(
            `replayed ${res.replayed} dead letters${res.skipped.length ? `, skipped ${res.skipped.length}` : ''}\n`,
          );
          for (const s of res.skipped) out.write(`  skipped ${s.id}: ${s.why}\n`);
          return;
        }
        const res = await api.post<{ deleted: number }>('/api/v1/dlq/purge', { body });
        if (flags.json) return writeJson(ctx, res);
        out.write(`deleted ${res.deleted} dead letters\n`);
      }),
    );
  }
}
