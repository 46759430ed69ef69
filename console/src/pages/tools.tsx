import { useEffect, useMemo, useState } from 'preact/hooks';
import { describeError, type Api } from '../api';
import { ErrorNote, Section } from '../components';
import { useLoad } from '../hooks';
import { ResultView } from '../result-view';
import { argumentsFrom, initialValues, type FieldValues } from '../schema-fields.js';
import { SchemaForm } from '../schema-form';
import type { BroadcastStructured, CallToolResult, Me, Tool, ToolSummary } from '../types';

const SEARCH_DELAY_MS = 200;

/** What a search answered, or why it failed, for the query it was made for. */
type SearchAnswer = { query: string; tools?: ToolSummary[]; error?: string };

/** Tools across servers: the ranked search of `conflux__search_tools`, each tool's schema, and a form to call it. */
export function ToolsPage({ api, me }: { api: Api; me: Me }) {
  const [query, setQuery] = useState('');
  const [debounced, setDebounced] = useState('');
  const [selected, setSelected] = useState<string>();
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(query.trim()), SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [query]);
  const all = useLoad(() => api.get<{ tools: ToolSummary[] }>('/tools').then((b) => b.tools), [api]);
  // Each answer, a failure too, carries the query it answers: until the one for this very query
  // is in, the page holds the last query's (or none), and says it is searching rather than count
  // what it holds as this query's matches or show the last query's failure as this one's.
  const found = useLoad(
    () =>
      debounced
        ? api.get<{ tools: ToolSummary[] }>(`/tools?q=${encodeURIComponent(debounced)}`).then(
            (b): SearchAnswer => ({ query: debounced, tools: b.tools }),
            (error: unknown): SearchAnswer => ({ query: debounced, error: describeError(error) }),
          )
        : Promise.resolve(undefined),
    [api, debounced],
  );
  const answer = debounced && found.data?.query === debounced ? found.data : undefined;
  const pending = debounced ? answer === undefined : all.data === undefined && !all.error;
  const tools = debounced ? (answer?.tools ?? []) : (all.data ?? []);
  // Tools that several servers offer under the same name can be broadcast.
  const offeredBy = useMemo(() => {
    const servers = new Map<string, string[]>();
    for (const tool of all.data ?? []) {
      if (!tool.originalName || !tool.server) continue;
      servers.set(tool.originalName, [...(servers.get(tool.originalName) ?? []), tool.server]);
    }
    return servers;
  }, [all.data]);

  return (
    <div class="tools-layout">
      <Section title="Tools" id="tools-heading">
        <div class="field">
          <label for="tool-search">Search tools</label>
          <input id="tool-search" type="search" value={query} placeholder="name, description or parameter" aria-describedby="tool-search-help" onInput={(e) => setQuery(e.currentTarget.value)} />
          <small id="tool-search-help" class="help">
            Ranked as <code>conflux__search_tools</code> ranks them.
          </small>
        </div>
        {all.error || answer?.error ? <ErrorNote>{all.error ?? answer?.error}</ErrorNote> : null}
        <p class="muted" role="status" aria-live="polite">
          {pending
            ? debounced
              ? `Searching for "${debounced}"…`
              : 'Loading tools…'
            : answer?.error
              ? `The search for "${debounced}" failed`
              : debounced
                ? `${tools.length} tools match "${debounced}"`
                : `${tools.length} tools`}
        </p>
        <ul class="tool-list" aria-label="Tools">
          {tools.map((tool) => (
            <li key={tool.name}>
              <button type="button" class={`tool-item ${selected === tool.name ? 'selected' : ''}`} aria-pressed={selected === tool.name} onClick={() => setSelected(tool.name)}>
                <span class="tool-name">{tool.name}</span>
                {tool.server ? <span class="tag">{tool.server}</span> : null}
                {tool.description ? <small class="muted block">{tool.title ? `${tool.title}: ` : ''}{tool.description}</small> : null}
              </button>
            </li>
          ))}
        </ul>
      </Section>
      {selected ? <ToolDetail key={selected} api={api} name={selected} me={me} offeredBy={offeredBy} /> : <p class="muted panel">Choose a tool to see its schema and call it.</p>}
    </div>
  );
}

