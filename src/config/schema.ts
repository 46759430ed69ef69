import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** Characters every exposed MCP name may use; server names and prefixes are held to the same set. */
const NAME_CHARS = /^[a-zA-Z0-9_-]+$/;

export const ServerNameSchema = z
  .string()
  .min(1, 'server name must not be empty')
  .max(48, 'server name must be at most 48 characters')
  .regex(NAME_CHARS, 'server name may only contain letters, digits, "_" and "-"');

const PrefixSchema = z
  .string()
  .max(32, 'prefix must be at most 32 characters')
  .regex(/^[a-zA-Z0-9_-]*$/, 'prefix may only contain letters, digits, "_" and "-"');

const ToolOverrideSchema = z.strictObject({
  name: z.string().min(1).optional(),
  title: z.string().optional(),
  description: z.string().optional(),
  annotations: z.record(z.string(), z.unknown()).optional(),
});

const ToolsFilterSchema = z.strictObject({
  /** Glob patterns over the upstream's own tool names; when set, only matching tools are exposed. */
  allow: z.array(z.string().min(1)).optional(),
  /** Glob patterns over the upstream's own tool names; matching tools are hidden and refused. */
  deny: z.array(z.string().min(1)).optional(),
  /** Keyed by the upstream's own tool name. */
  overrides: z.record(z.string(), ToolOverrideSchema).optional(),
});

const StringMap = z.record(z.string(), z.string({ error: 'expected a string' }));

/**
 * An absolute `file:///` URI, kept in its normalised form (spaces escaped, `..` resolved).
 * `file:demo` or `file://./demo` would parse as `/demo` or as a host, never as a path relative
 * to anything, so the three slashes are required rather than guessed at.
 */
const FileUriSchema = z
  .string()
  .refine(isAbsoluteFileUri, 'expected an absolute file URI such as file:///srv/project')
  .transform((uri) => new URL(uri).href);

