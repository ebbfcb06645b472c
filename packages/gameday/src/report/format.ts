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
