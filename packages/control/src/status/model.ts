/**
 * The public status page model (`/status.json`, rendered by html.ts as `/status`).
 *
 * Component state is derived from open incidents (no one has to remember to flip it): a critical
 * incident not yet mitigated is an outage of its components, anything else open is degraded.
 * Incidents themselves appear only once an operator has posted a customer-facing update: the
 * alert's internal title ("auth failure ratio 43 % on listener tcp") is not what customers, or
 * an attacker during a security incident, should read. Until then the component still shows
 * its state, as "investigating".
 */
import {
  type IncidentRecord,
  type IncidentRepository,
  incidentRef,
  type StatusComponent,
  statusComponents,
  type TimelineRecord,
} from '../incidents/model.js';

export const HISTORY_DAYS = 90;
const DAY_MS = 86_400_000;

export type ComponentState = 'operational' | 'degraded' | 'outage';

const componentNames: Record<StatusComponent, string> = {
  broker: 'MQTT broker',
  auth: 'Device authentication',
  'control-plane': 'Control plane API',
  ota: 'Firmware updates (OTA)',
};

const stateRank: Record<ComponentState, number> = { operational: 0, degraded: 1, outage: 2 };

function worse(a: ComponentState, b: ComponentState): ComponentState {
  return stateRank[b] > stateRank[a] ? b : a;
}

export interface PublicUpdate {
  at: string;
  status: string;
  message: string;
}

export interface PublicIncident {
  id: string;
  title: string;
  severity: string;
  state: string;
  components: StatusComponent[];
  startedAt: string;
  resolvedAt: string | null;
  updates: PublicUpdate[];
}

export interface StatusPage {
  generatedAt: string;
  overall: ComponentState;
  components: Array<{ id: StatusComponent; name: string; state: ComponentState; history: ComponentState[] }>;
  activeIncidents: PublicIncident[];
  /** Newest day first; `HISTORY_DAYS` entries. */
  history: Array<{ date: string; state: ComponentState; incidents: Array<{ id: string; title: string }> }>;
}

/** What an incident does to its components at time `t` (null: nothing, resolved or not started). */
function impactAt(i: IncidentRecord, t: number): ComponentState | null {
  if (t < i.startedAt || (i.resolvedAt !== null && t >= i.resolvedAt)) return null;
  if (i.mitigatedAt !== null && t >= i.mitigatedAt) return 'degraded';
  return i.severity === 'critical' ? 'outage' : i.severity === 'warning' ? 'degraded' : 'operational';
}

/** The worst impact during [from, to). */
function impactDuring(i: IncidentRecord, from: number, to: number): ComponentState | null {
  const end = i.resolvedAt ?? Number.POSITIVE_INFINITY;
  if (i.startedAt >= to || end <= from) return null;
  const beforeMitigation = i.mitigatedAt === null || i.mitigatedAt > Math.max(from, i.startedAt);
  if (beforeMitigation) return impactAt(i, Math.max(from, i.startedAt));
  return 'degraded';
}

function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

function publicView(i: IncidentRecord, updates: TimelineRecord[]): PublicIncident {
  const titled = [...updates].reverse().find((u) => typeof u.details?.title === 'string');
  return {
    id: incidentRef(i.id),
    title: (titled?.details?.title as string | undefined) ?? i.title,
    severity: i.severity,
    state: i.state,
    components: i.components,
    startedAt: new Date(i.startedAt).toISOString(),
    resolvedAt: i.resolvedAt === null ? null : new Date(i.resolvedAt).toISOString(),
    // Newest first, as status pages read.
    updates: [...updates].reverse().map((u) => ({
      at: new Date(u.at).toISOString(),
      status: String(u.details?.status ?? 'update'),
      message: u.text,
    })),
  };
}

export async function statusPage(repo: IncidentRepository, now: number): Promise<StatusPage> {
  const today = dayStart(now);
  const since = today - (HISTORY_DAYS - 1) * DAY_MS;
  const incidents = await repo.activeBetween(since, now + 1);
  const updates = await repo.timeline(
    incidents.map((i) => i.id),
    'update',
  );
  const updatesOf = new Map<number, TimelineRecord[]>();
  for (const u of updates) updatesOf.set(u.incidentId, [...(updatesOf.get(u.incidentId) ?? []), u]);

  const components = statusComponents.map((id) => {
    let state: ComponentState = 'operational';
    for (const i of incidents) {
      if (!i.components.includes(id)) continue;
      state = worse(state, impactAt(i, now) ?? 'operational');
    }
    const history: ComponentState[] = [];
    for (let d = today; d >= since; d -= DAY_MS) {
      let day: ComponentState = 'operational';
      for (const i of incidents) {
        if (i.components.includes(id)) day = worse(day, impactDuring(i, d, d + DAY_MS) ?? 'operational');
      }
      history.push(day);
    }
    return { id, name: componentNames[id], state, history };
  });

  const published = incidents.filter((i) => (updatesOf.get(i.id)?.length ?? 0) > 0);
  const history: StatusPage['history'] = [];
  for (let d = today, n = 0; d >= since; d -= DAY_MS, n++) {
    const state = components.reduce<ComponentState>((s, c) => worse(s, c.history[n]!), 'operational');
    const listed = published
      .filter((i) => impactDuring(i, d, d + DAY_MS) !== null)
      .map((i) => {
        const v = publicView(i, updatesOf.get(i.id)!);
        return { id: v.id, title: v.title };
      });
    history.push({ date: new Date(d).toISOString().slice(0, 10), state, incidents: listed });
  }
  return {
    generatedAt: new Date(now).toISOString(),
    overall: components.reduce<ComponentState>((s, c) => worse(s, c.state), 'operational'),
    components,
    activeIncidents: published
      .filter((i) => i.state !== 'resolved')
      .map((i) => publicView(i, updatesOf.get(i.id)!)),
    history,
  };
}
