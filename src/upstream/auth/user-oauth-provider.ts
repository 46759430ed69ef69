import {
  OAuthErrorCode,
  registerClient,
  resolveClientMetadata,
  type FetchLike,
  type OAuthError,
  type OAuthClientInformationContext,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  type StoredOAuthClientInformation,
  type StoredOAuthTokens,
} from '@modelcontextprotocol/client';
import type { OAuth2AuthConfig } from '../../config/schema.js';
import { credentialSource } from './credential-ref.js';
import type { PendingAuthorization, PendingAuthorizations } from './pending-authorizations.js';
import type { CallerIdentity } from './upstream-auth.js';
import type { UserTokens, UserTokenStore } from './user-token-store.js';

/** What an authorization needs again at its callback: the server as it was when it started, and the redirect URL it sent. */
export interface AuthorizationContext {
  serverUrl: string;
  auth: OAuth2AuthConfig;
  redirectUrl: string;
  /** Who started it (told when it completes, so that their instance can start); none for a refresh. */
  caller: CallerIdentity | undefined;
  /**
   * The client the authorization was started as. The code must be redeemed by that client:
   * kept here, a registration made meanwhile (another user's, at the same issuer) cannot
   * take its place.
   */
  client?: StoredOAuthClientInformation | undefined;
  /** The store's revocation mark when it started: the callback stores nothing if the user revoked the connection since. */
  revocationMark?: number | undefined;
}

/** The parts of `UserIdentities` a provider works with. */
export interface ProviderDeps {
  store: UserTokenStore;
  pending: PendingAuthorizations<AuthorizationContext>;
  /** Each upstream's discovery (RFC 9728 and RFC 8414 documents) by its URL, shared by its users. */
  discovery: Map<string, OAuthDiscoveryState>;
  clientName: string;
  env: Readonly<Record<string, string | undefined>>;
  /** For registrations (the authorization server's endpoint). */
  fetch: FetchLike;
}

/**
 * The SDK's view of one user's authorization of one server, for one `auth()` call. Nothing is
 * redirected: the URL is captured for the user to open. Starting (no `record`), `state()`
 * records a pending authorization that the code verifier and the discovery it began from are
 * kept in; at the callback (`record` given), they are read back from it.
 */
export class UserOAuthProvider implements OAuthClientProvider {
  /** The authorization `state()` started, once the SDK asked for one. */
  started: PendingAuthorization<AuthorizationContext> | undefined;

  constructor(
    private readonly deps: ProviderDeps,
    private readonly user: string,
    private readonly server: string,
    private readonly context: AuthorizationContext,
    /** The scope asked for (recorded with the authorization). */
    private readonly scope: string | undefined,
    private readonly record?: PendingAuthorization<AuthorizationContext>,
  ) {}

  get redirectUrl(): string {
    return this.context.redirectUrl;
  }

  get clientMetadataUrl(): string | undefined {
    return this.context.auth.clientMetadataUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.deps.clientName,
      redirect_uris: [this.context.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: this.context.auth.clientSecret ? 'client_secret_basic' : 'none',
    };
  }

  state(): string {
    this.context.revocationMark = this.deps.store.revocationMark(this.user, this.server);
    const record = this.deps.pending.create(this.user, this.server, this.scope, this.context);
    record.discovery = this.deps.discovery.get(this.context.serverUrl);
    this.started = record;
    return record.state;
  }

  async clientInformation(ctx?: OAuthClientInformationContext): Promise<StoredOAuthClientInformation | undefined> {
    const client = (await this.knownClient(ctx?.issuer)) ?? (ctx && !this.record ? await this.#register(ctx.issuer) : undefined);
    this.context.client = client;
    return client;
  }

  /**
   * The client this authorization uses, else in the MCP authorization spec's order: the
   * configured one, the client ID metadata document (where the authorization server takes one),
   * the registration stored for `issuer`. None is registered here.
   */
  async knownClient(issuer: string | undefined): Promise<StoredOAuthClientInformation | undefined> {
    if (this.context.client) return this.context.client;
    const { auth } = this.context;
    if (auth.clientId) {
      const secret = auth.clientSecret ? credentialSource(this.server, auth.clientSecret, this.deps.env).read() : undefined;
      return { client_id: auth.clientId, ...(secret ? { client_secret: secret } : {}), ...(issuer ? { issuer } : {}) };
    }
    // Before the store: a registration stored there (another server's, at the same issuer) must not take the document's place.
    if (auth.clientMetadataUrl && this.#takesMetadataDocuments()) return { client_id: auth.clientMetadataUrl, ...(issuer ? { issuer } : {}) };
    return issuer ? this.deps.store.client(issuer, this.context.redirectUrl) : undefined;
  }

  /** Whether the upstream's authorization server, as discovered, accepts client ID metadata documents. */
  #takesMetadataDocuments(): boolean {
    const discovery = this.record ? this.record.discovery : this.deps.discovery.get(this.context.serverUrl);
    return discovery?.authorizationServerMetadata?.client_id_metadata_document_supported === true;
  }

  /** Whether `client` is a registration of the gateway's (RFC 7591), kept in the store: not the configured client nor the metadata document. */
  #isRegistration(client: StoredOAuthClientInformation): boolean {
    return !this.context.auth.clientId && client.client_id !== this.context.auth.clientMetadataUrl;
  }

