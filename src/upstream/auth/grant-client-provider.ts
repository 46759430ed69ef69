import {
  createPrivateKeyJwtAuth,
  type AddClientAuthentication,
  type OAuthClientInformationContext,
  type OAuthClientMetadata,
  type OAuthDiscoveryState,
  type OAuthClientProvider,
  type StoredOAuthClientInformation,
  type StoredOAuthTokens,
} from '@modelcontextprotocol/client';
import type { OAuth2AuthConfig } from '../../config/schema.js';
import { credentialSource, type CredentialSource } from './credential-ref.js';
import { UpstreamAuthError } from './upstream-auth.js';

export interface GrantClientOptions {
  server: string;
  auth: OAuth2AuthConfig;
  clientName: string;
  env: Readonly<Record<string, string | undefined>>;
  /** The grant's own token request parameters (`grant_type` and the rest) for `scope`. */
  grant: (scope: string | undefined) => URLSearchParams;
  /** The grant types a dynamic registration asks for. */
  grantTypes: string[];
}

/**
 * The gateway as an OAuth client of one upstream's authorization server, for a grant that needs
 * nobody at a browser (client credentials, token exchange), in the shape the SDK's `auth()`
 * drives: it discovers the authorization server, registers when there is no client (a client
 * ID metadata document where the server supports one, else dynamic registration, in the SDK's
 * order), and asks for a token with `prepareTokenRequest`, adding `resource` (RFC 8707) and the
 * client authentication the server's metadata allows (`client_secret_basic` or `_post`), or a
 * `private_key_jwt` assertion signed with the configured key. Everything lives in memory: a
 * restart asks again.
 *
 * A configured client's credentials are stamped with the configured `authorizationServer`
 * when there is one (the SDK then refuses to send them anywhere else); without it, with the
 * issuer discovery found, which is what "discovered from the upstream's 401" means. That first
 * issuer is then pinned for the provider's life (one connection): an upstream that later names
 * another authorization server is refused, not followed with the client's secret or assertion
 * (trust on first use; a configuration reload starts afresh).
 */
export class GrantClientProvider implements OAuthClientProvider {
  readonly clientMetadataUrl: string | undefined;
  readonly addClientAuthentication: AddClientAuthentication | undefined;
  readonly #options: GrantClientOptions;
  readonly #secret: CredentialSource | undefined;
  readonly #privateKey: CredentialSource | undefined;
  #registered: StoredOAuthClientInformation | undefined;
  #tokens: StoredOAuthTokens | undefined;
  #discovery: OAuthDiscoveryState | undefined;
  /** The issuer the first discovery found, when none is configured: the only one ever sent the client's credentials. */
  #pinnedIssuer: string | undefined;

  constructor(options: GrantClientOptions) {
    this.#options = options;
    const { auth, server, env } = options;
    this.clientMetadataUrl = auth.clientMetadataUrl;
    this.#secret = auth.clientSecret ? credentialSource(server, auth.clientSecret, env) : undefined;
    this.#privateKey = auth.privateKey ? credentialSource(server, auth.privateKey, env) : undefined;
    const privateKey = this.#privateKey;
    this.addClientAuthentication = privateKey
      ? async (headers, params, url, metadata) => {
          // The client in effect at this request: the configured one, else the registration
          // made with the authorization server, else the metadata document's URL.
          const clientId = auth.clientId ?? this.#registered?.client_id ?? auth.clientMetadataUrl;
          if (!clientId) throw new Error('no client id to sign the private_key_jwt assertion with: configure clientId or clientMetadataUrl');
          // Read at every request: a rotated key file applies to the next token request.
          const sign = createPrivateKeyJwtAuth({ issuer: clientId, subject: clientId, privateKey: keyMaterial(privateKey.read()), alg: auth.privateKeyAlgorithm });
          await sign(headers, params, url, metadata);
          params.set('client_id', clientId);
        }
      : undefined;
  }

  /** Reads the configured secrets once, so a missing one is reported before anything is sent. */
  check(): void {
    this.#secret?.read();
    this.#privateKey?.read();
  }

