import { createSecretKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { Logger } from 'pino';
import type { AuthSettings } from '../config/schema.js';
import type { FailedAuthThrottle } from '../limits/failed-auth-throttle.js';
import { LogSampler } from '../limits/log-sampler.js';
import { looksLikeApiKey, type ApiKeys } from './api-keys.js';
import { AuthFailure } from './auth-failure.js';
import { identityKey } from './identity-key.js';
import type { OAuthResourceServer } from './oauth-resource-server.js';
import { ANONYMOUS, principalFromClaims, type Principal } from './principal.js';
import { Secret } from './secret.js';
import { lifetimeProblem } from './token-lifetime.js';
import { TrustedProxies } from './trusted-proxies.js';
import { VerdictCache } from './verdict-cache.js';

type Settings = Exclude<AuthSettings, 'none'>;

/** The warning about identity headers from an untrusted address is logged once per address per this long. */
const SPOOFED_HEADER_LOG_MS = 60_000;

export interface AuthRequest {
  headers: Headers;
  /** The peer address of the connection. */
  address: string;
  /** The client's address as a trusted proxy forwarded it (`clientAddress`); default `address`. */
  client?: string | undefined;
  /** This gateway's resource URI as the request addressed it (the expected token audience). */
  resource: string;
}

/**
 * Decides who a request comes from, trying the enabled methods in turn: identity headers (from
 * a trusted proxy only), `X-API-Key`, then a Bearer token (API key, HS256 JWT or an OAuth
 * access token). Runs on every request; a JWT that verified is remembered until its `exp` (see
 * `VerdictCache`), API keys briefly by `ApiKeys`.
 *
 * With a `throttle`, an address that failed too often is refused (`RateLimitedError`) before
 * its credentials are looked at, and every refused credential counts against its address
 * (trusted proxies excepted: the socket address of a proxy is not the client's).
 */
export class Authenticator {
  readonly enabled: boolean;
  private readonly settings: Settings | undefined;
  private readonly proxies: TrustedProxies | undefined;
  private readonly secret: KeyObject | undefined;
  private readonly verified = new VerdictCache();
  private readonly spoofLog = new LogSampler(SPOOFED_HEADER_LOG_MS);

  constructor(
    settings: AuthSettings,
    private readonly methods: {
      apiKeys?: ApiKeys | undefined;
      oauth?: OAuthResourceServer | undefined;
      logger: Logger;
      /** Failed authentications per client address (see `FailedAuthThrottle`). */
      throttle?: FailedAuthThrottle | undefined;
    },
  ) {
    this.settings = settings === 'none' ? undefined : settings;
    this.enabled = this.settings !== undefined;
    this.proxies = this.settings?.trustedHeaders ? new TrustedProxies(this.settings.trustedHeaders.proxies) : undefined;
    // A key object made once: handing jose the raw secret would import it again on every request.
    this.secret = this.settings?.jwt ? createSecretKey(Buffer.from(this.settings.jwt.secret, 'utf8')) : undefined;
  }

  /**
   * The principal `request` comes from. Throws `AuthFailure` for refused or missing
   * credentials, and with a throttle `RateLimitedError` for an address that failed too often.
   */
  async authenticate(request: AuthRequest): Promise<Principal> {
    if (!this.settings) return ANONYMOUS;
    const client = request.client ?? request.address;
    // A trusted proxy speaks for many clients: its address says nothing about who failed.
    const throttle = this.proxies?.has(client) ? undefined : this.methods.throttle;
    if (!throttle) return this.identify(request, this.settings);
    // Checked first, and for valid credentials too: telling a valid one apart would take the
    // very check a guesser must not get, and an answer that differs would confirm a guess.
    await throttle.check(client);
    try {
      return await this.identify(request, this.settings);
    } catch (error) {
      if (error instanceof AuthFailure && countsAsFailure(error)) await throttle.failed(client, error.message);
      throw error;
    }
  }

  private async identify(request: AuthRequest, settings: Settings): Promise<Principal> {
    const { headers } = request;

    const headerNames = settings.trustedHeaders;
    const vouched = headerNames ? headers.get(headerNames.user) : null;
    if (headerNames && vouched !== null) {
      if (this.proxies!.has(request.address)) return principalFromHeaders(headers, headerNames);
      const skipped = this.spoofLog.sample(request.address);
      if (skipped !== undefined) {
        this.methods.logger.warn({ address: request.address, header: headerNames.user, ...(skipped > 0 ? { ignoredSinceLastLine: skipped } : {}) }, 'identity header from an address that is not a trusted proxy; ignored');
      }
    }

    const apiKey = headers.get('x-api-key');
    if (apiKey !== null) return withToken(await this.apiKey(apiKey), apiKey);

    const authorization = headers.get('authorization');
    if (authorization === null) {
      if (vouched !== null) throw AuthFailure.invalidToken(`the ${headerNames!.user} header is honoured only from trusted proxies`);
      throw new AuthFailure(401, undefined, 'authentication required');
    }
    const match = /^Bearer +([^\s]+) *$/i.exec(authorization);
    if (!match) throw new AuthFailure(401, 'invalid_request', 'the Authorization header must be "Bearer <token>"');
    const token = match[1]!;
    if (looksLikeApiKey(token)) return withToken(await this.apiKey(token), token);
    if (this.secret && algorithmOf(token) === 'HS256') return withToken(await this.sharedSecretJwt(token, settings.jwt!), token);
    if (this.methods.oauth) return withToken(await this.methods.oauth.authenticate(token, request.resource), token);
    throw AuthFailure.invalidToken('no enabled authentication method accepts this token');
  }

  private async apiKey(key: string): Promise<Principal> {
    if (!this.methods.apiKeys) throw AuthFailure.invalidToken('API keys are not enabled on this gateway');
    const outcome = await this.methods.apiKeys.verify(key);
    if ('refused' in outcome) throw AuthFailure.invalidToken(outcome.refused);
    return outcome;
  }

  private async sharedSecretJwt(token: string, jwt: NonNullable<Settings['jwt']>): Promise<Principal> {
    const known = this.verified.get(token);
    if (known) return known;
    try {
      const { payload } = await jwtVerify(token, this.secret!, {
        algorithms: ['HS256'],
        ...(jwt.issuer ? { issuer: jwt.issuer } : {}),
        ...(jwt.audience ? { audience: jwt.audience } : {}),
        clockTolerance: jwt.clockToleranceSeconds,
        // Without `exp` a leaked token would be valid for ever: nothing can revoke it.
        requiredClaims: ['exp'],
      });
      const tooLong = lifetimeProblem({ exp: payload.exp!, iat: payload.iat }, Math.floor(Date.now() / 1000), jwt.maxLifetimeSeconds, jwt.clockToleranceSeconds);
      if (tooLong) throw AuthFailure.invalidToken(tooLong);
      const principal = principalFromClaims(payload as Record<string, unknown>, jwt.claims, 'jwt');
      if (!principal) throw AuthFailure.invalidToken(`the token has no "${jwt.claims.subject}" claim`);
      this.verified.set(token, principal, payload.exp);
      return principal;
    } catch (error) {
      if (error instanceof AuthFailure) throw error;
      if (error instanceof joseErrors.JWTExpired) throw AuthFailure.invalidToken('the token has expired');
      if (error instanceof joseErrors.JWSSignatureVerificationFailed) throw AuthFailure.invalidToken('the token signature is invalid');
      if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'exp' && error.reason === 'missing') {
        throw AuthFailure.invalidToken('the token has no "exp" claim: tokens must expire');
      }
      if (error instanceof joseErrors.JWTClaimValidationFailed) throw AuthFailure.invalidToken(`the token's "${error.claim}" claim is invalid: ${error.reason}`);
      throw AuthFailure.invalidToken('the token is invalid');
    }
  }
}

