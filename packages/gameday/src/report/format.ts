/** Number and value formatting shared by the markdown and HTML reports. */
import type { ExpectationOutcome } from './build.js';

export function fmt(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || Number.isNaN(v)) return 'n/a';
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function withUnit(v: number | null | undefined, unit: string, digits = 1): string {
  const s = fmt(v, digits);
  return s === 'n/a' || unit === '' ? s : `${s} ${unit}`;
}

export function expectationValue(e: ExpectationOutcome): string {
  return withUnit(e.value, e.unit, 2);
}

export function expectationThreshold(e: ExpectationOutcome): string {
  return `${e.compare === '<=' ? '≤' : '≥'} ${withUnit(e.threshold, e.unit, 2)}`;
}

/** `pass`, `fail`, or `not judged` (failed, but the verdict ignores it in this cell). */
export function expectationTag(e: ExpectationOutcome): 'pass' | 'fail' | 'not judged' {
  return e.pass ? 'pass' : e.notJudged ? 'not judged' : 'fail';
}

/** "4 of 5 expectations met" (not-judged ones counted apart). */
export function metLine(expectations: readonly ExpectationOutcome[]): string {
  const judged = expectations.filter((e) => !e.notJudged);
  const others = expectations.length - judged.length;
  return `${judged.filter((e) => e.pass).length} of ${judged.length} expectations met${others ? ` (${others} more shown, not judged in this cell)` : ''}`;
}