  /**
   * The authorization server at `issuer` refused `client` with `error`. A registration of the
   * gateway's that it no longer takes (`invalid_client`) is dropped from the store, while the
   * store still holds that one, so that the next authorization registers again:
   * `'registration'`. Anything else is the configuration's: `'configured'`.
   */
  async refusedClient(client: StoredOAuthClientInformation | undefined, issuer: string | undefined, error: OAuthError): Promise<'registration' | 'configured'> {
    if (!client || error.code !== OAuthErrorCode.InvalidClient || !this.#isRegistration(client)) return 'configured';
    if (issuer) await this.deps.store.deleteClient(issuer, this.context.redirectUrl, client.client_id);
    return 'registration';
  }

  /**
   * Registers the gateway (RFC 7591) without a `scope`. The registration serves every server at
   * this authorization server and every later step-up, and an authorization server may hold a
   * client to the scope it registered with (oidc-provider does), so none is named; `auth()`
   * would register with the first request's scope. Where the SDK should decide (no registration
   * endpoint: it says so), nothing is done here; a metadata document the server accepts never gets here (`knownClient`).
   */
  async #register(issuer: string): Promise<StoredOAuthClientInformation | undefined> {
    const discovery = this.deps.discovery.get(this.context.serverUrl);
    const metadata = discovery?.authorizationServerMetadata;
    if (!discovery || !metadata?.registration_endpoint) return undefined;
    const registered = await registerClient(discovery.authorizationServerUrl, { metadata, clientMetadata: resolveClientMetadata(this), fetchFn: this.deps.fetch });
    const client: StoredOAuthClientInformation = { ...registered, issuer };
    await this.saveClientInformation(client, { issuer });
    return client;
  }

  async saveClientInformation(info: StoredOAuthClientInformation, ctx?: OAuthClientInformationContext): Promise<void> {
    this.context.client = info;
    // The configured client and the metadata document are the configuration's; the store's row
    // (one per issuer, shared by every server there) holds a registration only.
    if (!this.#isRegistration(info)) return;
    const issuer = ctx?.issuer ?? info.issuer;
    if (issuer) await this.deps.store.saveClient(issuer, this.context.redirectUrl, info);
  }

  async tokens(): Promise<StoredOAuthTokens | undefined> {
    const tokens = await this.deps.store.get(this.user, this.server);
    return tokens ? asStored(tokens) : undefined;
  }

  async saveTokens(tokens: StoredOAuthTokens): Promise<void> {
    await this.deps.store.save(this.user, this.server, tokens, { source: 'authorization', revocationMark: this.record?.context.revocationMark });
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    if (this.started) this.started.authorizationUrl = authorizationUrl.href;
  }

  saveCodeVerifier(codeVerifier: string): void {
    if (this.started) this.started.codeVerifier = codeVerifier;
  }

  codeVerifier(): string {
    const verifier = this.record?.codeVerifier;
    if (!verifier) throw new Error('no code verifier was recorded for this authorization');
    return verifier;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.deps.discovery.set(this.context.serverUrl, state);
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    if (this.record) return this.record.discovery;
    const known = this.deps.discovery.get(this.context.serverUrl);
    if (known) return known;
    // Configured: the upstream's 401 does not lead to its authorization server.
    return this.context.auth.authorizationServer ? { authorizationServerUrl: this.context.auth.authorizationServer } : undefined;
  }

  async invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void> {
    // A code that fails to redeem says nothing of the tokens stored before: they stay.
    if ((scope === 'all' || scope === 'tokens') && !this.record) await this.deps.store.delete(this.user, this.server);
    // The gateway's registration serves every user at this authorization server: the SDK's
    // reaction to a refused client never deletes it (`refusedClient` decides that, for an
    // `invalid_client` only). This authorization only forgets the client it held, and not at
    // the callback: the code was issued to that client, and no other may redeem it.
    if ((scope === 'all' || scope === 'client') && !this.record) this.context.client = undefined;
    if (scope === 'all' || scope === 'discovery') this.deps.discovery.delete(this.context.serverUrl);
  }
}

function asStored(tokens: UserTokens): StoredOAuthTokens {
  return {
    access_token: tokens.accessToken,
    token_type: 'Bearer',
    ...(tokens.refreshToken ? { refresh_token: tokens.refreshToken } : {}),
    ...(tokens.scope ? { scope: tokens.scope } : {}),
    ...(tokens.issuer ? { issuer: tokens.issuer } : {}),
  };
}