function ToolDetail({ api, name, offeredBy }: { api: Api; name: string; me: Me; offeredBy: Map<string, string[]> }) {
  const tool = useLoad(() => api.get<Tool>(`/tools/${encodeURIComponent(name)}`), [api, name]);
  const [values, setValues] = useState<FieldValues>({});
  const [problems, setProblems] = useState<Record<string, string>>({});
  const [calling, setCalling] = useState(false);
  const [outcome, setOutcome] = useState<{ result: CallToolResult; durationMs: number } | { error: string }>();
  useEffect(() => {
    if (tool.data) setValues(initialValues(tool.data.inputSchema));
  }, [tool.data]);

  if (tool.error) return <ErrorNote>{tool.error}</ErrorNote>;
  if (!tool.data) return <p class="muted panel">Loading {name}…</p>;
  const t = tool.data;
  const servers = t.route.originalName ? (offeredBy.get(t.route.originalName) ?? []) : [];

  // It shows its own failure, so the form starts it with `void`.
  const call = async (event: Event) => {
    event.preventDefault();
    const built = argumentsFrom(t.inputSchema, values);
    if ('problems' in built) {
      setProblems(built.problems);
      return;
    }
    setProblems({});
    setCalling(true);
    setOutcome(undefined);
    try {
      setOutcome(await api.send<{ result: CallToolResult; durationMs: number }>('POST', `/tools/${encodeURIComponent(t.name)}/call`, built.arguments));
    } catch (error) {
      setOutcome({ error: describeError(error) });
    } finally {
      setCalling(false);
    }
  };

  return (
    <Section title={t.name} id="tool-detail-heading">
      <p>
        {t.route.server ? (
          <>
            on <strong>{t.route.server}</strong>
            {t.route.originalName && t.route.originalName !== t.name ? (
              <>
                {' '}
                as <code>{t.route.originalName}</code>
              </>
            ) : null}
          </>
        ) : null}
      </p>
      {t.title ? <p class="tool-title">{t.title}</p> : null}
      {t.description ? <p class="description">{t.description}</p> : null}
      <details>
        <summary>Input schema</summary>
        <pre>{JSON.stringify(t.inputSchema, null, 2)}</pre>
      </details>
      {t.outputSchema ? (
        <details>
          <summary>Output schema</summary>
          <pre>{JSON.stringify(t.outputSchema, null, 2)}</pre>
        </details>
      ) : null}
      <form onSubmit={(event) => void call(event)} noValidate aria-label={`Call ${t.name}`}>
        <h3>Call</h3>
        <SchemaForm schema={t.inputSchema} idPrefix="arg" values={values} problems={problems} onChange={setValues} />
        <button type="submit" disabled={calling}>
          {calling ? 'Calling…' : 'Call tool'}
        </button>
      </form>
      <div aria-live="polite">
        {outcome && 'error' in outcome ? <ErrorNote>Call failed: {outcome.error}</ErrorNote> : null}
        {outcome && 'result' in outcome ? <ResultView result={outcome.result} durationMs={outcome.durationMs} /> : null}
      </div>
      {servers.length > 1 && t.route.originalName ? <Broadcast api={api} tool={t.route.originalName} servers={servers} schema={t} /> : null}
    </Section>
  );
}

/** Runs a tool (by its own name) on several servers at once, with the arguments of its form. */
function Broadcast({ api, tool, servers, schema }: { api: Api; tool: string; servers: string[]; schema: Tool }) {
  const [chosen, setChosen] = useState<Set<string>>(() => new Set(servers));
  const [values, setValues] = useState<FieldValues>(() => initialValues(schema.inputSchema));
  const [problems, setProblems] = useState<Record<string, string>>({});
  const [running, setRunning] = useState(false);
  const [outcome, setOutcome] = useState<{ result: CallToolResult } | { error: string }>();
  // It shows its own failure, so the form starts it with `void`.
  const run = async (event: Event) => {
    event.preventDefault();
    const built = argumentsFrom(schema.inputSchema, values);
    if ('problems' in built) {
      setProblems(built.problems);
      return;
    }
    setProblems({});
    setRunning(true);
    setOutcome(undefined);
    try {
      setOutcome({ result: await api.send<CallToolResult>('POST', '/broadcast', { tool, arguments: built.arguments, servers: [...chosen] }) });
    } catch (error) {
      setOutcome({ error: describeError(error) });
    } finally {
      setRunning(false);
    }
  };
  const structured = outcome && 'result' in outcome ? (outcome.result.structuredContent as BroadcastStructured | undefined) : undefined;
  return (
    <form class="broadcast" onSubmit={(event) => void run(event)} noValidate aria-labelledby="broadcast-heading">
      <h3 id="broadcast-heading">
        Broadcast <code>{tool}</code>
      </h3>
      <fieldset>
        <legend>Servers</legend>
        {servers.map((server) => (
          <label key={server} class="inline">
            <input
              type="checkbox"
              checked={chosen.has(server)}
              onChange={(e) => {
                const next = new Set(chosen);
                if (e.currentTarget.checked) next.add(server);
                else next.delete(server);
                setChosen(next);
              }}
            />{' '}
            {server}
          </label>
        ))}
      </fieldset>
      <SchemaForm schema={schema.inputSchema} idPrefix="broadcast-arg" values={values} problems={problems} onChange={setValues} />
      <button type="submit" disabled={running || chosen.size === 0}>
        {running ? 'Running…' : `Run on ${chosen.size} servers`}
      </button>
      <div aria-live="polite">
        {outcome && 'error' in outcome ? <ErrorNote>Broadcast failed: {outcome.error}</ErrorNote> : null}
        {structured ? (
          <div class="broadcast-results" data-testid="broadcast-results">
            <p>
              <strong>
                {structured.succeeded}/{structured.total} servers succeeded
              </strong>{' '}
              <span class="muted">· {structured.durationMs} ms</span>
            </p>
            {Object.entries(structured.results).map(([server, result]) => (
              <ResultView key={server} result={result} label={server} />
            ))}
            {Object.entries(structured.errors).map(([server, message]) => (
              <div key={server} class="result result-error">
                <p class="result-head">
                  <strong>Failed</strong> · {server}
                </p>
                <pre>{message}</pre>
              </div>
            ))}
          </div>
        ) : null}
      </div>
    </form>
  );
}