/**
 * `principal` carrying the credential it presented, for what acts on the caller's behalf (a
 * token exchange). A copy: verified principals are cached and shared between requests.
 */
function withToken(principal: Principal, token: string): Principal {
  return { ...principal, token: new Secret(token) };
}

function algorithmOf(token: string): string | undefined {
  try {
    return decodeProtectedHeader(token).alg;
  } catch {
    return undefined;
  }
}

function principalFromHeaders(headers: Headers, names: NonNullable<Settings['trustedHeaders']>): Principal {
  const user = headers.get(names.user)!.trim();
  if (!user) throw AuthFailure.invalidToken(`the ${names.user} header is empty`);
  const groups = (headers.get(names.groups) ?? '').split(',').map((g) => g.trim()).filter(Boolean);
  const admin = /^(true|1|yes)$/i.test(headers.get(names.admin)?.trim() ?? '');
  return { id: identityKey(user, 'user'), subject: user, email: user.includes('@') ? user : undefined, groups, roles: [], scopes: [], method: 'header', admin };
}

/**
 * Credentials that were presented and refused. A request with none at all (the first step of
 * every OAuth client) and refusals that are the gateway's own trouble (503) or a valid token's
 * missing scope (403) are not attempts at guessing.
 */
function countsAsFailure(failure: AuthFailure): boolean {
  return failure.status === 401 && failure.code !== undefined;
}
