/**
 * The control-plane HTTP client behind `breakwater devices|tokens|revoke|…`: Node's built-in
 * fetch, `Authorization: Bearer <API key>`, JSON in and out, and the control plane's error body
 * (`{ error: { code, message, field? } }`) turned into an `ApiRequestError`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BreakwaterError } from '@breakwater/broker';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';
/** Where `breakwater up` writes the first admin key (relative to the working directory). */
export const DEFAULT_API_KEY_FILE = './data/admin.key';
const REQUEST_TIMEOUT_MS = 30_000;

/** Connection flags every API command takes. */
export interface ApiFlags {
  url?: string;
  apiKey?: string;
  apiKeyFile?: string;
}

/** An error answer of the API: one line with the status, code and field. */
export class ApiRequestError extends Error {
  readonly status: number;
  /** The BW_ERR_* code from the body (`BW_ERR_HTTP_<status>` when the body has none). */
  readonly code: string;
  readonly field: string | undefined;

  constructor(status: number, code: string, message: string, field: string | undefined) {
    super(message);
    this.name = 'ApiRequestError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface RequestOptions {
  /** Query parameters; arrays repeat the key (`tag=a&tag=b`), undefined values are left out. */
  query?: Record<string, string | number | boolean | readonly string[] | undefined>;
  /** JSON-serialised unless `contentType` says otherwise (then sent as is). */
  body?: unknown;
  contentType?: string;
  /** Sent as `x-breakwater-reason` (the audit log's "why" for DELETE, which has no body). */
  reason?: string;
}

export class ApiClient {
  readonly baseUrl: string;
  readonly #apiKey: string;

  constructor(baseUrl: string, apiKey: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#apiKey = apiKey;
  }

  /**
   * `--url`, else `BREAKWATER_URL`, else http://127.0.0.1:8080. The key: `--api-key`, else
   * `--api-key-file`, else `BREAKWATER_API_KEY`, else the file ./data/admin.key.
   */
  static fromFlags(flags: ApiFlags, env: NodeJS.ProcessEnv): ApiClient {
    const url = flags.url ?? env.BREAKWATER_URL ?? DEFAULT_API_URL;
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(parsed.protocol);
    } catch (err) {
      throw new BreakwaterError('BW_ERR_API_UNREACHABLE', `--url ${url} is not an http(s) URL`, {
        cause: err,
      });
    }
    return new ApiClient(url, apiKey(flags, env));
  }

  get<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('GET', path, options);
  }

  post<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', path, options);
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) url.searchParams.append(key, v);
      else url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}` };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      body = options.contentType ? String(options.body) : JSON.stringify(options.body);
    }
    if (options.reason !== undefined) headers['x-breakwater-reason'] = options.reason;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new BreakwaterError(
        'BW_ERR_API_UNREACHABLE',
        `${url.origin} (${why}); is \`breakwater up\` running there? (--url or BREAKWATER_URL)`,
        { cause: err },
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)
        ?.error;
      throw new ApiRequestError(
        res.status,
        typeof e?.code === 'string' ? e.code : `BW_ERR_HTTP_${res.status}`,
        typeof e?.message === 'string' ? e.message : text.slice(0, 200) || res.statusText,
        typeof e?.field === 'string' ? e.field : undefined,
      );
    }
    return json as T;
  }
}

function apiKey(flags: ApiFlags, env: NodeJS.ProcessEnv): string {
  if (flags.apiKey !== undefined) return flags.apiKey.trim();
  if (flags.apiKeyFile !== undefined) return readKeyFile(flags.apiKeyFile, '--api-key-file');
  if (env.BREAKWATER_API_KEY) return env.BREAKWATER_API_KEY.trim();
  return readKeyFile(DEFAULT_API_KEY_FILE, 'the default key file');
}

function readKeyFile(file: string, what: string): string {
  const path = resolve(file);
  let key: string;
  try {
    key = readFileSync(path, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new BreakwaterError(
      'BW_ERR_API_UNAUTHENTICATED',
      `cannot read ${what} ${path} (${code}); pass --api-key, --api-key-file or set BREAKWATER_API_KEY`,
      { cause: err },
    );
  }
  if (key === '') {
    throw new BreakwaterError('BW_ERR_API_UNAUTHENTICATED', `${what} ${path} is empty`);
  }
  return key;
}
