import { useState } from 'preact/hooks';
import { describeError, type Api } from '../api';
import { ErrorNote, Section, StateBadge, Time } from '../components';
import { useLoad } from '../hooks';
import type { Connection, Me, Server } from '../types';
import { RegisterServer } from './register-server';

const REFRESH_MS = 3000;

/** Upstream servers: states, tools, errors; admins restart, enable, disable, remove and register them. */
export function ServersPage({ api, me }: { api: Api; me: Me }) {
  const servers = useLoad(() => api.get<{ servers: Server[] }>('/servers').then((b) => b.servers), [api], REFRESH_MS);
  const [busy, setBusy] = useState<string>();
  const [status, setStatus] = useState<{ text: string; error: boolean }>();

  // It shows its own failure in the status line, so the buttons start it with `void`.
  const act = async (server: string, what: string, run: () => Promise<unknown>) => {
    setBusy(server);
    setStatus(undefined);
    try {
      await run();
      setStatus({ text: `${what}: done`, error: false });
    } catch (error) {
      setStatus({ text: `${what}: ${describeError(error)}`, error: true });
    } finally {
      setBusy(undefined);
      servers.reload();
    }
  };
  const list = servers.data ?? [];
  const perUser = list.filter((s) => s.perUser);

  return (
    <>
      <Section
        title="Servers"
        id="servers-heading"
        actions={
          <button type="button" onClick={servers.reload} disabled={servers.loading}>
            Refresh
          </button>
        }
      >
        {servers.error ? <ErrorNote>Could not load the servers: {servers.error}</ErrorNote> : null}
        <p class="sr-status" role="status" aria-live="polite">
          {status ? status.text : ''}
        </p>
        {status?.error ? <ErrorNote>{status.text}</ErrorNote> : null}
        <div class="table-wrap">
          <table class="servers">
            <caption class="visually-hidden">Upstream servers and their states</caption>
            <thead>
              <tr>
                <th scope="col">Server</th>
                <th scope="col">State</th>
                <th scope="col">Transport</th>
                <th scope="col">Tags</th>
                <th scope="col" class="num">
                  Tools
                </th>
                {me.admin ? <th scope="col">Last error</th> : null}
                {me.admin ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {list.length === 0 && !servers.loading ? (
                <tr>
                  <td colSpan={me.admin ? 7 : 5} class="muted">
                    No servers you may see.
                  </td>
                </tr>
              ) : null}
              {list.map((server) => (
                <tr key={server.name} data-server={server.name}>
                  <th scope="row">
                    <span class="server-name">{server.name}</span>
                    {server.description ? <small class="muted block">{server.description}</small> : null}
                    {server.url ? <small class="muted block">{server.url}</small> : null}
                    {server.perUser ? <small class="muted block">one instance per user</small> : null}
                  </th>
                  <td>
                    <StateBadge state={server.state} />
                    {server.replicas ? (
                      <small class="muted block">
                        {server.replicas.filter((r) => r.state === 'ready').length}/{server.replicas.length} replicas ready
                      </small>
                    ) : null}
                  </td>
                  <td>{server.transport}</td>
                  <td>
                    {server.tags.map((tag) => (
                      <span class="tag" key={tag}>
                        {tag}
                      </span>
                    ))}
                  </td>
                  <td class="num">{server.toolCount}</td>
                  {me.admin ? <td class="last-error">{server.lastError ?? <span class="muted">—</span>}</td> : null}
                  {me.admin ? (
                    <td class="actions">
                      <button type="button" disabled={busy === server.name} onClick={() => void act(server.name, `Restart ${server.name}`, () => api.send('POST', `/servers/${encodeURIComponent(server.name)}/restart`))}>
                        Restart<span class="visually-hidden"> {server.name}</span>
                      </button>
                      {server.source !== undefined && server.source !== 'config' ? (
                        <>
                          <button
                            type="button"
                            disabled={busy === server.name}
                            onClick={() =>
                              void act(server.name, `${server.enabled === false ? 'Enable' : 'Disable'} ${server.name}`, () =>
                                api.send('PATCH', `/servers/${encodeURIComponent(server.name)}`, { enabled: server.enabled === false }),
                              )
                            }
                          >
                            {server.enabled === false ? 'Enable' : 'Disable'}
                            <span class="visually-hidden"> {server.name}</span>
                          </button>
                          <button
                            type="button"
                            class="danger"
                            disabled={busy === server.name}
                            onClick={() => confirm(`Remove the server "${server.name}"?`) && void act(server.name, `Remove ${server.name}`, () => api.send('DELETE', `/servers/${encodeURIComponent(server.name)}`))}
                          >
                            Remove<span class="visually-hidden"> {server.name}</span>
                          </button>
                        </>
                      ) : (
                        <small class="muted block">defined in the config file</small>
                      )}
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Section>
      {perUser.length ? <Connections api={api} servers={perUser} /> : null}
      {me.admin ? <RegisterServer api={api} onRegistered={servers.reload} /> : null}
    </>
  );
}

/** The caller's own authorisations of servers that act for each user. */
function Connections({ api, servers }: { api: Api; servers: Server[] }) {
  // Polled: an authorization finishes in another tab, at the authorization server and the gateway's callback.
  const connections = useLoad(() => api.get<{ connections: Connection[] }>('/connections').then((b) => b.connections), [api], 5000);
  const [problem, setProblem] = useState<string>();
  // These two show their own failure, so the buttons start them with `void`.
  const connect = async (server: string) => {
    setProblem(undefined);
    try {
      const { authorizationUrl } = await api.send<{ authorizationUrl: string }>('POST', `/connections/${encodeURIComponent(server)}`);
      window.open(authorizationUrl, '_blank', 'noopener,noreferrer');
    } catch (error) {
      setProblem(describeError(error));
    }
  };
  const revoke = async (server: string) => {
    setProblem(undefined);
    try {
      await api.send('DELETE', `/connections/${encodeURIComponent(server)}`);
    } catch (error) {
      setProblem(describeError(error));
    }
    connections.reload();
  };
  const byServer = new Map((connections.data ?? []).map((c) => [c.server, c]));
  return (
    <Section title="Your connections" id="connections-heading">
      <p class="muted">Servers that act for each user need your own authorisation: Connect opens the sign-in in a new tab.</p>
      {connections.error ? <ErrorNote>{connections.error}</ErrorNote> : null}
      {problem ? <ErrorNote>{problem}</ErrorNote> : null}
      <ul class="plain">
        {servers.map((server) => {
          const connection = byServer.get(server.name);
          return (
            <li key={server.name} data-connection={server.name}>
              <strong>{server.name}</strong>{' '}
              {connection ? (
                <>
                  connected <Time iso={connection.createdAt} />
                  {connection.expiresAt ? (
                    <>
                      , expires <Time iso={connection.expiresAt} />
                    </>
                  ) : null}{' '}
                  <button type="button" onClick={() => void revoke(server.name)}>
                    Revoke<span class="visually-hidden"> {server.name}</span>
                  </button>
                </>
              ) : (
                <>
                  <span class="muted">not connected</span>{' '}
                  <button type="button" onClick={() => void connect(server.name)}>
                    Connect<span class="visually-hidden"> {server.name}</span>
                  </button>
                </>
              )}
            </li>
          );
        })}
      </ul>
    </Section>
  );
}
