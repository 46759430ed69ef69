import { useEffect, useRef, useState } from 'preact/hooks';
import { describeError, type Api } from '../api';
import { LineChart, type Series } from '../chart';
import { ErrorNote, Section, Time } from '../components';
import { useLoad } from '../hooks';
import { ratesBetween, toolTotals, type RatePoint, type ToolTotals } from '../metrics';
import type { AuditEvent, McpSession, ToolSummary } from '../types';

const SCRAPE_MS = 2000;
const WINDOW_MS = 120_000;

/** For admins: live call rates and latency per server, open MCP sessions, and the audit trail. */
export function ActivityPage({ api }: { api: Api }) {
  return (
    <>
      <Charts api={api} />
      <Sessions api={api} />
      <Audit api={api} />
    </>
  );
}

function Charts({ api }: { api: Api }) {
  const [points, setPoints] = useState<RatePoint[]>([]);
  const [problem, setProblem] = useState<string>();
  const previous = useRef<ToolTotals | undefined>(undefined);
  const serverOf = useRef(new Map<string, string>());
  useEffect(() => {
    let stopped = false;
    const tools = () =>
      api.get<{ tools: ToolSummary[] }>('/tools').then((b) => {
        serverOf.current = new Map(b.tools.filter((t) => t.server).map((t) => [t.name, t.server!]));
      });
    const scrape = async () => {
      try {
        const totals = toolTotals(await api.metrics(), Date.now(), (tool) => serverOf.current.get(tool));
        if (stopped) return;
        if (previous.current) {
          const point = ratesBetween(previous.current, totals);
          setPoints((list) => [...list.filter((p) => p.at >= point.at - WINDOW_MS), point]);
        }
        previous.current = totals;
        setProblem(undefined);
      } catch (error) {
        setProblem(describeError(error));
      }
    };
    void tools().catch(() => {}).then(scrape);
    const timer = setInterval(() => document.visibilityState === 'visible' && void scrape(), SCRAPE_MS);
    const toolTimer = setInterval(() => void tools().catch(() => {}), 30_000);
    return () => {
      stopped = true;
      clearInterval(timer);
      clearInterval(toolTimer);
    };
  }, [api]);
  const servers = [...new Set(points.flatMap((p) => [...p.values.keys()]))].sort();
  const series = (pick: (v: { perSecond: number; latencyMs: number | undefined }) => number | undefined): Series[] =>
    servers.map((name) => ({ name, points: points.map((p) => ({ at: p.at, value: p.values.has(name) ? pick(p.values.get(name)!) : undefined })) }));
  return (
    <Section title="Calls" id="charts-heading">
      <p class="muted">From this gateway's /metrics, every {SCRAPE_MS / 1000} s.</p>
      {problem ? <ErrorNote>Could not read the metrics: {problem}</ErrorNote> : null}
      <div class="charts">
        <LineChart title="Calls per second by server" unit="calls/s" series={series((v) => v.perSecond)} windowMs={WINDOW_MS} />
        <LineChart title="Mean latency by server" unit="ms" series={series((v) => v.latencyMs)} windowMs={WINDOW_MS} />
      </div>
    </Section>
  );
}