function isAbsoluteFileUri(text: string): boolean {
  if (!/^file:\/\/\//i.test(text)) return false;
  try {
    fileURLToPath(text);
    return true;
  } catch {
    return false;
  }
}

/** A root the gateway names to an upstream that asks `roots/list` when no client can answer it. */
const RootSchema = z.strictObject({
  uri: FileUriSchema,
  name: z.string().min(1).optional(),
});

const commonServerFields = {
  enabled: z.boolean().default(true),
  description: z.string().optional(),
  tags: z.array(z.string().regex(NAME_CHARS, 'tags may only contain letters, digits, "_" and "-"')).default([]),
  /** Defaults to the server's name; "" exposes the upstream's names unchanged. */
  prefix: PrefixSchema.optional(),
  separator: z.string().regex(NAME_CHARS).max(8).default('__'),
  /** Seconds allowed for each request to this server. */
  timeout: z.number({ error: 'expected a number of seconds' }).positive().max(86_400).default(60),
  /** Seconds allowed to connect (start, initialize, list); default: `timeout`, at least 10. */
  connectTimeout: z.number({ error: 'expected a number of seconds' }).positive().max(3600).optional(),
  /** A required server must be ready for the gateway to report itself ready. */
  required: z.boolean().default(false),
  tools: ToolsFilterSchema.optional(),
  /**
   * Answered to this server's `roots/list` when no calling client can answer it (see
   * gateway/upstream-relay.ts); absent means none. Optional, not defaulted, so that server
   * definitions built in code need not name it.
   */
  roots: z.array(RootSchema).optional(),
};

/**
 * Where a secret comes from: `env://VAR` (read when used), `file:///path` (re-read when the
 * file changes, so rotated secrets apply without a restart), or the value itself (write it as
 * `${VAR}` so it stays out of the file). See upstream/auth/credential-ref.ts.
 */
export const CredentialRefSchema = z.string({ error: 'expected a credential reference (env://VAR, file:///path, or a value)' }).min(1, 'a credential must not be empty');

const CredentialPlacement = {
  /** Where the credential is sent: a request header (default) or a query parameter of the server's URL. */
  location: z.enum(['header', 'query']).default('header'),
  /** The header's name (location `header`). */
  header: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name').optional(),
  /** The query parameter's name (location `query`). */
  param: z.string().min(1).optional(),
};

/** How Conflux proves itself to one upstream server. Secrets are references, never shown back. */
export const UpstreamAuthSchema = z.discriminatedUnion(
  'method',
  [
    z.strictObject({ method: z.literal('none') }),
    /** `Authorization: Bearer <credential>` (or the `prefix` and `header` given). */
    z.strictObject({ method: z.literal('bearer'), credential: CredentialRefSchema, prefix: z.string().default('Bearer '), ...CredentialPlacement }),
    /** The credential as it is, in `X-API-Key` unless `header` (or `param`) says otherwise. */
    z.strictObject({ method: z.literal('api_key'), credential: CredentialRefSchema, prefix: z.string().default(''), ...CredentialPlacement }),
    /** HTTP Basic: `username` and the credential as password. */
    z.strictObject({ method: z.literal('basic'), username: z.string().min(1), credential: CredentialRefSchema, ...CredentialPlacement }),
    /** Any header value: `template` with `{credential}` in it, e.g. `Token {credential}`. */
    z.strictObject({
      method: z.literal('template'),
      credential: CredentialRefSchema,
      template: z.string().includes('{credential}', { message: 'the template must contain {credential}' }),
      ...CredentialPlacement,
    }),
    /**
     * OAuth 2.1 towards the upstream, its authorization server found from the upstream's own 401
     * (RFC 9728, then RFC 8414 or OpenID discovery). `service`: one token for the gateway
     * (client credentials); `user`: each user authorises once (authorization code + PKCE);
     * `exchange`: the caller's own token swapped for one scoped to the upstream (RFC 8693).
     */
    z.strictObject({
      method: z.literal('oauth2'),
      identity: z.enum(['service', 'user', 'exchange']).default('service'),
      /** A pre-registered client; without one, a client ID metadata document or dynamic registration (RFC 7591) is used. */
      clientId: z.string().min(1).optional(),
      clientSecret: CredentialRefSchema.optional(),
      /** A private key (PEM or JWK) for `private_key_jwt` client authentication, instead of a secret. */
      privateKey: CredentialRefSchema.optional(),
      privateKeyAlgorithm: z.string().min(1).default('RS256'),
      /** An HTTPS URL where this gateway's client ID metadata document is published (the client ID itself). */
      clientMetadataUrl: z.url({ protocol: /^https$/, error: 'expected an https URL' }).optional(),
      /** Scopes to ask for; default: those the upstream's challenge or metadata names. */
      scopes: z.array(z.string().min(1)).default([]),
      /** The authorization server, when the upstream's 401 does not lead to it. */
      authorizationServer: z.url().optional(),
      /** `exchange`: the audience to ask for (default: the upstream's resource URI). */
      audience: z.string().min(1).optional(),
    }).superRefine((auth, ctx) => {
      if (auth.clientSecret && auth.privateKey) ctx.addIssue({ code: 'custom', path: ['privateKey'], message: 'give a clientSecret or a privateKey, not both' });
      // A secret or key belongs to a client the authorization server knows: its id must be given.
      if ((auth.clientSecret || auth.privateKey) && !auth.clientId && !auth.clientMetadataUrl) {
        ctx.addIssue({ code: 'custom', path: ['clientId'], message: 'a clientSecret or privateKey needs the clientId it belongs to' });
      }
      // Callers' own tokens go to the authorization server: the operator names it, the upstream's 401 does not.
      if (auth.identity === 'exchange' && !auth.authorizationServer) {
        ctx.addIssue({ code: 'custom', path: ['authorizationServer'], message: "identity: exchange sends callers' tokens to the authorization server: name it in authorizationServer" });
      }
    }),
  ],
  { error: 'expected auth.method to be one of none, bearer, api_key, basic, template, oauth2' },
);

export const StdioServerSchema = z.strictObject({
  transport: z.literal('stdio'),
  command: z.string().min(1, 'expected a command'),
  args: z.array(z.string()).default([]),
  env: StringMap.default({}),
  cwd: z.string().optional(),
  /**
   * `false`: one process per user, started on first use, its `env` and `args` able to name the
   * user (`${user.id}`, `${user.sub}`, `${user.email}`, `${user.groups}`, `${user.token}`).
   */
  shared: z.boolean().optional(),
  /**
   * With several gateway processes (workers, replicas): `per_worker` (default) runs the server
   * in each of them; `one` runs it in one process only, which the others send its requests to.
   */
  processes: z.enum(['per_worker', 'one'], { error: 'expected per_worker or one' }).optional(),
  ...commonServerFields,
}).superRefine((server, ctx) => {
  if (server.processes === 'one' && server.shared === false) {
    ctx.addIssue({ code: 'custom', path: ['processes'], message: 'processes: one runs one process for everybody, which a shared: false server (one process per user) cannot: drop one of them' });
  }
});

export const HttpServerSchema = z.strictObject({
  transport: z.enum(['streamable-http', 'sse']),
  url: z.url({ protocol: /^https?$/, error: 'expected a URL' }),
  headers: StringMap.default({}),
  auth: UpstreamAuthSchema.optional(),
  /** `false`: one connection per user (implied by `auth.identity` `user` and `exchange`). */
  shared: z.boolean().optional(),
  ...commonServerFields,
}).superRefine((server, ctx) => {
  if (server.shared === true && server.auth?.method === 'oauth2' && server.auth.identity !== 'service') {
    ctx.addIssue({ code: 'custom', path: ['shared'], message: `a server with identity: ${server.auth.identity} acts for each user and cannot be shared` });
  }
});

/** How calls are spread over the replicas of one server (see upstream/balancer.ts). */
export const BALANCE_STRATEGIES = ['round_robin', 'least_connections', 'weighted', 'random', 'session_affinity', 'user_affinity'] as const;

const ReplicaSchema = z.union(
  [
    z.url({ protocol: /^https?$/, error: 'expected a URL' }),
    z.strictObject({
      url: z.url({ protocol: /^https?$/, error: 'expected a URL' }),
      /** Its share of the calls under `weighted` and `random`, and of the hash ring under the affinities. */
      weight: z.number().int().min(1).max(1000).default(1),
    }),
  ],
  { error: 'expected a URL, or { url, weight }' },
);

/**
 * One logical HTTP server served by several equivalent replicas (`urls` instead of `url`):
 * one connection each, calls balanced over those that are healthy. Shared only: a server that
 * acts for each user (`shared: false`, `identity: user` or `exchange`) is refused with `urls`.
 */
export const ReplicatedServerSchema = z
  .strictObject({
    transport: z.enum(['streamable-http', 'sse'], { error: 'urls lists the replicas of an HTTP server: transport must be "streamable-http" or "sse"' }),
    urls: z
      .array(ReplicaSchema, { error: 'expected a list of URLs (a server with one URL gives it as url)' })
      .min(2, 'list at least two URLs (a server with one URL gives it as url)')
      .max(64, 'at most 64 replicas')
      .transform((replicas) => replicas.map((replica) => (typeof replica === 'string' ? { url: replica, weight: 1 } : replica))),
    balance: z
      .strictObject({ strategy: z.enum(BALANCE_STRATEGIES, { error: `expected one of ${BALANCE_STRATEGIES.join(', ')}` }).default('round_robin') })
      .default({ strategy: 'round_robin' }),
    headers: StringMap.default({}),
    auth: UpstreamAuthSchema.optional(),
    shared: z.literal(true, { error: 'a server with urls is shared: one connection per replica, not one per user' }).optional(),
    ...commonServerFields,
  })
  .superRefine((server, ctx) => {
    if (server.auth?.method === 'oauth2' && server.auth.identity !== 'service') {
      ctx.addIssue({ code: 'custom', path: ['auth', 'identity'], message: `identity: ${server.auth.identity} acts for each user, which a server with urls does not (give one url)` });
    }
    // Compared in their normal form: one backend listed twice (`HOST`, `:443`, a trailing slash) would take twice its share.
    const seen = new Set<string>();
    server.urls.forEach((replica, index) => {
      const normal = comparableUrl(replica.url);
      if (normal === undefined) return;
      if (seen.has(normal)) ctx.addIssue({ code: 'custom', path: ['urls', index], message: 'this URL is listed twice' });
      seen.add(normal);
    });
  });

/** A URL as `new URL()` normalises it (host case, default port), without a trailing slash; undefined when the list failed earlier checks. */
function comparableUrl(url: unknown): string | undefined {
  if (typeof url !== 'string' || !URL.canParse(url)) return undefined;
  return new URL(url).href.replace(/\/+$/, '');
}

const SingleServerSchema = z.discriminatedUnion('transport', [StdioServerSchema, HttpServerSchema], {
  error: 'expected one of "stdio", "streamable-http", "sse" (or give `command`, `url` or `urls`)',
});

/**
 * A server entry. `urls` makes it a replicated one; otherwise `transport` picks the schema. The
 * choice is made here rather than by a union, so that a mistake in either kind of entry is
 * reported as that kind's (a union would report both kinds' complaints about it).
 */
export const ServerConfigSchema = z.preprocess(inferTransport, z.unknown()).transform((value, ctx): ServerConfig => {
  const replicated = isObject(value) && value.urls !== undefined;
  if (replicated && value.url !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['urls'], message: 'give url or urls, not both' });
    return z.NEVER;
  }
  const parsed = (replicated ? ReplicatedServerSchema : SingleServerSchema).safeParse(value);
  if (parsed.success) return parsed.data;
  // Each issue keeps its path within the entry; the record above prefixes the server's name.
  for (const issue of parsed.error.issues) ctx.addIssue(issue as Parameters<typeof ctx.addIssue>[0]);
  return z.NEVER;
});

