/**
 * The console's login: an API key is exchanged once for a short-lived session token
 * (POST /api/v1/console/session); only the token is kept, in sessionStorage (this tab only,
 * gone when the tab closes), and sent as `Authorization: Bearer`. No cookie carries
 * credentials, so a cross-site request cannot act with them (no CSRF surface).
 */
export interface Session {
  token: string;
  expiresAt: string;
  key: { id: string; name: string; role: 'viewer' | 'operator' | 'admin' };
}

const STORAGE_KEY = 'breakwater.console.session';
const listeners = new Set<(s: Session | null) => void>();
let current: Session | null = load();

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (raw === null) return null;
    const s = JSON.parse(raw) as Session;
    return Date.parse(s.expiresAt) > Date.now() ? s : null;
  } catch {
    return null;
  }
}

export function session(): Session | null {
  return current;
}

export function setSession(s: Session | null): void {
  current = s;
  if (s === null) sessionStorage.removeItem(STORAGE_KEY);
  else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  for (const l of listeners) l(s);
}

export function onSession(listener: (s: Session | null) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function canOperate(): boolean {
  const role = current?.key.role;
  return role === 'operator' || role === 'admin';
}

export async function logIn(apiKey: string): Promise<Session> {
  const res = await fetch('/api/v1/console/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiKey }),
  });
  const body = (await res.json()) as Session & { error?: { message: string } };
  if (!res.ok) throw new Error(body.error?.message ?? `login failed (${res.status})`);
  setSession(body);
  return body;
}
