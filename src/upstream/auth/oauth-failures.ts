import { OAuthError, OAuthErrorCode } from '@modelcontextprotocol/client';

/** The authorization server refused the client itself: its registration or configuration is wrong. */
export function isClientRefusal(error: unknown): boolean {
  return error instanceof OAuthError && (error.code === OAuthErrorCode.InvalidClient || error.code === OAuthErrorCode.UnauthorizedClient);
}

/**
 * A failure as a user or operator may read it: one line, cut short. Token endpoint errors quote
 * the authorization server's description, never a token the gateway sent.
 */
export function describeOAuthFailure(error: unknown): string {
  const text = error instanceof OAuthError ? `${error.code}${error.message && error.message !== error.code ? `: ${error.message}` : ''}` : error instanceof Error ? error.message : String(error);
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** An OAuth `error` code as it may be shown (a code is a short token; anything else is not quoted). */
export function oauthErrorCode(code: string | undefined): string {
  return code && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : 'no code was returned';
}

/**
 * What the user of `server` reads when its authorization server refused the gateway's own client:
 * that it is the gateway's client and not their authorisation, and what comes next. A
 * `registration` (RFC 7591) the server no longer takes is made again at the next authorization;
 * anything else (the configured client, a client ID metadata document, a client not allowed
 * the grant) is an operator's to fix.
 */
export function clientRefusalText(server: string, error: unknown, refused: 'registration' | 'configured'): string {
  const what = refused === 'registration' ? "the gateway's client registration" : "the gateway's client";
  const next = refused === 'registration' ? `the gateway registers again: call again to authorise "${server}" anew` : `an operator must fix the gateway's client for "${server}"`;
  return `the authorization server of "${server}" refused ${what} (${describeOAuthFailure(error)}), not your authorisation; ${next}`;
}
