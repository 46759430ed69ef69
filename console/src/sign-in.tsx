import { useState } from 'preact/hooks';
import { ApiError, createApi, describeError } from './api';
import { startOAuthSignIn } from './oauth';
import type { Me } from './types';

interface SignInProps {
  onSignedIn(token: string, me: Me): void;
  notice?: string | undefined;
  /** With OAuth sign-in offered: the console's client id at the authorization server. */
  oauthClientId?: string | undefined;
}

/** Signing in at the authorization server, or with a pasted API key or token the gateway accepts (sent as `Authorization: Bearer`). */
export function SignIn({ onSignedIn, notice, oauthClientId }: SignInProps) {
  const [token, setToken] = useState('');
  const [redirecting, setRedirecting] = useState(false);
  const [problem, setProblem] = useState<string>();
  const [checking, setChecking] = useState(false);
  // It shows its own failure, so the form starts it with `void`.
  const submit = async (event: Event) => {
    event.preventDefault();
    const value = token.trim();
    if (!value) {
      setProblem('Paste an API key or a token.');
      return;
    }
    setChecking(true);
    setProblem(undefined);
    try {
      const me = await createApi(value, () => {}).get<Me>('/me');
      onSignedIn(value, me);
    } catch (error) {
      setProblem(error instanceof ApiError && error.status === 401 ? 'The gateway does not accept this key or token.' : describeError(error));
    } finally {
      setChecking(false);
    }
  };
  return (
    <main class="sign-in" id="main">
      <h1>Conflux console</h1>
      <form onSubmit={(event) => void submit(event)} noValidate>
        <h2>Sign in</h2>
        {notice ? (
          <p class="notice" role="alert">
            {notice}
          </p>
        ) : null}
        {oauthClientId ? (
          <div class="oauth">
            <button
              type="button"
              class="primary"
              disabled={redirecting}
              onClick={() => {
                setRedirecting(true);
                setProblem(undefined);
                startOAuthSignIn(oauthClientId).catch((error: unknown) => {
                  setRedirecting(false);
                  setProblem(`Could not start the sign-in: ${describeError(error)}`);
                });
              }}
            >
              {redirecting ? 'Redirecting…' : 'Sign in with the authorization server'}
            </button>
            <p class="muted">or paste a key or token:</p>
          </div>
        ) : null}
        <div class="field">
          <label for="credential">API key or token</label>
          <input
            id="credential"
            type="password"
            autocomplete="off"
            value={token}
            aria-describedby="credential-help"
            aria-invalid={problem ? true : undefined}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
          <small id="credential-help" class="help">
            An API key (<code>cfx_…</code>) or a bearer token this gateway accepts. Kept in this tab only, until you close it or sign out.
          </small>
        </div>
        {problem ? (
          <p class="problem" role="alert">
            {problem}
          </p>
        ) : null}
        <button type="submit" disabled={checking}>
          {checking ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
