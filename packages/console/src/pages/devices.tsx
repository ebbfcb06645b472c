/**
 * Devices: search and filters over the paged API (`GET /api/v1/devices`, 200 a page, cursor),
 * a virtualised list (only the visible rows are in the DOM; the next page loads when the end
 * comes into view), bulk kick / revoke, and a detail panel.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { Confirm, type ConfirmRequest, ErrorNote, Section } from '../components.js';
import { time } from '../format.js';
import { useApi } from '../hooks.js';
import { live, onLive } from '../live.js';
import { canOperate } from '../session.js';

interface Device {
  id: string;
  tags: string[];
  cohort: string | null;
  firmwareVersion: string | null;
  connectionState: 'online' | 'offline' | 'unknown';
  lastSeen: string | null;
  lastDisconnectReason: string | null;
}
interface DevicePage {
  items: Device[];
  nextCursor: string | null;
  total?: number;
}

const ROW_PX = 34;
const PAGE = 200;
const VIEW_ROWS = 16;

interface Filters {
  q: string;
  tag: string;
  cohort: string;
  connectionState: string;
  lastDisconnectReason: string;
}

export function Devices() {
  const [filters, setFilters] = useState<Filters>({
    q: '',
    tag: '',
    cohort: '',
    connectionState: '',
    lastDisconnectReason: '',
  });
  const [items, setItems] = useState<Device[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [scrollTop, setScrollTop] = useState(0);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [detail, setDetail] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const [generation, setGeneration] = useState(0);
  const scroller = useRef<HTMLDivElement>(null);
  const operate = canOperate();

  const base = useMemo(
    () => ({
      q: filters.q.trim(),
      tag: filters.tag.trim(),
      cohort: filters.cohort.trim(),
      connectionState: filters.connectionState,
      lastDisconnectReason: filters.lastDisconnectReason.trim(),
    }),
    [filters],
  );

  const load = async (reset: boolean) => {
    setLoading(true);
    try {
      const page = await api<DevicePage>(
        'GET',
        `/api/v1/devices${query({ ...base, limit: PAGE, includeTotal: reset, cursor: reset ? null : cursor })}`,
      );
      setItems((prev) => (reset ? page.items : [...prev, ...page.items]));
      setCursor(page.nextCursor);
      if (page.total !== undefined) setTotal(page.total);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setLoading(false);
    }
  };

  // New filters: first page again, debounced while typing (not on the first load: it would add
  // the debounce to the page load).
  const loadedOnce = useRef(false);
  useEffect(() => {
    const timer = setTimeout(
      () => {
        setScrollTop(0);
        if (scroller.current) scroller.current.scrollTop = 0;
        void load(true);
      },
      loadedOnce.current ? 200 : 0,
    );
    loadedOnce.current = true;
    return () => clearTimeout(timer);
  }, [base, generation]);

  // Someone changed something (audit log moved): refresh what is loaded, at most every 2 s.
  useEffect(() => {
    let seq = live().auditSeq;
    let last = 0;
    return onLive(() => {
      const now = Date.now();
      if (live().auditSeq !== seq && now - last > 2000) {
        seq = live().auditSeq;
        last = now;
        setGeneration((g) => g + 1);
      }
    });
  }, []);

  const first = Math.max(0, Math.floor(scrollTop / ROW_PX) - 4);
  const visible = items.slice(first, first + VIEW_ROWS + 8);
  useEffect(() => {
    if (!loading && cursor !== null && first + VIEW_ROWS + 8 >= items.length - 20) void load(false);
  }, [first, items.length, cursor, loading]);

  const toggle = (id: string) =>
    setSelected((prev) => {
      const next = new Set(prev);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const ids = [...selected];
  const kick = () =>
    setConfirm({
      title: `Kick ${ids.length} device(s)`,
      effect: `${ids.length} device(s) (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}) are disconnected now with MQTT reason 0x98 (administrative action). They may reconnect at once: revoke them to keep them out.`,
      confirmLabel: 'Kick',
      reason: true,
      run: (reason) => api('POST', '/api/v1/devices/kick', { ids, reason }),
    });
  const revoke = () =>
    setConfirm({
      title: `Revoke ${ids.length} device(s)`,
      effect: `Kill switch 1: ${ids.length} device(s) (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}) are disconnected, their retained messages and wills are purged, and every reconnect is refused (CONNACK 0x8A Banned) until the revocation is reverted.`,
      confirmLabel: 'Revoke',
      reason: true,
      danger: true,
      run: (reason) => api('POST', '/api/v1/killswitch/revoke', { selector: { ids }, reason }),
    });

  const field = (key: keyof Filters, label: string) => (
    <label class="field">
      {label}
      <input
        name={key}
        value={filters[key]}
        onInput={(e) => setFilters({ ...filters, [key]: (e.target as HTMLInputElement).value })}
      />
    </label>
  );

  return (
    <div>
      <h1>Devices</h1>
      <form class="filters" aria-label="Device filters" onSubmit={(e) => e.preventDefault()}>
        {field('q', 'Search id')}
        {field('tag', 'Tag')}
        {field('cohort', 'Cohort')}
        <label class="field">
          State
          <select
            name="connectionState"
            value={filters.connectionState}
            onChange={(e) =>
              setFilters({ ...filters, connectionState: (e.target as HTMLSelectElement).value })
            }
          >
            <option value="">any</option>
            <option value="online">online</option>
            <option value="offline">offline</option>
            <option value="unknown">unknown</option>
          </select>
        </label>
        {field('lastDisconnectReason', 'Last disconnect reason')}
      </form>
      <ErrorNote error={error} />
      <div class="toolbar">
        <span data-testid="device-count">
          {total === null ? '…' : `${total.toLocaleString('en')} device(s)`}
          {selected.size > 0 && `, ${selected.size} selected`}
        </span>
        <button type="button" disabled={!operate || selected.size === 0} onClick={kick}>
          Kick selected
        </button>
        <button type="button" class="danger" disabled={!operate || selected.size === 0} onClick={revoke}>
          Revoke selected
        </button>
        {selected.size > 0 && (
          <button type="button" onClick={() => setSelected(new Set())}>
            Clear selection
          </button>
        )}
      </div>
      <div class="split">
        <div class="device-list">
          <div class="device-row head" aria-hidden="true">
            <span />
            <span>Id</span>
            <span>State</span>
            <span>Cohort</span>
            <span>Tags</span>
            <span>Last disconnect</span>
          </div>
          <div
            ref={scroller}
            class="scroller"
            style={{ height: `${VIEW_ROWS * ROW_PX}px` }}
            onScroll={(e) => setScrollTop((e.target as HTMLDivElement).scrollTop)}
          >
            <ul class="rows" aria-label="Devices" style={{ height: `${items.length * ROW_PX}px` }}>
              {visible.map((d, i) => (
                <li
                  key={d.id}
                  class={`device-row${detail === d.id ? ' current' : ''}`}
                  style={{ top: `${(first + i) * ROW_PX}px` }}
                  data-testid="device-row"
                >
                  <input
                    type="checkbox"
                    aria-label={`select ${d.id}`}
                    checked={selected.has(d.id)}
                    onChange={() => toggle(d.id)}
                  />
                  <button type="button" class="link" onClick={() => setDetail(d.id)}>
                    {d.id}
                  </button>
                  <span class={`state ${d.connectionState}`}>{d.connectionState}</span>
                  <span>{d.cohort ?? '–'}</span>
                  <span class="tags">{d.tags.join(', ')}</span>
                  <span>{d.lastDisconnectReason ?? '–'}</span>
                </li>
              ))}
            </ul>
          </div>
        </div>
        {detail && <DeviceDetail id={detail} onClose={() => setDetail(null)} />}
      </div>
      <Confirm
        request={confirm}
        onClose={() => setConfirm(null)}
        onDone={() => {
          setSelected(new Set());
          setGeneration((g) => g + 1);
        }}
      />
    </div>
  );
}

interface ConfigView {
  desired: { version: number; config: unknown; pushedAt: string } | null;
  reported: { version: number | null; config: unknown; reportedAt: string } | null;
  status: string;
  inSync: boolean;
}
interface SessionView {
  connected: boolean;
  persistent: boolean;
  subscriptions: Array<{ filter: string; qos: number }>;
  queued: number;
  inflight: number;
}
/** GET /api/v1/devices/:id/events: what the broker saw happen to the device's session. */
interface DeviceEvent {
  seq: number;
  at: string;
  kind: 'connected' | 'disconnected' | 'messages_dropped';
  clientId: string;
  reason: string | null;
  count: number | null;
}