/** Whether `config` lists replicas (`urls`): its connections are opened one per URL, each with that URL as its `url`. */
export function isReplicated(config: ServerConfig): config is ReplicatedServerConfig {
  return 'urls' in config;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `transport` may be left out when `command` or `url` makes it plain. */
function inferTransport(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const server = value as Record<string, unknown>;
  if (server.transport !== undefined) return value;
  if (typeof server.command === 'string') return { ...server, transport: 'stdio' };
  // Any `urls` (a string too): its own error then says what it should be, not that a transport is missing.
  if (typeof server.url === 'string' || server.urls !== undefined) return { ...server, transport: 'streamable-http' };
  return value;
}

const HostPattern = z.string().min(1);

/** Where a principal's subject, email, groups and roles are read from in a token's claims (dotted paths allowed). */
const ClaimsSchema = z
  .strictObject({
    subject: z.string().min(1).default('sub'),
    email: z.string().min(1).default('email'),
    groups: z.string().min(1).default('groups'),
    roles: z.string().min(1).default('roles'),
  })
  .default({ subject: 'sub', email: 'email', groups: 'groups', roles: 'roles' });

export const OAuthSettingsSchema = z.strictObject({
  /** The authorization server's issuer; its metadata is discovered (RFC 8414, then OpenID discovery). */
  issuer: z.url(),
  /** This gateway's resource URI (RFC 8707): tokens must name it as audience. Default: `<origin of the request>/mcp`. */
  resource: z.url().optional(),
  /** Further audiences accepted (e.g. Entra ID's `api://<client-id>`). */
  audiences: z.array(z.string().min(1)).default([]),
  /** Scopes every request needs; advertised in the metadata and in `WWW-Authenticate`. */
  scopes: z.array(z.string().min(1)).default([]),
  /** Opaque tokens are checked at the introspection endpoint (RFC 7662) with these client credentials. */
  introspection: z.strictObject({ clientId: z.string().min(1), clientSecret: z.string().min(1) }).optional(),
  /** Accepted signing algorithms of JWT access tokens. */
  algorithms: z.array(z.string().min(1)).default(['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA']),
  /** Signing keys are cached this long; an unknown key id refetches them (at most once per `jwksCooldownSeconds`). */
  jwksCacheSeconds: z.number().positive().default(600),
  jwksCooldownSeconds: z.number().min(0).default(30),
  /** Clock skew tolerated on `exp`/`nbf`. */
  clockToleranceSeconds: z.number().min(0).default(30),
  claims: ClaimsSchema,
});

function isAddressOrRange(entry: string): boolean {
  const [address = '', bits, extra] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  const prefix = Number(bits);
  return /^\d+$/.test(bits) && prefix <= (family === 4 ? 32 : 128);
}

export const AuthSettingsSchema = z.union([
  z.literal('none'),
  z.strictObject({
    oauth: OAuthSettingsSchema.optional(),
    /** API keys created with `conflux keys create` or `POST /api/v1/api-keys` (needs a database). */
    apiKeys: z.boolean().default(false),
    /** HS256 JWTs signed with a shared secret (platforms that sign their users' tokens). */
    jwt: z
      .strictObject({
        secret: z.string().min(32, 'use a secret of at least 32 characters'),
        issuer: z.string().min(1).optional(),
        audience: z.string().min(1).optional(),
        clockToleranceSeconds: z.number().min(0).default(30),
        /** Longest lifetime accepted (`exp` minus `iat`, or minus now without `iat`); tokens must carry `exp`. */
        maxLifetimeSeconds: z.number().positive().default(86_400),
        claims: ClaimsSchema,
      })
      .optional(),
    /** Identity from headers set by an API gateway in front; honoured only from `proxies`. */
    trustedHeaders: z
      .strictObject({
        /** Addresses or CIDR ranges of the proxies allowed to set the headers. */
        proxies: z.array(z.string().refine(isAddressOrRange, 'must be an IP address or a CIDR range such as 10.0.0.0/8')).min(1),
        user: z.string().min(1).default('x-user-email'),
        groups: z.string().min(1).default('x-user-groups'),
        admin: z.string().min(1).default('x-user-admin'),
      })
      .optional(),
  })
    .refine((a) => a.oauth !== undefined || a.apiKeys || a.jwt !== undefined || a.trustedHeaders !== undefined, 'enable at least one of oauth, apiKeys, jwt, trustedHeaders (or write auth: none)'),
]);

export const GrantSchema = z
  .strictObject({
    user: z.string().min(1).optional(),
    group: z.string().min(1).optional(),
    /** Server names, or `*` for all. */
    servers: z.array(z.string().min(1)).min(1),
    /** `read` lists tools, prompts and resources and reads them; `call` also calls tools. */
    level: z.enum(['read', 'call']).default('call'),
  })
  .refine((g) => (g.user === undefined) !== (g.group === undefined), 'name exactly one of user or group');

export const ToolRuleSchema = z
  .strictObject({
    user: z.string().min(1).optional(),
    group: z.string().min(1).optional(),
    /** Server name, or `*`. */
    server: z.string().min(1).default('*'),
    /** Glob patterns on the upstream's own tool names. */
    allow: z.array(z.string().min(1)).optional(),
    deny: z.array(z.string().min(1)).optional(),
  })
  .refine((r) => !(r.user !== undefined && r.group !== undefined), 'name at most one of user or group (neither: everyone)')
  .refine((r) => r.allow !== undefined || r.deny !== undefined, 'give allow or deny patterns');

export const AccessSettingsSchema = z
  .strictObject({
    /** Members of this group (or holders of the `admin` role) see everything and may use the admin API. */
    adminGroup: z.string().min(1).default('MCP-Admin'),
    /** Level of an authenticated principal on servers no grant names. */
    defaultLevel: z.enum(['none', 'read', 'call']).default('none'),
    /** Rules from the config, in addition to those stored in the database. */
    grants: z.array(GrantSchema).default([]),
    toolRules: z.array(ToolRuleSchema).default([]),
    /** Rules stored in the database are reloaded this often (changes made through this replica apply at once). */
    refreshSeconds: z.number().positive().default(10),
  })
  .default({ adminGroup: 'MCP-Admin', defaultLevel: 'none', grants: [], toolRules: [], refreshSeconds: 10 });

export const GatewaySettingsSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(8000),
  /**
   * Processes serving the port (`auto`: one per core). More than one shares sessions through
   * Redis and the registry through PostgreSQL, as replicas do.
   */
  workers: z.union([z.number().int().min(1).max(256), z.literal('auto')]).default(1),
  /**
   * Host header values accepted on every route (name or name:port). Empty means the loopback
   * names when bound to loopback; bound beyond loopback, set it (any Host is accepted otherwise).
   */
  allowedHosts: z.array(HostPattern).default([]),
  /** Origin values accepted on every route (browsers send one); loopback origins are always accepted. */
  allowedOrigins: z.array(HostPattern).default([]),
  /**
   * Proxies and load balancers in front (addresses or CIDR ranges): from these peers the client
   * address that per-address limits count is read from `X-Forwarded-For`, and the origin the
   * OpenAPI document names from `X-Forwarded-Proto` and `X-Forwarded-Host`. Empty: the socket peer.
   */
  trustedProxies: z.array(z.string().refine(isAddressOrRange, 'must be an IP address or a CIDR range such as 10.0.0.0/8')).default([]),
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: z.number().int().positive().default(4 * 1024 * 1024),
  /** Tools per tools/list page; longer lists are paginated with a cursor. */
  pageSize: z.number().int().positive().default(1000),
  /** Idle downstream sessions are closed after this many seconds (0 keeps them). */
  sessionIdleSeconds: z.number().min(0).default(1800),
  /** `all` lists every tool; `search` lists only the search/call meta-tools and broadcasts (everything stays callable). */
  exposure: z.enum(['all', 'search']).default('all'),
  broadcast: z
    .strictObject({
      /** Generate `broadcast__<tool>` and `broadcast__by_tag__<tag>` tools. */
      enabled: z.boolean().default(true),
      /** Upstream calls in flight at once across all broadcasts. */
      concurrency: z.number().int().positive().max(1000).default(16),
    })
    .default({ enabled: true, concurrency: 16 }),
  audit: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Case-insensitive patterns: argument keys that match are stored as "[redacted]". */
      redactKeys: z
        .array(z.string().min(1))
        .default(['pass(word)?', 'secret', 'token', 'api[-_]?key', 'authorization', 'credential', 'private[-_]?key', 'cookie']),
      /** Events held in memory while the database catches up; beyond it they are counted and dropped. */
      bufferSize: z.number().int().positive().default(10_000),
      /** Stored arguments of one event are cut to about this many bytes of JSON (a marker says what was cut). */
      maxArgumentBytes: z.number().int().min(256).default(16_384),
      /** Refused calls (denied, rate limited) written per minute at most; beyond it they are only counted. */
      maxRefusedPerMinute: z.number().int().min(0).default(600),
    })
    .default({
      enabled: true,
      redactKeys: ['pass(word)?', 'secret', 'token', 'api[-_]?key', 'authorization', 'credential', 'private[-_]?key', 'cookie'],
      bufferSize: 10_000,
      maxArgumentBytes: 16_384,
      maxRefusedPerMinute: 600,
    }),
  api: z
    .strictObject({
      /** Largest REST request body accepted, in bytes. */
      maxBodyBytes: z.number().int().positive().default(1024 * 1024),
      /**
       * Registering stdio servers through the API makes the gateway run a command an API caller
       * chose; off unless set. Servers from the config file are not affected.
       */
      allowStdio: z.boolean().default(false),
    })
    .default({ maxBodyBytes: 1024 * 1024, allowStdio: false }),
  reconnect: z
    .strictObject({
      initialDelayMs: z.number().int().positive().default(1000),
      maxDelayMs: z.number().int().positive().default(30_000),
      /** Failed attempts in a row before a server is left `down` until its config changes or an admin restarts it (0 = never give up). */
      maxAttempts: z.number().int().min(0).default(20),
    })
    .default({ initialDelayMs: 1000, maxDelayMs: 30_000, maxAttempts: 20 }),
  /** Consecutive upstream faults (timeouts, lost connections) that open a server's breaker; calls then fail fast until `cooldownSeconds` pass and a probe succeeds. */
  circuitBreaker: z
    .strictObject({
      failureThreshold: z.number().int().positive().default(5),
      cooldownSeconds: z.number().positive().default(30),
    })
    .default({ failureThreshold: 5, cooldownSeconds: 30 }),
  /** Pings connected servers; `failureThreshold` failures in a row mark one degraded, then reconnect it. */
  healthCheck: z
    .strictObject({
      intervalSeconds: z.number().min(0).default(30),
      timeoutSeconds: z.number().positive().default(10),
      failureThreshold: z.number().int().positive().default(3),
    })
    .default({ intervalSeconds: 30, timeoutSeconds: 10, failureThreshold: 3 }),
  rateLimit: z
    .strictObject({
      /** Requests per principal per window (0 = unlimited). */
      perPrincipal: z.number().int().min(0).default(0),
      /** Tool calls per upstream server per window, all principals together (0 = unlimited). */
      perServer: z.number().int().min(0).default(0),
      windowSeconds: z.number().positive().default(60),
      /** Failed authentications accepted per client address per window before 429 (0 = unlimited). */
      failedAuthPerAddress: z.number().int().min(0).default(30),
      /** When Redis (the shared limiter) does not answer: let requests through, or refuse them with 503. */
      onRedisError: z.enum(['failOpen', 'failClosed']).default('failOpen'),
    })
    .default({ perPrincipal: 0, perServer: 0, windowSeconds: 60, failedAuthPerAddress: 30, onRedisError: 'failOpen' }),
  limits: z
    .strictObject({
      maxSessions: z.number().int().positive().default(10_000),
      maxSessionsPerPrincipal: z.number().int().positive().default(1000),
      maxConcurrentCallsPerSession: z.number().int().positive().default(64),
      /** Deepest nesting of arrays and objects accepted in a JSON-RPC message. */
      maxJsonDepth: z.number().int().positive().default(64),
      /**
       * How long a 2026-07-28 call waits for its client's retry after an `input_required` the
       * gateway sent for a 2025 upstream's mid-call request; then the upstream call is cancelled.
       * The default matches a server's default `timeout`, which bounds the upstream call (the
       * client's time to answer included) anyway; a paused call on a server without exact
       * attribution (stdio) keeps other callers' mid-call requests there from being relayed
       * while it waits, so a long wait costs them.
       */
      pausedCallSeconds: z.number().positive().default(60),
    })
    .default({ maxSessions: 10_000, maxSessionsPerPrincipal: 1000, maxConcurrentCallsPerSession: 64, maxJsonDepth: 64, pausedCallSeconds: 60 }),
  /** Upstreams that act for each user: their instances, and the OAuth client the gateway is towards them. */
  upstreamIdentity: z
    .strictObject({
      /**
       * This gateway's address as browsers reach it; the OAuth callback is `<publicUrl>/oauth/callback`.
       * Default: http://<host>:<port> (loopback names for a wildcard bind).
       */
      publicUrl: z.url({ protocol: /^https?$/ }).optional(),
      /** The key users' upstream tokens are encrypted with at rest (AES-256-GCM). Default: a key file kept beside the embedded database. */
      tokenKey: CredentialRefSchema.optional(),
      /** Earlier keys, still able to decrypt what they encrypted (rotation: new key in `tokenKey`, old ones here). */
      previousTokenKeys: z.array(CredentialRefSchema).default([]),
      /** The client name shown on authorization servers' consent pages and in dynamic registration. */
      clientName: z.string().min(1).default('Conflux'),
      /** How long a started authorization waits for its callback. */
      authorizationTimeoutSeconds: z.number().positive().default(600),
      instances: z
        .strictObject({
          /** A user's instance is stopped after this long without a request (0: only when their sessions end). */
          idleSeconds: z.number().min(0).default(600),
          maxPerUser: z.number().int().positive().default(10),
          maxTotal: z.number().int().positive().default(200),
        })
        .default({ idleSeconds: 600, maxPerUser: 10, maxTotal: 200 }),
    })
    .default({ previousTokenKeys: [], clientName: 'Conflux', authorizationTimeoutSeconds: 600, instances: { idleSeconds: 600, maxPerUser: 10, maxTotal: 200 } }),
  /** On SIGTERM, calls in flight get this long to finish before connections are cut. */
  shutdownGraceSeconds: z.number().min(0).default(10),
  /** Who may connect: `none` (local use) or one or more of oauth, apiKeys, jwt, trustedHeaders. */
  auth: AuthSettingsSchema.default('none'),
  /** Who may use what, once callers are authenticated. */
  access: AccessSettingsSchema,
});

