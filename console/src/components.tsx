import type { ComponentChildren } from 'preact';
import type { UpstreamState } from './types';

const STATE_LABELS: Record<UpstreamState, string> = {
  ready: 'ready',
  connecting: 'connecting',
  degraded: 'degraded',
  down: 'down',
  misconfigured: 'misconfigured',
  disabled: 'disabled',
};

/** A server's state: its word, coloured (the colour repeats the word, never replaces it). */
export function StateBadge({ state }: { state: UpstreamState }) {
  return <span class={`badge state-${state}`}>{STATE_LABELS[state] ?? state}</span>;
}

export function ErrorNote({ children }: { children: ComponentChildren }) {
  return (
    <p class="error-note" role="alert">
      {children}
    </p>
  );
}

export function Section({ title, id, children, actions }: { title: string; id: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section aria-labelledby={id} class="panel">
      <div class="panel-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** A time as the reader's locale shows it, with the exact value on hover. */
export function Time({ iso }: { iso: string | undefined }) {
  if (!iso) return <span class="muted">—</span>;
  const date = new Date(iso);
  return (
    <time dateTime={iso} title={iso}>
      {date.toLocaleString()}
    </time>
  );
}
