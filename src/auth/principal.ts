import type { ClaimsMapping } from '../config/schema.js';
import { identityKey } from './identity-key.js';
import type { Secret } from './secret.js';

/** How a principal proved who it is. */
export type AuthMethod = 'none' | 'oauth' | 'jwt' | 'api_key' | 'header';

/** An authenticated caller, as access rules see it. */
export interface Principal {
  /**
   * Stable id for sessions, audit and rate limits: the email when known, else the subject, as
   * its `identityKey` (so `Alice@Example.com` and `alice@example.com` are one principal).
   */
  readonly id: string;
  readonly subject: string;
  readonly email?: string | undefined;
  readonly groups: readonly string[];
  readonly roles: readonly string[];
  /** Granted scopes (OAuth); empty for other methods. */
  readonly scopes: readonly string[];
  readonly method: AuthMethod;
  /** Set by the authenticator for trusted-header admins; group and role admins are derived by the policy. */
  readonly admin?: boolean | undefined;
  /** When the credential stops being valid (epoch ms): the token's `exp`, or the API key's expiry. Absent: no end known. */
  readonly expiresAt?: number | undefined;
  /** The API key this principal authenticated with (see `ApiKeys.isActive` and `ApiKeys.onRevoked`). */
  readonly apiKeyId?: string | undefined;
  /**
   * The bearer credential the caller presented (OAuth or JWT token, API key), for what acts
   * on its behalf: a token exchange, a per-user process's `${user.token}`. Never logged.
   */
  readonly token?: Secret | undefined;
}

/** The caller when authentication is off: one local user who may do everything. */
export const ANONYMOUS: Principal = { id: 'anonymous', subject: 'anonymous', groups: [], roles: [], scopes: [], method: 'none', admin: true };

/** Builds a principal from token claims according to `mapping`; `exp` (seconds, as in JWTs and introspection answers) becomes `expiresAt`. */
export function principalFromClaims(claims: Record<string, unknown>, mapping: ClaimsMapping, method: AuthMethod, scopes: readonly string[] = []): Principal | undefined {
  const subject = stringClaim(claims, mapping.subject);
  if (!subject) return undefined;
  const email = stringClaim(claims, mapping.email);
  return {
    id: identityKey(email ?? subject, 'user'),
    subject,
    email,
    groups: listClaim(claims, mapping.groups),
    roles: listClaim(claims, mapping.roles),
    scopes,
    method,
    ...(typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? { expiresAt: claims.exp * 1000 } : {}),
  };
}

/** Scopes from `scope` (space-separated, RFC 9068) or `scp` (Entra ID: string or array). */
export function scopesOf(claims: Record<string, unknown>): string[] {
  const raw = claims.scope ?? claims.scp;
  if (typeof raw === 'string') return raw.split(' ').filter(Boolean);
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === 'string');
  return [];
}

function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (path in claims) return claims[path];
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function stringClaim(claims: Record<string, unknown>, path: string): string | undefined {
  const value = claimAt(claims, path);
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** A list claim may be an array of strings or one comma- or space-separated string. */
function listClaim(claims: Record<string, unknown>, path: string): string[] {
  const value = claimAt(claims, path);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v.length > 0);
  if (typeof value === 'string') return value.split(/[,\s]+/).filter(Boolean);
  return [];
}