function Sessions({ api }: { api: Api }) {
  const sessions = useLoad(() => api.get<{ sessions: McpSession[] }>('/mcp-sessions').then((b) => b.sessions), [api], 5000);
  const list = sessions.data ?? [];
  return (
    <Section title="Open sessions" id="sessions-heading">
      {sessions.error ? <ErrorNote>{sessions.error}</ErrorNote> : null}
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">MCP sessions open on this gateway process, by principal</caption>
          <thead>
            <tr>
              <th scope="col">Principal</th>
              <th scope="col">Client</th>
              <th scope="col">Protocol</th>
              <th scope="col">Session</th>
              <th scope="col">Opened</th>
              <th scope="col">Last request</th>
              <th scope="col" class="num">
                Streams
              </th>
              <th scope="col" class="num">
                Calls
              </th>
            </tr>
          </thead>
          <tbody>
            {list.length === 0 ? (
              <tr>
                <td colSpan={8} class="muted">
                  No open sessions.
                </td>
              </tr>
            ) : null}
            {list.map((s) => (
              <tr key={s.id + s.createdAt}>
                <th scope="row">{s.principal}</th>
                <td>{s.client ? `${s.client.name} ${s.client.version}` : <span class="muted">—</span>}</td>
                <td>{s.protocolVersion ?? '—'}</td>
                <td>
                  <code>{s.id}</code>
                  {s.origin === 'rebuilt' ? <small class="muted block">opened on another replica</small> : null}
                </td>
                <td>
                  <Time iso={s.createdAt} />
                </td>
                <td>
                  <Time iso={s.lastSeenAt} />
                </td>
                <td class="num">{s.openStreams}</td>
                <td class="num">{s.activeCalls}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Section>
  );
}

interface AuditFilters {
  principal: string;
  server: string;
  status: '' | 'ok' | 'error' | 'denied';
  from: string;
  to: string;
}

const NO_FILTERS: AuditFilters = { principal: '', server: '', status: '', from: '', to: '' };
const PAGE = 50;

function Audit({ api }: { api: Api }) {
  const [draft, setDraft] = useState<AuditFilters>(NO_FILTERS);
  const [filters, setFilters] = useState<AuditFilters>(NO_FILTERS);
  const [offset, setOffset] = useState(0);
  const audit = useLoad(() => api.get<{ total: number; events: AuditEvent[] }>(`/audit?${auditQuery(filters, offset)}`), [api, filters, offset], 10_000);
  const set = <K extends keyof AuditFilters>(key: K, value: AuditFilters[K]) => setDraft((d) => ({ ...d, [key]: value }));
  const events = audit.data?.events ?? [];
  const total = audit.data?.total ?? 0;
  return (
    <Section title="Audit events" id="audit-heading">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setFilters(draft);
        }}
        aria-label="Audit filters"
      >
        <div class="field">
          <label for="audit-principal">Principal</label>
          <input id="audit-principal" value={draft.principal} onInput={(e) => set('principal', e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="audit-server">Server</label>
          <input id="audit-server" value={draft.server} onInput={(e) => set('server', e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="audit-status">Status</label>
          <select id="audit-status" value={draft.status} onChange={(e) => set('status', e.currentTarget.value as AuditFilters['status'])}>
            <option value="">any</option>
            <option value="ok">ok</option>
            <option value="error">error</option>
            <option value="denied">denied</option>
          </select>
        </div>
        <div class="field">
          <label for="audit-from">From</label>
          <input id="audit-from" type="datetime-local" value={draft.from} onInput={(e) => set('from', e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="audit-to">To</label>
          <input id="audit-to" type="datetime-local" value={draft.to} onInput={(e) => set('to', e.currentTarget.value)} />
        </div>
        <button type="submit">Apply filters</button>
        <button
          type="button"
          onClick={() => {
            setDraft(NO_FILTERS);
            setFilters(NO_FILTERS);
            setOffset(0);
          }}
        >
          Clear
        </button>
      </form>
      {audit.error ? <ErrorNote>{audit.error}</ErrorNote> : null}
      <p class="muted" role="status" aria-live="polite">
        {total ? `Events ${offset + 1}–${offset + events.length} of ${total}, newest first` : audit.loading ? '' : 'No events.'}
      </p>
      <div class="table-wrap">
        <table class="audit">
          <caption class="visually-hidden">Audit events, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Principal</th>
              <th scope="col">Kind</th>
              <th scope="col">Server</th>
              <th scope="col">Target</th>
              <th scope="col">Status</th>
              <th scope="col" class="num">
                ms
              </th>
              <th scope="col">Via</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.id}>
                <td>
                  <Time iso={e.at} />
                </td>
                <td>{e.principal}</td>
                <td>{e.kind}</td>
                <td>{e.server ?? '—'}</td>
                <td>
                  <code>{e.target}</code>
                  {e.error ? <small class="muted block">{e.error}</small> : null}
                </td>
                <td>
                  <span class={`badge status-${e.status}`}>{e.status}</span>
                </td>
                <td class="num">{e.durationMs === undefined ? '—' : Math.round(e.durationMs)}</td>
                <td>{e.channel}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="pager">
        <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Newer
        </button>
        <button type="button" disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>
          Older
        </button>
      </div>
    </Section>
  );
}

/** The API query of the filters (datetime-local values are the reader's local time). */
function auditQuery(filters: AuditFilters, offset: number): string {
  const query = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  if (filters.principal.trim()) query.set('principal', filters.principal.trim());
  if (filters.server.trim()) query.set('server', filters.server.trim());
  if (filters.status) query.set('status', filters.status);
  if (filters.from) query.set('from', new Date(filters.from).toISOString());
  if (filters.to) query.set('to', new Date(filters.to).toISOString());
  return query.toString();
}
