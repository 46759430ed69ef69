import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import type { OAuthSettings } from '../config/schema.js';
import { AuthFailure } from './auth-failure.js';
import { principalFromClaims, scopesOf, type Principal } from './principal.js';
import { VerdictCache } from './verdict-cache.js';

type Metadata = Readonly<oidc.ServerMetadata>;

/**
 * Validates access tokens issued by one authorization server for this gateway: JWTs against
 * the issuer's published keys (cached, refetched on an unknown key id), opaque tokens by
 * introspection. The issuer's metadata is discovered on first use and retried after a failure.
 */
export class OAuthResourceServer {
  /** JWT verdicts only: opaque tokens are introspected every time, since they can be revoked. */
  private readonly verified = new VerdictCache();
  private discovered: Promise<{ config: oidc.Configuration; jwks: ReturnType<typeof createRemoteJWKSet> | undefined }> | undefined;

  constructor(
    readonly settings: OAuthSettings,
    private readonly logger: Logger,
  ) {}

  /** The authorization server's metadata as discovered (RFC 8414 or OpenID discovery). */
  async metadata(): Promise<Metadata> {
    return (await this.discover()).config.serverMetadata();
  }

  /** The RFC 9728 document for `resource`. */
  protectedResourceMetadata(resource: string): Record<string, unknown> {
    return {
      resource,
      authorization_servers: [this.settings.issuer],
      ...(this.settings.scopes.length ? { scopes_supported: this.settings.scopes } : {}),
      bearer_methods_supported: ['header'],
      resource_name: 'Conflux MCP gateway',
    };
  }

  /** The principal a token stands for, or an AuthFailure (expired, wrong audience, missing scope...). */
  async authenticate(token: string, resource: string): Promise<Principal> {
    const audiences = [this.settings.resource ?? resource, ...this.settings.audiences];
    const jwt = isJwt(token);
    // Keyed by audience too: the same token must not pass for a resource it was not checked against.
    const cacheKey = `${audiences[0]} ${token}`;
    const known = jwt ? this.verified.get(cacheKey) : undefined;
    if (known) return known;
    const claims = jwt ? await this.verifyJwt(token, audiences) : await this.introspect(token, audiences);
    const scopes = scopesOf(claims);
    const missing = this.settings.scopes.filter((s) => !scopes.includes(s));
    if (missing.length > 0) throw new AuthFailure(403, 'insufficient_scope', `the token lacks the scope ${missing.join(' ')}`);
    // A client acting for itself (client credentials) may carry no subject: it is then its client id.
    const subjectClaim = this.settings.claims.subject;
    const withSubject = claims[subjectClaim] === undefined && typeof claims.client_id === 'string' ? { ...claims, [subjectClaim]: claims.client_id } : claims;
    const principal = principalFromClaims(withSubject, this.settings.claims, 'oauth', scopes);
    if (!principal) throw AuthFailure.invalidToken(`the token has no "${this.settings.claims.subject}" claim`);
    if (jwt) this.verified.set(cacheKey, principal, claims.exp);
    return principal;
  }

  private async verifyJwt(token: string, audiences: string[]): Promise<Record<string, unknown>> {
    const { jwks } = await this.discover();
    if (!jwks) throw new AuthFailure(503, 'temporarily_unavailable', 'the authorization server publishes no jwks_uri to verify tokens with');
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer: this.settings.issuer,
        audience: audiences,
        algorithms: this.settings.algorithms,
        clockTolerance: this.settings.clockToleranceSeconds,
        requiredClaims: ['exp'],
      });
      return payload as JWTPayload & Record<string, unknown>;
    } catch (error) {
      throw jwtFailure(error, audiences);
    }
  }

  private async introspect(token: string, audiences: string[]): Promise<Record<string, unknown>> {
    if (!this.settings.introspection) throw AuthFailure.invalidToken('the token is not a JWT and no introspection endpoint is configured');
    const { config } = await this.discover();
    let answer: Record<string, unknown>;
    try {
      answer = (await oidc.tokenIntrospection(config, token)) as Record<string, unknown>;
    } catch (error) {
      this.logger.warn({ err: error }, 'token introspection failed');
      throw new AuthFailure(503, 'temporarily_unavailable', 'the authorization server could not check the token');
    }
    if (answer.active !== true) throw AuthFailure.invalidToken('the token is not active');
    const aud = answer.aud === undefined ? [] : Array.isArray(answer.aud) ? answer.aud : [answer.aud];
    if (aud.length > 0 && !aud.some((a) => audiences.includes(a as string))) {
      throw AuthFailure.invalidToken(`the token is for another audience, not ${audiences[0]}`);
    }
    if (typeof answer.exp === 'number' && answer.exp * 1000 < Date.now() - this.settings.clockToleranceSeconds * 1000) {
      throw AuthFailure.invalidToken('the token has expired');
    }
    return answer;
  }

  private discover() {
    this.discovered ??= this.runDiscovery().catch((error: unknown) => {
      this.discovered = undefined;
      this.logger.warn({ err: error, issuer: this.settings.issuer }, 'authorization server discovery failed');
      throw new AuthFailure(503, 'temporarily_unavailable', `the authorization server ${this.settings.issuer} could not be reached`);
    });
    return this.discovered;
  }

  private async runDiscovery() {
    const issuer = new URL(this.settings.issuer);
    const clientId = this.settings.introspection?.clientId ?? 'conflux';
    const auth = this.settings.introspection ? oidc.ClientSecretBasic(this.settings.introspection.clientSecret) : oidc.None();
    const options: oidc.DiscoveryRequestOptions = issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {};
    let config: oidc.Configuration;
    try {
      config = await oidc.discovery(issuer, clientId, undefined, auth, { ...options, algorithm: 'oidc' });
    } catch {
      config = await oidc.discovery(issuer, clientId, undefined, auth, { ...options, algorithm: 'oauth2' });
    }
    const jwksUri = config.serverMetadata().jwks_uri;
    const jwks = jwksUri
      ? createRemoteJWKSet(new URL(jwksUri), {
          cacheMaxAge: this.settings.jwksCacheSeconds * 1000,
          cooldownDuration: this.settings.jwksCooldownSeconds * 1000,
        })
      : undefined;
    this.logger.info({ issuer: this.settings.issuer, jwksUri }, 'authorization server discovered');
    return { config, jwks };
  }
}

function isJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

function jwtFailure(error: unknown, audiences: string[]): AuthFailure {
  if (error instanceof joseErrors.JWTExpired) return AuthFailure.invalidToken('the token has expired');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return AuthFailure.invalidToken(`the token is for another audience, not ${audiences[0]}`);
    if (error.claim === 'iss') return AuthFailure.invalidToken('the token was issued by another issuer');
    if (error.claim === 'nbf') return AuthFailure.invalidToken('the token is not valid yet');
    return AuthFailure.invalidToken(`the token's "${error.claim}" claim is invalid: ${error.reason}`);
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) return AuthFailure.invalidToken('the token is signed with a key the issuer does not publish');
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return AuthFailure.invalidToken('the token signature is invalid');
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return AuthFailure.invalidToken('the token is signed with an algorithm that is not accepted');
  if (error instanceof joseErrors.JWKSTimeout) return new AuthFailure(503, 'temporarily_unavailable', 'the issuer\'s signing keys could not be fetched in time');
  if (error instanceof joseErrors.JOSEError) return AuthFailure.invalidToken(`the token is invalid (${error.code})`);
  return new AuthFailure(503, 'temporarily_unavailable', 'the issuer\'s signing keys could not be fetched');
}
