/**
 * Rules, compiled: the config file's (read-only through the API, reloaded on SIGHUP) and the API's
 * (stored in the buffer file). Per-rule counters survive recompiles, keyed by id.
 */
import { MessageTap, type RuleConfig } from '@breakwater/broker';
import type { Counter } from 'prom-client';
import { type CompiledCondition, compileConditions } from './condition.js';

export type RuleSource = 'config' | 'api';

export interface RuleStats {
  matched: number;
  filtered: number;
  invalid: number;
}

export interface CompiledRule {
  readonly id: string;
  readonly config: RuleConfig;
  readonly source: RuleSource;
  readonly conditions: CompiledCondition[] | null;
  readonly sinks: readonly string[];
  readonly tap: MessageTap;
  readonly stats: RuleStats;
  /** prom-client children, bound once (no label lookup per message). */
  readonly counters: { matched: Counter.Internal; filtered: Counter.Internal; invalid: Counter.Internal };
  createdAt: number | null;
  updatedAt: number | null;
}

export interface RuleView extends RuleConfig {
  source: RuleSource;
  createdAt: string | null;
  updatedAt: string | null;
  stats: RuleStats;
}

export function compileRule(
  config: RuleConfig,
  source: RuleSource,
  stats: RuleStats,
  counter: Counter<'rule' | 'outcome'>,
  times: { createdAt: number | null; updatedAt: number | null } = { createdAt: null, updatedAt: null },
): CompiledRule {
  return {
    id: config.id,
    config,
    source,
    conditions: compileConditions(config.where),
    sinks: [...new Set(config.sinks)],
    tap: new MessageTap(config.filter, noop),
    stats,
    counters: {
      matched: counter.labels(config.id, 'matched') as Counter.Internal,
      filtered: counter.labels(config.id, 'filtered') as Counter.Internal,
      invalid: counter.labels(config.id, 'invalid') as Counter.Internal,
    },
    ...times,
  };
}

function noop(): void {}

export function ruleView(r: CompiledRule): RuleView {
  return {
    ...r.config,
    enabled: r.config.enabled !== false,
    source: r.source,
    createdAt: r.createdAt === null ? null : new Date(r.createdAt).toISOString(),
    updatedAt: r.updatedAt === null ? null : new Date(r.updatedAt).toISOString(),
    stats: { ...r.stats },
  };
}
