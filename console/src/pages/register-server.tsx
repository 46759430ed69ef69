import type { JSX } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { z } from 'zod';
import { ServerConfigSchema, ServerNameSchema } from '../../../src/config/schema.js';
import { describeError, type Api } from '../api';
import { Section } from '../components';

// zod compiles fast paths with `new Function` when it may; the console's policy forbids eval.
z.config({ jitless: true });

type Transport = 'streamable-http' | 'sse' | 'stdio';

interface Draft {
  name: string;
  transport: Transport;
  url: string;
  command: string;
  args: string;
  tags: string;
  description: string;
  enabled: boolean;
  extra: string;
}

const EMPTY: Draft = { name: '', transport: 'streamable-http', url: '', command: '', args: '', tags: '', description: '', enabled: true, extra: '' };

/** The definition the API is sent: what the form holds, as the config file would say it. */
function definitionOf(draft: Draft): { definition: Record<string, unknown> } | { problem: string } {
  let extra: Record<string, unknown> = {};
  if (draft.extra.trim()) {
    try {
      const parsed: unknown = JSON.parse(draft.extra);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { problem: 'expected a JSON object' };
      extra = parsed as Record<string, unknown>;
    } catch {
      return { problem: 'expected a JSON object' };
    }
  }
  const tags = draft.tags.split(',').map((t) => t.trim()).filter(Boolean);
  const common = {
    ...(tags.length ? { tags } : {}),
    ...(draft.description.trim() ? { description: draft.description.trim() } : {}),
    ...(draft.enabled ? {} : { enabled: false }),
  };
  const wire =
    draft.transport === 'stdio'
      ? { transport: 'stdio', command: draft.command.trim(), ...(draft.args.trim() ? { args: draft.args.split('\n').map((a) => a.trim()).filter(Boolean) } : {}) }
      : { transport: draft.transport, url: draft.url.trim() };
  return { definition: { ...wire, ...common, ...extra } };
}

/** The problems of a draft by field, from the same schemas the API validates with. */
function problemsOf(draft: Draft): Record<string, string> {
  const problems: Record<string, string> = {};
  const name = ServerNameSchema.safeParse(draft.name);
  if (!name.success) problems.name = name.error.issues.map((i) => i.message).join('; ');
  const built = definitionOf(draft);
  if ('problem' in built) {
    problems.extra = built.problem;
    return problems;
  }
  const parsed = ServerConfigSchema.safeParse(built.definition);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = FIELD_OF[String(issue.path[0] ?? '')] ?? 'extra';
      const where = key === 'extra' && issue.path.length ? `${issue.path.join('.')}: ` : '';
      problems[key] = problems[key] ? `${problems[key]}; ${where}${issue.message}` : `${where}${issue.message}`;
    }
  }
  return problems;
}

const FIELD_OF: Record<string, keyof Draft> = { transport: 'transport', url: 'url', command: 'command', args: 'args', tags: 'tags', description: 'description', enabled: 'enabled' };

