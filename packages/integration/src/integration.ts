/**
 * The integration engine (issue 16): broker taps → rules → durable per-sink buffers → sinks.
 *
 * The hot path stays cheap. Each rule (and each validation filter) is one in-process tap on the
 * broker; the tap callback only records (topic, payload, publisher, rule) in arrays and returns
 * `true` — no parsing, no I/O, no allocation beyond the rule list of a message matched by several
 * rules. Once per event-loop turn (`setImmediate`) the engine validates, evaluates payload
 * conditions, fans out to the rules' sinks and appends everything to the buffer in ONE SQLite
 * transaction. Sinks are fed from the buffer by their own workers (sink-worker.ts), never from
 * the tap.
 *
 * The guarantee. A tap that returns `true` makes the broker hold the QoS 1/2 acknowledgement of
 * that PUBLISH until its storage flush, and `joinFlush()` makes the broker's storage flush wait for
 * this engine's commit too. So: **a QoS 1/2 message a rule matched is in the durable buffer before
 * the publisher gets its PUBACK/PUBREC.** If the process dies before the commit, the publisher has
 * no acknowledgement and resends. QoS 0 messages (no acknowledgement) are lost if the process dies
 * within the turn between routing and commit — at most one event-loop turn of them. From the buffer
 * on, delivery is at least once (a batch the sink took but whose removal did not commit is
 * delivered again); every message carries an id (`msgId`) sinks use to deduplicate.
 */
import {
  BreakwaterError,
  type BrokerStorage,
  type ErrorCode,
  type IntegrationConfig,
  type MessageTapHandler,
  type RuleConfig,
  rulesProblems,
  type ValidationConfig,
} from '@breakwater/broker';
import { type Logger, pino } from 'pino';
import type { Registry } from 'prom-client';
import {
  BufferStore,
  type DeadLetter,
  type DeadLetterQuery,
  type DeadLetterSelection,
  type Enqueue,
  type NewDeadLetter,
} from './buffer/store.js';
import { IntegrationMetrics } from './metrics.js';
import { conditionsHold } from './rules/condition.js';
import { type CompiledRule, compileRule, type RuleStats, type RuleView, ruleView } from './rules/rule-set.js';
import { type SinkStatus, SinkWorker } from './sink-worker.js';
import { type SinkDeliveryConfig, type SinkSpec, sinkSpecs } from './sinks/create-sink.js';
import {
  type CompiledValidation,
  compileValidations,
  type DeviceFailures,
  describeInvalid,
  type ValidationListener,
  ValidationTracker,
} from './validation/validator.js';

/** What the engine needs of the broker: its in-process taps. */
export interface MessageSource {
  tap(filter: string, handler: MessageTapHandler): () => void;
}

export interface IntegrationOptions {
  /** The validated `integration:` section (buffer.file resolved, e.g. by the config loader). */
  config: IntegrationConfig;
  /** The broker's prom-client registry. */
  registry: Registry;
  logger?: Logger;
  now?: () => number;
  /** Tests: a sink factory per name instead of the configured client (e.g. a failing fake). */
  sinkFactory?: (spec: SinkSpec) => SinkSpec['create'];
}

/** A request the engine refuses, with the HTTP status its catalog code maps to and the field. */
export class IntegrationRequestError extends BreakwaterError {
  readonly field: string | undefined;
  constructor(code: ErrorCode, detail: string, field?: string) {
    super(code, detail);
    this.name = 'IntegrationRequestError';
    this.field = field;
  }
}

export interface ReplayResult {
  replayed: number;
  skipped: Array<{ id: number; why: string }>;
}

const NOT_JSON = Symbol('not json');
const UNPARSED = Symbol('unparsed');
/** Most dead letters one replay or purge call moves. */
export const MAX_REPLAY = 10_000;

