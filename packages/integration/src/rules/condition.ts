/**
 * Payload conditions of a rule (`where:`): every condition must hold on the JSON payload. Paths
 * are split once when the rule is compiled; a payload that is not a JSON object matches no rule
 * with conditions.
 */
import type { RuleCondition } from '@breakwater/broker';

export interface CompiledCondition {
  path: readonly string[];
  op: RuleCondition['op'];
  value: RuleCondition['value'];
}

export function compileConditions(where: readonly RuleCondition[] | undefined): CompiledCondition[] | null {
  if (where === undefined || where.length === 0) return null;
  return where.map((w) => ({ path: w.path.split('.'), op: w.op, value: w.value }));
}

/** The value at a dot path, or undefined. */
export function pick(value: unknown, path: readonly string[]): unknown {
  let v = value;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

export function conditionsHold(conditions: readonly CompiledCondition[], json: unknown): boolean {
  if (json === null || typeof json !== 'object') return false;
  for (const c of conditions) if (!holds(c, pick(json, c.path))) return false;
  return true;
}

function holds(c: CompiledCondition, v: unknown): boolean {
  switch (c.op) {
    case 'exists':
      return v !== undefined;
    case 'missing':
      return v === undefined;
    case 'eq':
      return v === c.value;
    case 'ne':
      return v !== c.value;
    default: {
      // Ordered comparisons only between values of the same type (number or string).
      if (typeof v !== typeof c.value || (typeof v !== 'number' && typeof v !== 'string')) return false;
      const a = v as number | string;
      const b = c.value as number | string;
      if (c.op === 'gt') return a > b;
      if (c.op === 'gte') return a >= b;
      if (c.op === 'lt') return a < b;
      return a <= b;
    }
  }
}
