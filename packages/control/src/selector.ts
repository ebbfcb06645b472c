/**
 * A selector picks a set of devices; everything that acts on many devices (list, revocation,
 * config push, OTA campaigns) takes one (issue 5). All given criteria must hold (AND); `tags`
 * means "has every one of these tags".
 *
 * An empty selector matches every device. That is what a list filter wants, and it is exactly
 * what a kill switch must never do by accident ("revoke {}" = revoke the fleet), so actions call
 * `requireTargeted()`, which accepts an empty selector only with an explicit `all: true`.
 */
import { type Static, Type } from '@sinclair/typebox';
import type { ConnectionState } from './devices/connection-state.js';
import { ApiError } from './errors.js';

/** Device ids are MQTT client ids and `$fleet/{id}/…` topic levels: no `/`, `+`, `#`, spaces. */
export const DEVICE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$';
/** Tags and cohorts: short names, `key=value` allowed for tags. */
export const LABEL_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:=@-]{0,63}$';
export const FIRMWARE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$';

export const DeviceIdSchema = Type.String({
  pattern: DEVICE_ID_PATTERN,
  description: 'Device id (= MQTT client id).',
});
export const TagSchema = Type.String({ pattern: LABEL_PATTERN });
export const ConnectionStateSchema = Type.Union(
  [Type.Literal('online'), Type.Literal('offline'), Type.Literal('unknown')],
  { description: '`unknown`: never reported by the broker.' },
);

export const SelectorSchema = Type.Object(
  {
    ids: Type.Optional(Type.Array(DeviceIdSchema, { minItems: 1, maxItems: 10_000, uniqueItems: true })),
    tags: Type.Optional(Type.Array(TagSchema, { minItems: 1, maxItems: 32, uniqueItems: true })),
    cohort: Type.Optional(Type.String({ pattern: LABEL_PATTERN })),
    firmware: Type.Optional(Type.String({ pattern: FIRMWARE_PATTERN })),
    connectionState: Type.Optional(ConnectionStateSchema),
    all: Type.Optional(Type.Literal(true, { description: 'Required to target every device.' })),
  },
  { additionalProperties: false },
);

export interface Selector {
  ids?: string[];
  tags?: string[];
  cohort?: string;
  firmware?: string;
  connectionState?: ConnectionState;
  /** Explicit "every device" for actions; ignored by list filters. */
  all?: true;
}

// Keep the hand-written interface (readable in editors) and the schema in step.
type _SelectorMatchesSchema = Static<typeof SelectorSchema> extends Selector ? true : never;
const _selectorCheck: _SelectorMatchesSchema = true;
void _selectorCheck;

export function isEmptySelector(s: Selector): boolean {
  return (
    s.ids === undefined &&
    s.tags === undefined &&
    s.cohort === undefined &&
    s.firmware === undefined &&
    s.connectionState === undefined
  );
}

/** For actions: an empty selector without `all: true` is refused (400, field `selector`). */
export function requireTargeted(s: Selector, field = 'selector'): void {
  if (isEmptySelector(s) && s.all !== true) {
    throw new ApiError(
      'BW_ERR_API_VALIDATION',
      `${field} matches every device; name ids, tags, cohort, firmware or connectionState, or set all: true`,
      { field },
    );
  }
}