export const ConfigSchema = z.strictObject({
  gateway: GatewaySettingsSchema.default(GatewaySettingsSchema.parse({})),
  servers: z.record(ServerNameSchema, ServerConfigSchema).default({}),
});

export type Config = z.infer<typeof ConfigSchema>;
export type GatewaySettings = z.infer<typeof GatewaySettingsSchema>;
export type ServerConfig = z.infer<typeof StdioServerSchema> | z.infer<typeof HttpServerSchema> | z.infer<typeof ReplicatedServerSchema>;
export type ReplicatedServerConfig = z.infer<typeof ReplicatedServerSchema>;
export type BalanceStrategy = (typeof BALANCE_STRATEGIES)[number];
export type StdioServerConfig = z.infer<typeof StdioServerSchema>;
export type HttpServerConfig = z.infer<typeof HttpServerSchema>;
export type ToolsFilter = z.infer<typeof ToolsFilterSchema>;
export type ToolOverride = z.infer<typeof ToolOverrideSchema>;
export type AuthSettings = z.infer<typeof AuthSettingsSchema>;
export type OAuthSettings = z.infer<typeof OAuthSettingsSchema>;
export type AccessSettings = z.infer<typeof AccessSettingsSchema>;
export type ClaimsMapping = z.infer<typeof ClaimsSchema>;
export type UpstreamAuthConfig = z.infer<typeof UpstreamAuthSchema>;
export type OAuth2AuthConfig = Extract<UpstreamAuthConfig, { method: 'oauth2' }>;
export type StaticAuthConfig = Exclude<UpstreamAuthConfig, { method: 'oauth2' } | { method: 'none' }>;
export type UpstreamIdentitySettings = z.infer<typeof GatewaySettingsSchema>['upstreamIdentity'];
