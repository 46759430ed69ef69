import { isReplicated, type ServerConfig } from '../config/schema.js';
import { publicUrl, redactArguments, redactAuth, redactUrl, redactValues } from '../observability/redact.js';
import type { ReplicaStatus } from '../upstream/upstream.js';
import type { UpstreamStatus } from '../upstream/upstream-connection.js';

/**
 * What a caller that is not an admin may know about a server: enough to pick and use it.
 * Its command, arguments, environment, headers and URL credentials are the operator's, and
 * so are its errors (they quote the upstream) and its process.
 */
export interface PublicServerView {
  name: string;
  state: UpstreamStatus['state'];
  transport: ServerConfig['transport'];
  description: string | undefined;
  tags: string[];
  toolCount: number;
  /** HTTP servers only: scheme, host and port; no credentials, path (it may hold a key), query or fragment. */
  url?: string;
  /** Set when each user gets an instance of their own (`shared: false`, or the user's own identity). */
  perUser?: true;
  /** A server with `urls`: each replica's name (scheme, host and port, as `url` above) and state. */
  replicas?: { replica: string; state: UpstreamStatus['state'] }[];
}

/** The part of a status (or of a server not yet connected) that a public view is made of. */
export type ServerSummary = Pick<UpstreamStatus, 'name' | 'state' | 'transport' | 'description' | 'tags' | 'toolCount'> & { perUser?: true | undefined; replicas?: readonly ReplicaStatus[] | undefined };

/** The view of a server for a caller that is not an admin. */
export function publicServerView(summary: ServerSummary, definition: ServerConfig | undefined): PublicServerView {
  const view: PublicServerView = {
    name: summary.name,
    state: summary.state,
    transport: summary.transport,
    description: summary.description,
    tags: summary.tags,
    toolCount: summary.toolCount,
  };
  if (definition && definition.transport !== 'stdio' && !isReplicated(definition)) view.url = publicUrl(definition.url);
  if (summary.perUser) view.perUser = true;
  if (summary.replicas) view.replicas = summary.replicas.map(({ replica, state }) => ({ replica, state }));
  return view;
}

/**
 * A definition as admins see it: header and environment values can be secrets, so only
 * their names are shown, and the URL's credentials and secret query values are hidden, as
 * are the values of secret-looking flags in a command line (`--token [redacted]`), and the
 * secrets written into its `auth` (an `env://` or `file://` reference is shown: it says where
 * the secret is, not what it is).
 */
export function redactDefinition(definition: ServerConfig): ServerConfig {
  if (definition.transport === 'stdio') return { ...definition, args: redactArguments(definition.args), env: redactValues(definition.env) };
  if (isReplicated(definition)) {
    return { ...definition, urls: definition.urls.map((replica) => ({ ...replica, url: redactUrl(replica.url) })), headers: redactValues(definition.headers), ...(definition.auth ? { auth: redactAuth(definition.auth) } : {}) };
  }
  return { ...definition, url: redactUrl(definition.url), headers: redactValues(definition.headers), ...(definition.auth ? { auth: redactAuth(definition.auth) } : {}) };
}
