import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { createApi, describeError } from './api';
import { ErrorNote } from './components';
import { authMode, storeCredential, storedCredential } from './credential';
import { finishOAuthSignIn, oauthClientId } from './oauth';
import { ActivityPage } from './pages/activity';
import { ServersPage } from './pages/servers';
import { ToolsPage } from './pages/tools';
import { hrefOf, navigate, useCurrentPage, type Page } from './router';
import { SignIn } from './sign-in';
import type { Me } from './types';

const TITLES: Record<Page, string> = { servers: 'Servers', tools: 'Tools', activity: 'Activity' };

export function App() {
  const mode = authMode();
  const [token, setToken] = useState(() => (mode === 'none' ? undefined : storedCredential()));
  const [me, setMe] = useState<Me>();
  const [problem, setProblem] = useState<string>();
  const [notice, setNotice] = useState<string>();
  const page = useCurrentPage();

  const signOut = useCallback((why?: string) => {
    storeCredential(undefined);
    setToken(undefined);
    setMe(undefined);
    setNotice(why);
  }, []);
  const api = useMemo(() => createApi(token, () => signOut('Your credential was refused (expired or revoked). Sign in again.')), [token, signOut]);
  const signedOut = mode !== 'none' && !token;

  // Back from the authorization server: the code becomes the tab's credential.
  useEffect(() => {
    if (mode !== 'oauth') return;
    finishOAuthSignIn().then(
      (granted) => {
        if (!granted) return;
        storeCredential(granted);
        setNotice(undefined);
        setToken(granted);
      },
      (error: unknown) => setNotice(`Sign-in failed: ${describeError(error)}`),
    );
  }, [mode]);

  useEffect(() => {
    if (signedOut) return;
    api.get<Me>('/me').then(
      (who) => {
        setMe(who);
        setProblem(undefined);
      },
      (error: unknown) => setProblem(describeError(error)),
    );
  }, [api, signedOut]);
  useEffect(() => {
    document.title = `${TITLES[page]} · Conflux console`;
  }, [page]);

  if (signedOut) {
    return (
      <SignIn
        notice={notice}
        oauthClientId={mode === 'oauth' ? oauthClientId() : undefined}
        onSignedIn={(value, who) => {
          storeCredential(value);
          setNotice(undefined);
          setToken(value);
          setMe(who);
        }}
      />
    );
  }
  if (!me) {
    return <main id="main">{problem ? <ErrorNote>Could not reach the gateway: {problem}</ErrorNote> : <p class="muted">Loading…</p>}</main>;
  }
  const pages: Page[] = me.admin ? ['servers', 'tools', 'activity'] : ['servers', 'tools'];
  const shown: Page = pages.includes(page) ? page : 'servers';
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Conflux</span>
        <nav aria-label="Console">
          <ul>
            {pages.map((p) => (
              <li key={p}>
                <a
                  href={hrefOf(p)}
                  aria-current={p === shown ? 'page' : undefined}
                  onClick={(event) => {
                    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
                    event.preventDefault();
                    navigate(p);
                  }}
                >
                  {TITLES[p]}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span data-testid="principal">{me.method === 'none' ? 'local user (no authentication)' : me.principal}</span>
          {me.admin ? <span class="badge role">admin</span> : null}
          {mode !== 'none' ? (
            <button type="button" onClick={() => signOut()}>
              Sign out
            </button>
          ) : null}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <h1 class="visually-hidden">{TITLES[shown]}</h1>
        {shown === 'servers' ? <ServersPage api={api} me={me} /> : null}
        {shown === 'tools' ? <ToolsPage api={api} me={me} /> : null}
        {shown === 'activity' && me.admin ? <ActivityPage api={api} /> : null}
      </main>
    </>
  );
}
