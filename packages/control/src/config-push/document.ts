/**
 * The desired-config document as devices receive it on `$fleet/{id}/config`, kept compatible
 * with the device SDK (packages/device/src/device.ts `#handleConfig`): one JSON object whose
 * top-level `version` identifies it. The SDK runs `onConfig` once per distinct version and hands
 * the whole object (with `version`) to the handler; a device reports what it runs with
 * `reportConfig(config)`, so the report carries the same `version` back.
 *
 * `version` is therefore reserved: the control plane sets it (the push's version, see
 * repository.ts), and a config that brings its own top-level `version` is refused.
 */
import { createHash } from 'node:crypto';
import { ApiError } from '../errors.js';

export type JsonObject = Record<string, unknown>;

/** Largest desired config (the published payload, `version` included), bytes. */
export const MAX_CONFIG_BYTES = 64 * 1024;

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Refuses what the SDK could not tell apart from a control-plane version. */
export function assertNoReservedKeys(config: JsonObject, field: string): void {
  if (Object.hasOwn(config, 'version')) {
    throw new ApiError(
      'BW_ERR_API_VALIDATION',
      `${field}.version is reserved: the control plane sets the version of every push`,
      { field: `${field}.version` },
    );
  }
}

/**
 * JSON Merge Patch (RFC 7396): objects merge key by key, `null` deletes a key, anything else
 * (arrays included) replaces. Returns a new object; neither input is modified.
 */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (isJsonObject(value)) out[key] = mergePatch(isJsonObject(out[key]) ? out[key] : {}, value);
    else out[key] = value;
  }
  return out;
}

/** What is published: `version` first (readable in any MQTT tool), then the config. */
export function desiredPayload(version: number, config: JsonObject): string {
  return JSON.stringify({ version, ...config });
}

/** 413 naming the field when a payload is over the limit. */
export function assertConfigSize(payload: string, field: string, what = field): void {
  const bytes = Buffer.byteLength(payload);
  if (bytes > MAX_CONFIG_BYTES) {
    throw new ApiError(
      'BW_ERR_API_PAYLOAD_TOO_LARGE',
      `${what} is ${bytes} bytes as published; at most ${MAX_CONFIG_BYTES}`,
      { field },
    );
  }
}

/** JSON with object keys sorted at every level, so equal documents hash equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isJsonObject(v)) {
    const keys = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Content hash used by the drift view's `contentMatches`, over the document without its
 * `version` (versions are compared on their own, so `"version": "12"` and `12` agree); key
 * order and whitespace do not matter.
 */
export function configHash(doc: JsonObject): string {
  const { version: _version, ...content } = doc;
  return createHash('sha256').update(canonicalJson(content)).digest('base64url');
}

/** A report's `version` as the SDK reads it (string or number), or null. */
export function reportedVersion(doc: JsonObject): { text: string | null; num: number | null } {
  const raw = doc.version;
  if (typeof raw !== 'string' && typeof raw !== 'number') return { text: null, num: null };
  const text = String(raw);
  const num = /^\d{1,15}$/.test(text) ? Number(text) : null;
  return { text, num };
}