const DROP_REASONS: Record<string, string> = {
  queue_full: 'queue full',
  queue_bytes_full: 'queue bytes full',
  queue_evicted: 'evicted by newer (drop-oldest)',
};

function eventText(e: DeviceEvent): string {
  if (e.kind === 'messages_dropped') {
    return `dropped ${e.count} message${e.count === 1 ? '' : 's'}: ${DROP_REASONS[e.reason ?? ''] ?? e.reason}`;
  }
  if (e.kind === 'disconnected') return e.reason ? `disconnected (${e.reason})` : 'disconnected';
  return 'connected';
}

interface AuditItem {
  seq: number;
  at: string;
  actor: { name: string };
  action: string;
  reason: string | null;
}

function DeviceDetail(props: { id: string; onClose: () => void }) {
  const id = encodeURIComponent(props.id);
  const device = useApi<Device>(`/api/v1/devices/${id}`);
  const config = useApi<ConfigView>(`/api/v1/devices/${id}/config`);
  const events = useApi<{ items: AuditItem[] }>(`/api/v1/audit?targetType=device&targetId=${id}&limit=20`);
  const history = useApi<{ items: DeviceEvent[] }>(`/api/v1/devices/${id}/events?limit=30`, 5000);
  const session = useApi<{ session: SessionView | null; warnings: string[] }>(
    `/api/v1/devices/${id}/session`,
    5000,
  );
  const live = session.data?.session ?? null;
  const d = device.data;
  return (
    <aside class="detail" aria-label={`Device ${props.id}`}>
      <Section
        title={props.id}
        actions={
          <button type="button" onClick={props.onClose}>
            Close
          </button>
        }
      >
        <ErrorNote error={device.error} />
        {d && (
          <dl class="kv">
            <dt>State</dt>
            <dd>{d.connectionState}</dd>
            <dt>Last seen</dt>
            <dd>{time(d.lastSeen)}</dd>
            <dt>Last disconnect</dt>
            <dd>{d.lastDisconnectReason ?? '–'}</dd>
            <dt>Cohort</dt>
            <dd>{d.cohort ?? '–'}</dd>
            <dt>Tags</dt>
            <dd>{d.tags.join(', ') || '–'}</dd>
            <dt>Firmware</dt>
            <dd>{d.firmwareVersion ?? '–'}</dd>
          </dl>
        )}
        <h3>Broker session</h3>
        {session.data && live === null && (
          <p class="muted">{session.data.warnings[0] ?? 'The broker holds no session for this device.'}</p>
        )}
        {live && (
          <>
            <dl class="kv">
              <dt>Connected</dt>
              <dd>{live.connected ? 'yes' : 'no'}</dd>
              <dt>Persistent</dt>
              <dd>{live.persistent ? 'yes' : 'no (clean)'}</dd>
              <dt>Queued / in flight</dt>
              <dd data-testid="session-queue">
                {live.queued} / {live.inflight}
              </dd>
            </dl>
            <ul class="timeline" aria-label="Subscriptions">
              {live.subscriptions.map((x) => (
                <li key={x.filter}>
                  <code>{x.filter}</code> QoS {x.qos}
                </li>
              ))}
              {live.subscriptions.length === 0 && <li class="muted">No subscriptions.</li>}
            </ul>
          </>
        )}
        <h3>Config: desired vs reported</h3>
        {config.data ? (
          <div class="grid2">
            <div>
              <h4>Desired (v{config.data.desired?.version ?? '–'})</h4>
              <pre>{config.data.desired ? JSON.stringify(config.data.desired.config, null, 2) : 'none'}</pre>
            </div>
            <div>
              <h4>
                Reported (v{config.data.reported?.version ?? '–'}), {config.data.status}
              </h4>
              <pre>
                {config.data.reported ? JSON.stringify(config.data.reported.config, null, 2) : 'none'}
              </pre>
            </div>
          </div>
        ) : (
          <ErrorNote error={config.error} />
        )}
        <h3>Session history</h3>
        <ErrorNote error={history.error} />
        <ul class="timeline" aria-label="Session history">
          {(history.data?.items ?? []).map((e) => (
            <li key={e.seq} data-kind={e.kind}>
              <time>{time(e.at)}</time>{' '}
              <span class={e.kind === 'messages_dropped' ? 'kind warn' : 'kind'}>{eventText(e)}</span>
            </li>
          ))}
          {history.data && history.data.items.length === 0 && <li class="muted">No sessions recorded.</li>}
        </ul>
        <h3>Actions (audit log)</h3>
        <ul class="timeline">
          {(events.data?.items ?? []).map((e) => (
            <li key={e.seq}>
              <time>{time(e.at)}</time> {e.action} by {e.actor.name}
              {e.reason && ` (${e.reason})`}
            </li>
          ))}
          {(events.data?.items ?? []).length === 0 && <li class="muted">No actions recorded.</li>}
        </ul>
      </Section>
    </aside>
  );
}
