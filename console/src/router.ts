import { useEffect, useState } from 'preact/hooks';

/** The console's pages live under /ui; the gateway answers every such path with the console. */
export const BASE = '/ui';

export type Page = 'servers' | 'tools' | 'activity';

/** The page a location names (the servers page for `/ui` itself and anything unknown). */
export function pageOf(pathname: string): Page {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const first = rest.replace(/^\/+/, '').split('/')[0];
  return first === 'tools' || first === 'activity' ? first : 'servers';
}

export function hrefOf(page: Page): string {
  return page === 'servers' ? `${BASE}/` : `${BASE}/${page}`;
}

const listeners = new Set<() => void>();

export function navigate(page: Page): void {
  if (pageOf(location.pathname) === page) return;
  history.pushState(null, '', hrefOf(page));
  for (const listener of listeners) listener();
}

/** The current page, following links and the browser's back and forward buttons. */
export function useCurrentPage(): Page {
  const [page, setPage] = useState(() => pageOf(location.pathname));
  useEffect(() => {
    const update = () => setPage(pageOf(location.pathname));
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return page;
}