interface Batch {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class Integration {
  readonly metrics: IntegrationMetrics;
  readonly #store: BufferStore;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #workers = new Map<string, SinkWorker>();
  readonly #tracker = new ValidationTracker();
  readonly #listeners = new Set<ValidationListener>();
  readonly #stats = new Map<string, RuleStats>();
  #config: IntegrationConfig;
  #rules: CompiledRule[] = [];
  #validations: CompiledValidation[] = [];
  #source: MessageSource | null = null;
  #untap: Array<() => void> = [];
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  // Captures of the current event-loop turn (parallel arrays: no object per message).
  #capTopic: string[] = [];
  #capPayload: Buffer[] = [];
  #capPublisher: Array<string | null> = [];
  #capAt: number[] = [];
  #capRules: Array<CompiledRule | CompiledRule[] | null> = [];
  #capValidation: Array<CompiledValidation | null> = [];
  #batch: Batch | null = null;
  #commitScheduled = false;
  readonly #commitCallback = (): void => this.#commit();

  constructor(options: IntegrationOptions) {
    const c = options.config;
    if (c.buffer.file === undefined) {
      throw new BreakwaterError(
        'BW_ERR_CONFIG_INVALID',
        'integration.buffer.file is not resolved (validateConfig sets it)',
      );
    }
    this.#config = c;
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'integration' });
    this.#now = options.now ?? Date.now;
    this.metrics = new IntegrationMetrics(options.registry);
    this.#store = new BufferStore({
      file: c.buffer.file,
      synchronous: c.buffer.synchronous,
      maxDeadLetters: c.deadLetter.maxMessages,
      onCheckpointerFailure: (err) =>
        this.#log.error(
          { err },
          'integration buffer: WAL checkpointer thread failed; checkpointing on the event loop',
        ),
    });
    try {
      const paused = this.#store.pausedSinks();
      for (const spec of sinkSpecs(c.sinks)) {
        const s = options.sinkFactory ? { ...spec, create: options.sinkFactory(spec) } : spec;
        const w = new SinkWorker({
          spec: s,
          store: this.#store,
          metrics: this.metrics,
          logger: this.#log,
          now: this.#now,
        });
        this.#workers.set(spec.name, w);
        const p =
          paused.get(spec.name) ??
          (spec.config.paused ? { reason: 'paused in the config file', at: this.#now() } : null);
        w.start(p);
      }
      for (const orphan of this.#store.sinksWithMessages()) {
        if (!this.#workers.has(orphan)) {
          this.#log.warn(
            { sink: orphan, queued: this.#store.depth(orphan).messages },
            'the buffer holds messages for a sink that is no longer configured: they stay until it is configured again',
          );
        }
      }
      this.#validations = compileValidations(c.validation);
      this.#rules = this.#compileRules(c.rules);
    } catch (err) {
      void this.#store.close();
      throw err;
    }
    this.metrics.deadLetters.set(this.#store.deadLetterCount);
    this.#timer = setInterval(() => this.#everySecond(), 1_000);
    this.#timer.unref();
  }

  /** Starts tapping the broker: from now on every routed message a rule matches is buffered. */
  attach(source: MessageSource): void {
    this.#source = source;
    this.#retap();
  }

  /**
   * The broker storage to give the Broker: the same storage, whose flush also waits for this
   * engine's commit — that is what holds a PUBACK until the message is in the buffer.
   */
  joinFlush(storage: BrokerStorage): BrokerStorage {
    return new FlushJoinedStorage(storage, this);
  }

  /** Resolves when every message handed to the engine so far is committed to the buffer. */
  flush(): Promise<void> {
    return this.#batch?.promise ?? Promise.resolve();
  }

  // --- the tap path -------------------------------------------------------------------------

  #retap(): void {
    for (const u of this.#untap) u();
    this.#untap = [];
    const src = this.#source;
    if (src === null) return;
    for (const rule of this.#rules) {
      if (rule.config.enabled === false) continue;
      this.#untap.push(
        src.tap(rule.config.filter, (topic, payload, publisher) =>
          this.#capture(topic, payload, publisher, rule, null),
        ),
      );
    }
    for (const v of this.#validations) {
      this.#untap.push(
        src.tap(v.filter, (topic, payload, publisher) => this.#capture(topic, payload, publisher, null, v)),
      );
    }
  }

  /** The tap callback: record, schedule the commit, say "durable after my flush". */
  #capture(
    topic: string,
    payload: Buffer,
    publisher: string | null,
    rule: CompiledRule | null,
    validation: CompiledValidation | null,
  ): boolean {
    const n = this.#capTopic.length - 1;
    // The broker calls its taps one after another for one message: the same payload object.
    if (n >= 0 && this.#capPayload[n] === payload && this.#capTopic[n] === topic) {
      if (validation !== null) {
        if (this.#capValidation[n] === null) this.#capValidation[n] = validation;
      } else if (rule !== null) {
        const r = this.#capRules[n]!;
        if (r === null) this.#capRules[n] = rule;
        else if (Array.isArray(r)) r.push(rule);
        else this.#capRules[n] = [r, rule];
      }
      return true;
    }
    this.#capTopic.push(topic);
    this.#capPayload.push(payload);
    this.#capPublisher.push(publisher);
    this.#capAt.push(this.#now());
    this.#capRules.push(rule);
    this.#capValidation.push(validation);
    if (!this.#commitScheduled) {
      this.#commitScheduled = true;
      if (this.#batch === null) {
        let resolve!: () => void;
        let reject!: (err: Error) => void;
        const promise = new Promise<void>((res, rej) => {
          resolve = res;
          reject = rej;
        });
        // A failed commit is reported to the flush's callers; never an unhandled rejection.
        promise.catch(() => {});
        this.#batch = { promise, resolve, reject };
      }
      setImmediate(this.#commitCallback);
    }
    return true;
  }

  /** Once per turn: validate, match conditions, fan out, append in one transaction. */
  #commit(force = false): void {
    // The buffer's checkpointer wants a few quiet milliseconds to let the WAL start over: keep
    // capturing (commitScheduled stays true), append the whole lot when it is done.
    if (!force && this.#store.appendsHeld) {
      this.#store.afterHold(this.#commitCallback);
      return;
    }
    this.#commitScheduled = false;
    const batch = this.#batch;
    this.#batch = null;
    const topics = this.#capTopic;
    const payloads = this.#capPayload;
    const publishers = this.#capPublisher;
    const ats = this.#capAt;
    const rules = this.#capRules;
    const validations = this.#capValidation;
    this.#capTopic = [];
    this.#capPayload = [];
    this.#capPublisher = [];
    this.#capAt = [];
    this.#capRules = [];
    this.#capValidation = [];
    const entries: Enqueue[] = [];
    const dead: NewDeadLetter[] = [];
    for (let i = 0; i < topics.length; i++) {
      this.#process(
        topics[i]!,
        payloads[i]!,
        publishers[i]!,
        ats[i]!,
        rules[i]!,
        validations[i]!,
        0,
        entries,
        dead,
      );
    }
    try {
      this.#append(entries, dead);
      batch?.resolve();
    } catch (err) {
      // Nothing of this turn is durable: the broker closes the connections waiting for their
      // acknowledgements (DurableAcks), and their clients resend.
      this.#log.error({ err, messages: topics.length }, 'integration buffer commit failed');
      batch?.reject(err as Error);
    }
  }

  /** Fans one message out to its rules' sinks (entries) and records validation failures (dead). */
  #process(
    topic: string,
    payload: Buffer,
    publisher: string | null,
    at: number,
    matched: CompiledRule | CompiledRule[] | null,
    validation: CompiledValidation | null,
    presetMsgId: number,
    entries: Enqueue[],
    dead: NewDeadLetter[],
  ): void {
    let json: unknown = UNPARSED;
    let msgId = presetMsgId;
    let invalid = false;
    if (validation !== null) {
      json = parseJson(payload);
      const ok = json !== NOT_JSON && validation.validate(json) === true;
      if (!ok) {
        invalid = true;
        const error = json === NOT_JSON ? 'payload is not JSON' : describeInvalid(validation.validate.errors);
        this.metrics.validationFailures.labels(validation.filter).inc();
        const device = publisher ?? '(server)';
        if (this.#tracker.record(device, topic, validation.filter, error, at, validation.sampleIntervalMs)) {
          if (msgId === 0) msgId = this.#store.nextMsgId();
          dead.push({
            sink: null,
            msgId,
            rule: null,
            topic,
            payload,
            publisher,
            receivedAt: at,
            failedAt: at,
            reason: 'invalid',
            errorCode: 'BW_ERR_TELEMETRY_INVALID',
            error,
            attempts: 0,
            context: { filter: validation.filter, onInvalid: validation.onInvalid },
          });
          this.metrics.deadLettered.labels('', 'invalid').inc();
        }
      }
    }
    if (matched === null) return;
    const list = Array.isArray(matched) ? matched : [matched];
    let firstSink = -1;
    for (const rule of list) {
      if (invalid && validation!.onInvalid === 'drop') {
        rule.stats.invalid++;
        rule.counters.invalid.inc();
        continue;
      }
      if (rule.conditions !== null) {
        if (json === UNPARSED) json = parseJson(payload);
        if (json === NOT_JSON || !conditionsHold(rule.conditions, json)) {
          rule.stats.filtered++;
          rule.counters.filtered.inc();
          continue;
        }
      }
      rule.stats.matched++;
      rule.counters.matched.inc();
      for (const sink of rule.sinks) {
        // One copy per sink, even when several rules send the message there.
        let dup = false;
        for (let k = firstSink; k !== -1 && k < entries.length; k++)
          if (entries[k]!.sink === sink) dup = true;
        if (dup) continue;
        if (msgId === 0) msgId = this.#store.nextMsgId();
        if (firstSink === -1) firstSink = entries.length;
        entries.push({ sink, msgId, rule: rule.id, topic, payload, publisher, receivedAt: at });
      }
    }
  }

  #append(entries: readonly Enqueue[], dead: readonly NewDeadLetter[]): void {
    if (entries.length === 0 && dead.length === 0) return;
    const res = this.#store.append(entries, dead);
    const per = new Map<string, number>();
    for (const e of entries) per.set(e.sink, (per.get(e.sink) ?? 0) + 1);
    for (const [sink, n] of per) {
      const dropped = res.dropped.get(sink) ?? 0;
      this.metrics.buffered
        .labels(sink)
        .inc(n - (this.#workers.get(sink)?.spec.config.buffer.overflow === 'drop-new' ? dropped : 0));
    }
    for (const [sink, n] of res.dropped) {
      this.#workers.get(sink)?.countDropped(n);
      this.#log.warn(
        { sink, dropped: n, policy: this.#workers.get(sink)?.spec.config.buffer.overflow },
        'sink buffer full: messages dropped',
      );
    }
    for (const sink of res.touched) this.#workers.get(sink)?.notify();
  }

  #everySecond(): void {
    for (const w of this.#workers.values()) w.refreshGauges();
    this.metrics.deadLetters.set(this.#store.deadLetterCount);
    const report = this.#tracker.takeReport(this.#now());
    if (report === null) return;
    for (const l of this.#listeners) {
      try {
        l(report);
      } catch (err) {
        this.#log.error({ err }, 'validation listener failed');
      }
    }
  }

  // --- rules --------------------------------------------------------------------------------

  #compileRules(configRules: readonly RuleConfig[]): CompiledRule[] {
    const out: CompiledRule[] = [];
    const sinks = new Set(this.#workers.keys());
    const problems = rulesProblems(configRules, sinks, 'integration.rules');
    if (problems.length > 0) throw new BreakwaterError('BW_ERR_CONFIG_INVALID', problems.join('; '));
    for (const r of configRules)
      out.push(compileRule(r, 'config', this.#statsOf(r.id), this.metrics.ruleMessages));
    const ids = new Set(configRules.map((r) => r.id));
    for (const stored of this.#store.listRules()) {
      const r = stored.body as RuleConfig;
      if (ids.has(r.id)) {
        this.#log.warn(
          { rule: r.id },
          'an API rule has the id of a config-file rule: the config file wins, the API rule is ignored',
        );
        continue;
      }
      const missing = r.sinks.filter((s) => !sinks.has(s));
      if (missing.length > 0) {
        this.#log.warn(
          { rule: r.id, missing },
          'an API rule names sinks that are no longer configured: they are skipped',
        );
      }
      const usable = { ...r, sinks: r.sinks.filter((s) => sinks.has(s)) };
      out.push(compileRule(usable, 'api', this.#statsOf(r.id), this.metrics.ruleMessages, stored));
    }
    return out;
  }

  #statsOf(id: string): RuleStats {
    let s = this.#stats.get(id);
    if (s === undefined) {
      s = { matched: 0, filtered: 0, invalid: 0 };
      this.#stats.set(id, s);
    }
    return s;
  }

  rules(): RuleView[] {
    return this.#rules.map(ruleView);
  }

  rule(id: string): RuleView | null {
    const r = this.#rules.find((x) => x.id === id);
    return r === undefined ? null : ruleView(r);
  }

  /** Creates (or with `replace`, replaces) an API rule; applied at once. */
  putRule(input: RuleConfig, options: { replace: boolean }): RuleView {
    const existing = this.#rules.find((r) => r.id === input.id);
    if (existing?.source === 'config') {
      throw new IntegrationRequestError(
        'BW_ERR_API_CONFLICT',
        `rule ${input.id} is defined in the config file: edit it there and reload (SIGHUP)`,
        'id',
      );
    }
    if (existing !== undefined && !options.replace)
      throw new IntegrationRequestError('BW_ERR_API_CONFLICT', `rule ${input.id}`, 'id');
    if (existing === undefined && options.replace)
      throw new IntegrationRequestError('BW_ERR_API_NOT_FOUND', `rule ${input.id}`);
    const rule: RuleConfig = { ...input, enabled: input.enabled !== false };
    const problem = rulesProblems([rule], new Set(this.#workers.keys()), 'rule')[0];
    if (problem !== undefined) {
      // `rule[0].sinks[1]: …` → field `sinks[1]`.
      const m = /^rule\[0\]\.([^ :]+)/.exec(problem);
      throw new IntegrationRequestError('BW_ERR_API_VALIDATION', problem.replace(/^rule\[0\]\./, ''), m?.[1]);
    }
    this.#store.putRule(rule.id, rule, this.#now());
    this.#rules = this.#compileRules(this.#config.rules);
    this.#retap();
    return this.rule(rule.id)!;
  }

  deleteRule(id: string): RuleView {
    const existing = this.#rules.find((r) => r.id === id);
    if (existing === undefined) throw new IntegrationRequestError('BW_ERR_API_NOT_FOUND', `rule ${id}`);
    if (existing.source === 'config') {
      throw new IntegrationRequestError(
        'BW_ERR_API_CONFLICT',
        `rule ${id} is defined in the config file: remove it there and reload (SIGHUP)`,
      );
    }
    this.#store.deleteRule(id);
    this.#rules = this.#compileRules(this.#config.rules);
    this.#retap();
    return ruleView(existing);
  }

  /**
   * Hot reload from the config file: rules and validation are replaced at once (messages already
   * buffered stay); sinks are not (connections, buffers): a changed `sinks` section is reported
   * and needs a restart.
   */
  reload(config: IntegrationConfig): { rules: number; validations: number; warnings: string[] } {
    const warnings: string[] = [];
    if (JSON.stringify(config.sinks) !== JSON.stringify(this.#config.sinks))
      warnings.push('integration.sinks changed: sinks are not reloaded, restart to apply');
    const validations = compileValidations(config.validation);
    const previous = this.#config;
    this.#config = { ...previous, rules: config.rules, validation: config.validation };
    try {
      this.#rules = this.#compileRules(config.rules);
    } catch (err) {
      this.#config = previous;
      throw err;
    }
    this.#validations = validations;
    this.#retap();
    this.#log.info(
      { rules: this.#rules.length, validations: validations.length },
      'integration rules reloaded',
    );
    return { rules: this.#rules.length, validations: validations.length, warnings };
  }

  get validationConfig(): readonly ValidationConfig[] {
    return this.#config.validation;
  }

  // --- sinks --------------------------------------------------------------------------------

  sinks(): SinkStatus[] {
    return [...this.#workers.values()].map((w) => w.status());
  }

  sink(name: string): SinkStatus {
    return this.#worker(name).status();
  }

  pauseSink(name: string, reason: string | null): SinkStatus {
    const w = this.#worker(name);
    const at = this.#now();
    this.#store.setPaused(name, true, reason, at);
    w.pause(reason, at);
    this.#log.info({ sink: name, reason }, 'sink paused: buffering, not delivering');
    return w.status();
  }

  resumeSink(name: string): SinkStatus {
    const w = this.#worker(name);
    this.#store.setPaused(name, false, null, this.#now());
    w.resume();
    this.#log.info({ sink: name }, 'sink resumed');
    return w.status();
  }

  #worker(name: string): SinkWorker {
    const w = this.#workers.get(name);
    if (w === undefined) throw new IntegrationRequestError('BW_ERR_API_NOT_FOUND', `sink ${name}`);
    return w;
  }

  /** Effective delivery settings of a sink (for reports). */
  sinkConfig(name: string): SinkDeliveryConfig | null {
    return (this.#workers.get(name)?.spec.config as SinkDeliveryConfig | undefined) ?? null;
  }

  // --- dead-letter queue --------------------------------------------------------------------

  deadLetters(q: DeadLetterQuery): DeadLetter[] {
    return this.#store.listDeadLetters(q);
  }

  deadLetter(id: number): DeadLetter | null {
    return this.#store.getDeadLetter(id);
  }

  get deadLetterCount(): number {
    return this.#store.deadLetterCount;
  }

  /**
   * Sends dead letters again. A rejected message goes back to its sink's buffer (same message id);
   * an invalid one goes through today's validation and rules as if it had just arrived (it fails
   * again unless the schema or the device was fixed, and is then sampled again). Entries whose sink
   * is no longer configured are skipped.
   */
  replay(sel: DeadLetterSelection): ReplayResult {
    const list = this.#store.selectDeadLetters(sel, MAX_REPLAY);
    const skipped: ReplayResult['skipped'] = [];
    if (sel.ids !== undefined) {
      const found = new Set(list.map((d) => d.id));
      for (const id of sel.ids) if (!found.has(id)) skipped.push({ id, why: 'no such dead letter' });
    }
    const requeue: Array<{ dl: DeadLetter; sink: string }> = [];
    const reinject: DeadLetter[] = [];
    for (const dl of list) {
      if (dl.sink === null) reinject.push(dl);
      else if (!this.#workers.has(dl.sink))
        skipped.push({ id: dl.id, why: `sink ${dl.sink} is not configured` });
      else requeue.push({ dl, sink: dl.sink });
    }
    let replayed = this.#store.requeue(requeue, false, this.#now());
    for (const { sink } of requeue) this.#workers.get(sink)?.notify();
    if (reinject.length > 0) {
      const entries: Enqueue[] = [];
      const dead: NewDeadLetter[] = [];
      const now = this.#now();
      for (const dl of reinject) {
        const rules = this.#rules.filter((r) => r.config.enabled !== false && r.tap.matches(dl.topic));
        const validation = this.#validations.find((v) => v.tap.matches(dl.topic)) ?? null;
        this.#process(
          dl.topic,
          dl.payload,
          dl.publisher,
          now,
          rules.length === 0 ? null : rules,
          validation,
          dl.msgId,
          entries,
          dead,
        );
      }
      this.#append(entries, dead);
      replayed += this.#store.deleteDeadLetters(reinject.map((d) => d.id));
    }
    this.metrics.deadLetters.set(this.#store.deadLetterCount);
    if (replayed > 0) this.#log.info({ replayed, skipped: skipped.length }, 'dead letters replayed');
    return { replayed, skipped };
  }

  purge(sel: DeadLetterSelection): number {
    const list = this.#store.selectDeadLetters(sel, MAX_REPLAY);
    const n = this.#store.deleteDeadLetters(list.map((d) => d.id));
    this.metrics.deadLetters.set(this.#store.deadLetterCount);
    return n;
  }

  // --- validation ---------------------------------------------------------------------------

  /** Called once a second with the failures of that second (the control plane raises the alert). */
  onValidationReport(listener: ValidationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  validationSummary(limit: number): { total: number; devicesTracked: number; devices: DeviceFailures[] } {
    return {
      total: this.#tracker.total,
      devicesTracked: this.#tracker.devicesTracked,
      devices: this.#tracker.top(limit),
    };
  }

  /** Untaps, commits what was captured, lets each sink finish its batch in flight, closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const u of this.#untap) u();
    this.#untap = [];
    if (this.#commitScheduled) this.#commit(true);
    if (this.#timer !== null) clearInterval(this.#timer);
    await Promise.all([...this.#workers.values()].map((w) => w.close()));
    await this.#store.close();
  }
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return NOT_JSON;
  }
}

/** The broker's storage, with a flush that also covers the integration buffer (see module comment). */
class FlushJoinedStorage implements BrokerStorage {
  readonly #inner: BrokerStorage;
  readonly #integration: Integration;

  constructor(inner: BrokerStorage, integration: Integration) {
    this.#inner = inner;
    this.#integration = integration;
  }

  open(): Promise<void> {
    return this.#inner.open();
  }
  loadSessions() {
    return this.#inner.loadSessions();
  }
  loadOutbox(clientId: string) {
    return this.#inner.loadOutbox(clientId);
  }
  loadInboundQos2(clientId: string) {
    return this.#inner.loadInboundQos2(clientId);
  }
  loadRetained() {
    return this.#inner.loadRetained();
  }
  putSession(session: Parameters<BrokerStorage['putSession']>[0]): void {
    this.#inner.putSession(session);
  }
  deleteSession(clientId: string): void {
    this.#inner.deleteSession(clientId);
  }
  putWill(clientId: string, will: Parameters<BrokerStorage['putWill']>[1]): void {
    this.#inner.putWill(clientId, will);
  }
  deleteWill(clientId: string): void {
    this.#inner.deleteWill(clientId);
  }
  putSubscription(clientId: string, sub: Parameters<BrokerStorage['putSubscription']>[1]): void {
    this.#inner.putSubscription(clientId, sub);
  }
  deleteSubscription(clientId: string, filter: string): void {
    this.#inner.deleteSubscription(clientId, filter);
  }
  appendOutbox(clientId: string, record: Parameters<BrokerStorage['appendOutbox']>[1]): void {
    this.#inner.appendOutbox(clientId, record);
  }
  updateOutbox(...args: Parameters<BrokerStorage['updateOutbox']>): void {
    this.#inner.updateOutbox(...args);
  }
  deleteOutbox(clientId: string, seq: number): void {
    this.#inner.deleteOutbox(clientId, seq);
  }
  addInboundQos2(clientId: string, packetId: number): void {
    this.#inner.addInboundQos2(clientId, packetId);
  }
  deleteInboundQos2(clientId: string, packetId: number): void {
    this.#inner.deleteInboundQos2(clientId, packetId);
  }
  putRetained(record: Parameters<BrokerStorage['putRetained']>[0]): void {
    this.#inner.putRetained(record);
  }
  deleteRetained(topic: string): void {
    this.#inner.deleteRetained(topic);
  }
  async flush(): Promise<void> {
    await Promise.all([this.#inner.flush(), this.#integration.flush()]);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}
