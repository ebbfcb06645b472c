/**
 * The matrix of issue 11: every storm scenario runs protections {on, off} × device firmware
 * {fleet, naive} × auth cache {cold, warm}, one cell per run (a fresh broker, a fresh credential
 * database, the same seed), so no cell can hide what another one shows. A scenario declares the
 * axes that apply to it (`ScenarioDefinition.matrix`); an axis with one value does not apply.
 */
import type {
  AuthCache,
  Firmware,
  MatrixAxes,
  MatrixCell,
  Protections,
  ScenarioDefinition,
  ScenarioParams,
} from './types.js';

export const PROTECTIONS: readonly Protections[] = ['on', 'off'];
export const FIRMWARES: readonly Firmware[] = ['fleet', 'naive'];
export const CACHES: readonly AuthCache[] = ['cold', 'warm'];

/** The full matrix, for the storm scenarios. */
export const FULL_MATRIX: MatrixAxes = { protections: PROTECTIONS, firmware: FIRMWARES, cache: CACHES };

/** `on/naive/warm`. */
export function cellName(c: MatrixCell): string {
  return `${c.protections}/${c.firmware}/${c.cache}`;
}

/** `on-naive-warm`: a directory name. */
export function cellSlug(c: MatrixCell): string {
  return `${c.protections}-${c.firmware}-${c.cache}`;
}

/** Firmware when none is asked for: what the scenario ran before it had a firmware axis. */
export function defaultFirmware(protections: Protections): Firmware {
  return protections === 'on' ? 'fleet' : 'naive';
}

/** The scenario's axes; without a `matrix` of its own: protections on and off, warm, its default firmware. */
export function matrixAxes(def: ScenarioDefinition): MatrixAxes {
  return def.matrix ?? { protections: PROTECTIONS, firmware: FIRMWARES, cache: ['warm'] };
}

/**
 * Every cell of the scenario's matrix: protections outermost, then firmware, then cache. A
 * scenario without a `matrix` (not a storm) has two cells, each protections setting with the
 * firmware it always ran: on/fleet/warm and off/naive/warm.
 */
export function matrixCells(def: ScenarioDefinition): MatrixCell[] {
  if (!def.matrix) {
    return PROTECTIONS.map((protections) => ({
      protections,
      firmware: defaultFirmware(protections),
      cache: 'warm' as const,
    }));
  }
  const axes = def.matrix;
  const out: MatrixCell[] = [];
  for (const protections of axes.protections)
    for (const firmware of axes.firmware)
      for (const cache of axes.cache) out.push({ protections, firmware, cache });
  return out;
}

/**
 * A cell list as `--matrix` takes it: `all`, or comma-separated patterns `protections/firmware/
 * cache` where `*` (or an omitted trailing part) matches any value: `on/*\/warm`, `off/naive`.
 * Throws with the scenario's cells when a pattern matches none.
 */
export function selectCells(def: ScenarioDefinition, spec: string | true): MatrixCell[] {
  const all = matrixCells(def);
  if (spec === true || spec.trim() === '' || spec.trim() === 'all') return all;
  const picked: MatrixCell[] = [];
  for (const raw of spec.split(',')) {
    const parts = raw.trim().split(/[/-]/);
    const match = (c: MatrixCell) =>
      [c.protections, c.firmware, c.cache].every((v, i) => {
        const p = parts[i];
        return p === undefined || p === '*' || p === '' || p === v;
      });
    const hits = all.filter(match);
    if (hits.length === 0) {
      throw new Error(
        `--matrix ${JSON.stringify(raw.trim())}: no such cell in ${def.name} (cells: ${all.map(cellName).join(', ')})`,
      );
    }
    for (const h of hits) if (!picked.some((p) => cellName(p) === cellName(h))) picked.push(h);
  }
  return picked;
}

export function withCell(params: ScenarioParams, cell: MatrixCell): ScenarioParams {
  return { ...params, protections: cell.protections, firmware: cell.firmware, cache: cell.cache };
}