/** Registers a server (stored in the database), validated as the API validates it before it is sent. */
export function RegisterServer({ api, onRegistered }: { api: Api; onRegistered(): void }) {
  const [draft, setDraft] = useState<Draft>(EMPTY);
  const [touched, setTouched] = useState(false);
  const [outcome, setOutcome] = useState<{ text: string; error: boolean }>();
  const [sending, setSending] = useState(false);
  const problems = useMemo(() => problemsOf(draft), [draft]);
  const shown = touched ? problems : {};
  const set = <K extends keyof Draft>(key: K, value: Draft[K]) => setDraft((d) => ({ ...d, [key]: value }));

  // It shows its own failure, so the form starts it with `void`.
  const submit = async (event: Event) => {
    event.preventDefault();
    setTouched(true);
    setOutcome(undefined);
    if (Object.keys(problems).length) return;
    const built = definitionOf(draft);
    if ('problem' in built) return;
    setSending(true);
    try {
      await api.send('POST', '/servers', { name: draft.name, ...built.definition });
      setOutcome({ text: `Registered "${draft.name}".`, error: false });
      setDraft(EMPTY);
      setTouched(false);
      onRegistered();
    } catch (error) {
      setOutcome({ text: describeError(error), error: true });
    } finally {
      setSending(false);
    }
  };

  const field = (key: keyof Draft, label: string, input: (id: string, describedBy: string | undefined) => JSX.Element, help?: string, kind = '') => {
    const id = `register-${key}`;
    const problemId = shown[key] ? `${id}-problem` : undefined;
    const helpId = help ? `${id}-help` : undefined;
    return (
      <div class={`field ${kind}`}>
        <label for={id}>{label}</label>
        {input(id, [helpId, problemId].filter(Boolean).join(' ') || undefined)}
        {help ? (
          <small id={helpId} class="help">
            {help}
          </small>
        ) : null}
        {problemId ? (
          <small id={problemId} class="problem">
            {shown[key]}
          </small>
        ) : null}
      </div>
    );
  };

  return (
    <Section title="Register a server" id="register-heading">
      <form class="register" onSubmit={(event) => void submit(event)} noValidate aria-describedby="register-note">
        <p id="register-note" class="muted">
          Stored in the gateway's database and connected at once. Checked with the same schema as the API and the config file.
        </p>
        <div class="fields">
          {field('name', 'Name', (id, d) => <input id={id} value={draft.name} aria-describedby={d} aria-invalid={shown.name ? true : undefined} onInput={(e) => set('name', e.currentTarget.value)} />)}
          {field('transport', 'Transport', (id, d) => (
            <select id={id} value={draft.transport} aria-describedby={d} onChange={(e) => set('transport', e.currentTarget.value as Transport)}>
              <option value="streamable-http">Streamable HTTP</option>
              <option value="sse">SSE (legacy)</option>
              <option value="stdio">stdio (a command the gateway runs)</option>
            </select>
          ))}
          {draft.transport === 'stdio' ? (
            <>
              {field('command', 'Command', (id, d) => <input id={id} value={draft.command} aria-describedby={d} aria-invalid={shown.command ? true : undefined} onInput={(e) => set('command', e.currentTarget.value)} />)}
              {field(
                'args',
                'Arguments',
                (id, d) => <textarea id={id} rows={3} value={draft.args} aria-describedby={d} onInput={(e) => set('args', e.currentTarget.value)} />,
                'One per line.',
                'field-wide',
              )}
            </>
          ) : (
            field('url', 'URL', (id, d) => <input id={id} type="url" value={draft.url} placeholder="https://mcp.example.com/mcp" aria-describedby={d} aria-invalid={shown.url ? true : undefined} onInput={(e) => set('url', e.currentTarget.value)} />)
          )}
          {field('tags', 'Tags', (id, d) => <input id={id} value={draft.tags} aria-describedby={d} onInput={(e) => set('tags', e.currentTarget.value)} />, 'Comma-separated.')}
          {field('description', 'Description', (id, d) => <input id={id} value={draft.description} aria-describedby={d} onInput={(e) => set('description', e.currentTarget.value)} />)}
          {field(
            'enabled',
            'Enabled',
            (id, d) => <input id={id} type="checkbox" checked={draft.enabled} aria-describedby={d} onChange={(e) => set('enabled', e.currentTarget.checked)} />,
            'Connect it now; a disabled server is stored and its tools are not offered.',
            'field-boolean',
          )}
          {field(
            'extra',
            'More fields (JSON)',
            (id, d) => <textarea id={id} rows={3} value={draft.extra} spellcheck={false} placeholder='{"headers": {"Authorization": "Bearer ${TOKEN}"}}' aria-describedby={d} onInput={(e) => set('extra', e.currentTarget.value)} />,
            'Any other field of a server definition (headers, auth, timeout, prefix, tools...).',
            'field-wide',
          )}
        </div>
        <button type="submit" disabled={sending}>
          Register
        </button>
        <p role="status" aria-live="polite" class={outcome?.error ? 'problem' : 'ok'}>
          {outcome?.text ?? ''}
        </p>
      </form>
    </Section>
  );
}

