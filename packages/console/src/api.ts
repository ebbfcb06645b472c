/** Calls to the control-plane HTTP API with the session token; errors keep the API's code and field. */
import { session, setSession } from './session.js';

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null,
  ) {
    super(message);
  }
}

export async function api<T>(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<T> {
  const s = session();
  const headers: Record<string, string> = {};
  if (s) headers.authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const data = text === '' ? null : (JSON.parse(text) as unknown);
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
    if (res.status === 401) setSession(null); // expired or revoked: back to the login form
    throw new ApiFailure(res.status, e?.code ?? 'HTTP', e?.message ?? `HTTP ${res.status}`, e?.field ?? null);
  }
  return data as T;
}

export async function apiText(path: string): Promise<string> {
  const s = session();
  const res = await fetch(path, { headers: s ? { authorization: `Bearer ${s.token}` } : {} });
  if (!res.ok) throw new ApiFailure(res.status, 'HTTP', `HTTP ${res.status}`, null);
  return res.text();
}

/** `?a=1&b=x` from the defined entries. */
export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
