/**
 * The Breakwater web console (issue 14): log in with an API key, then one live stream per tab
 * and the pages below, all on the control-plane HTTP API (no console-only logic: every action is
 * an API call, audited by the API). Hash routing (#/devices): the server serves one page.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './styles.css';
import { useLive } from './hooks.js';
import { startLive, stopLive } from './live.js';
import { Campaigns } from './pages/campaigns.js';
import { Devices } from './pages/devices.js';
import { Gamedays } from './pages/gamedays.js';
import { Guard } from './pages/guard.js';
import { Incidents } from './pages/incidents.js';
import { Overview } from './pages/overview.js';
import { logIn, onSession, type Session, session, setSession } from './session.js';

const PAGES = [
  { path: 'overview', title: 'Overview', view: Overview },
  { path: 'guard', title: 'Guard', view: Guard },
  { path: 'devices', title: 'Devices', view: Devices },
  { path: 'campaigns', title: 'Campaigns', view: Campaigns },
  { path: 'incidents', title: 'Alerts and incidents', view: Incidents },
  { path: 'gamedays', title: 'Game days', view: Gamedays },
] as const;

function currentPath(): string {
  const p = location.hash.replace(/^#\/?/, '');
  return PAGES.some((x) => x.path === p) ? p : 'overview';
}

function Badge() {
  const s = useLive();
  const live = s.link === 'live';
  return (
    <span
      class={`badge ${live ? 'live' : 'reconnecting'}`}
      role="status"
      aria-live="polite"
      data-testid="link-badge"
    >
      {live ? 'LIVE' : s.link === 'connecting' ? 'CONNECTING' : 'RECONNECTING'}
    </span>
  );
}

function Login() {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="login">
      <h1>Breakwater console</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            await logIn(key.trim());
          } catch (err) {
            setError((err as Error).message);
            setBusy(false);
          }
        }}
      >
        <label class="field">
          API key
          <input
            type="password"
            name="apiKey"
            autoComplete="off"
            required
            value={key}
            onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          />
        </label>
        <p class="muted">
          The key is exchanged for a session token that lasts one hour and stays in this tab only.
        </p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          Log in
        </button>
      </form>
    </main>
  );
}

function Shell(props: { session: Session }) {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const onHash = () => setPath(currentPath());
    addEventListener('hashchange', onHash);
    startLive();
    return () => {
      removeEventListener('hashchange', onHash);
      stopLive();
    };
  }, []);
  const page = PAGES.find((p) => p.path === path)!;
  const View = page.view;
  useEffect(() => {
    document.title = `${page.title} · Breakwater`;
  }, [page]);
  return (
    <div class="shell">
      <header class="top">
        <span class="brand">Breakwater</span>
        <nav aria-label="Pages">
          {PAGES.map((p) => (
            <a key={p.path} href={`#/${p.path}`} aria-current={p.path === path ? 'page' : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <Badge />
        <span class="who">
          {props.session.key.name} ({props.session.key.role})
        </span>
        <button type="button" onClick={() => setSession(null)}>
          Log out
        </button>
      </header>
      <main class="page">
        <View />
      </main>
    </div>
  );
}

function App() {
  const [s, setS] = useState<Session | null>(session());
  useEffect(() => onSession(setS), []);
  return s ? <Shell session={s} /> : <Login />;
}

render(<App />, document.getElementById('app')!);