  /**
   * The secret values this client holds as read now (its secret, its private key and, for a JWK,
   * the key's private members), for redacting whatever an authorization server answers.
   */
  secrets(): string[] {
    const values: string[] = [];
    for (const source of [this.#secret, this.#privateKey]) {
      try {
        if (source) values.push(...secretParts(source.read()));
      } catch {
        // An unreadable secret is reported by `check()`; there is nothing of it to hide.
      }
    }
    return values;
  }

  get redirectUrl(): undefined {
    return undefined;
  }

  get clientMetadata(): OAuthClientMetadata {
    const { auth, clientName, grantTypes } = this.#options;
    return {
      client_name: clientName,
      redirect_uris: [],
      grant_types: grantTypes,
      response_types: [],
      token_endpoint_auth_method: this.#privateKey ? 'private_key_jwt' : 'client_secret_basic',
      ...(auth.scopes.length ? { scope: auth.scopes.join(' ') } : {}),
    };
  }

  clientInformation(ctx?: OAuthClientInformationContext): StoredOAuthClientInformation | undefined {
    const { auth } = this.#options;
    if (!auth.clientId) return this.#registered;
    const issuer = auth.authorizationServer ?? ctx?.issuer;
    return {
      client_id: auth.clientId,
      ...(this.#secret ? { client_secret: this.#secret.read() } : {}),
      ...(issuer ? { issuer } : {}),
    };
  }

  saveClientInformation(info: StoredOAuthClientInformation): void {
    // A configured client is the configuration's; only a registration (or a metadata URL) is kept.
    if (!this.#options.auth.clientId) this.#registered = info;
  }

  tokens(): StoredOAuthTokens | undefined {
    return this.#tokens;
  }

  saveTokens(tokens: StoredOAuthTokens): void {
    this.#tokens = tokens;
  }

  /** The tokens the last `auth()` saved, taken (so a failed `auth()` after it cannot be mistaken for success). */
  takeTokens(): StoredOAuthTokens | undefined {
    const tokens = this.#tokens;
    this.#tokens = undefined;
    return tokens;
  }

  redirectToAuthorization(): void {
    throw new UpstreamAuthError('misconfigured', this.#options.server, 'the authorization server wants a user to sign in, which this identity cannot do');
  }

  saveCodeVerifier(): void {}

  codeVerifier(): string {
    throw new UpstreamAuthError('misconfigured', this.#options.server, 'no authorization code flow is used by this identity');
  }

  prepareTokenRequest(scope?: string): URLSearchParams {
    return this.#options.grant(scope);
  }

  /**
   * What `auth()` starts from. A configured authorization server is the only one used, whatever
   * an upstream's 401 or resource metadata names (a caller's token for an exchange, a client's
   * secret, go only where the operator said).
   */
  discoveryState(): OAuthDiscoveryState | undefined {
    const configured = this.#options.auth.authorizationServer;
    if (!configured) return this.#discovery;
    return this.#discovery?.authorizationServerUrl === configured ? this.#discovery : { authorizationServerUrl: configured };
  }

  /**
   * Called by `auth()` after discovery, before any client credential is used: an issuer other
   * than the pinned one is refused here, so nothing is sent to it.
   */
  saveDiscoveryState(state: OAuthDiscoveryState): void {
    if (!this.#options.auth.authorizationServer) {
      const issuer = state.authorizationServerMetadata?.issuer ?? state.authorizationServerUrl;
      this.#pinnedIssuer ??= issuer;
      if (!sameIssuer(this.#pinnedIssuer, issuer)) {
        throw new UpstreamAuthError(
          'misconfigured',
          this.#options.server,
          `the upstream now names authorization server ${issuer}; it first named ${this.#pinnedIssuer}, and the gateway sends its client credentials only there (set authorizationServer, or reload the server, to trust another)`,
        );
      }
    }
    this.#discovery = state;
  }

  /** The authorization server's issuer, once discovery found it (for metrics and messages). */
  get issuer(): string | undefined {
    const state = this.discoveryState();
    return state?.authorizationServerMetadata?.issuer ?? state?.authorizationServerUrl;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'all' || scope === 'tokens') this.#tokens = undefined;
    if (scope === 'all' || scope === 'client') this.#registered = undefined;
    if (scope === 'all' || scope === 'discovery') this.#discovery = undefined;
  }
}

/** Issuers compared as RFC 8414 does, but forgiving a trailing slash. */
function sameIssuer(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

/** JWK members that are private key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/** A secret as read, and, for a JWK, its private members (an error may quote one alone). */
function secretParts(text: string): string[] {
  const key = keyMaterial(text);
  if (typeof key === 'string') return [text, key];
  return [text, ...PRIVATE_JWK_MEMBERS.map((member) => key[member]).filter((value): value is string => typeof value === 'string')];
}

/** A private key as configured: a JWK (JSON) or PEM text. */
function keyMaterial(text: string): string | Record<string, unknown> {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return trimmed;
  try {
    return JSON.parse(trimmed) as Record<string, unknown>;
  } catch {
    return trimmed; // not JSON after all: let the key import say what is wrong
  }
}
