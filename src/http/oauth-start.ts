import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Logger } from 'pino';
import { z } from 'zod';
import { AUTHORIZATION_REFERENCE, BINDING_COOKIE_PREFIX } from '../upstream/auth/pending-authorizations.js';
import { OAUTH_CALLBACK_PATH, OAUTH_START_PATH, type UserIdentities } from '../upstream/auth/user-identity.js';
import { escapeHtml, page, pageHeaders } from './oauth-callback.js';

/**
 * The page's anti-forgery cookie (double submit): its value is also in the page's form, which no
 * other site can read. Named like the binding cookies: requests forwarded to the replica holding
 * the authorization carry those cookies only (`oauth-routes.ts`).
 */
const CONFIRM_COOKIE = `${BINDING_COOKIE_PREFIX}confirm`;
/**
 * How long the browser keeps the cookies: long enough for any authorization a user still means
 * to finish. The authorization's own expiry is what counts; the callback clears its cookie.
 */
const COOKIE_MAX_AGE_SECONDS = 24 * 60 * 60;
const StartQuery = z.object({ confirm: z.string().min(1).max(128).optional() });

/**
 * `GET /oauth/start/<handle>`: the link users are given when a server needs their
 * authorisation. It names the gateway user and the server and asks them to confirm; confirming
 * binds the authorization to this browser, once (an HttpOnly cookie whose hash the authorization
 * keeps), and sends the browser on to the authorization server. The callback accepts only that
 * browser, so a link sent to someone else (who would authorise their account into its owner's
 * name) or learnt by someone else (who would finish it with their own account) comes to nothing.
 *
 * Confirmation is a GET form rather than a POST: the app-wide guard admits only JSON bodies,
 * which a plain HTML form cannot send. It cannot be forged from another site: it must carry the
 * value of the page's SameSite=Strict cookie, which only this page shows.
 */
export function mountOAuthStart<E extends object>(app: Hono<E>, users: UserIdentities, logger: Logger): void {
  app.get(`${OAUTH_START_PATH}/:handle`, (c) => {
    pageHeaders(c);
    const handle = c.req.param('handle');
    const record = AUTHORIZATION_REFERENCE.test(handle) ? users.authorizations.byHandle(handle) : undefined;
    if (!record?.authorizationUrl) return c.html(page('Link not valid', 'This link is unknown, was already used, or has expired. Call the tool again for a new link.'), 400);
    if (users.authorizations.isBound(record)) return alreadyConfirmed(c);
    const secure = users.redirectUrl.startsWith('https:');
    const path = `${OAUTH_START_PATH}/${handle}`;
    const maxAge = COOKIE_MAX_AGE_SECONDS;
    const query = StartQuery.safeParse(c.req.query());
    const confirm = query.success ? query.data.confirm : undefined;

    if (confirm === undefined) {
      const nonce = randomBytes(32).toString('base64url');
      setCookie(c, CONFIRM_COOKIE, nonce, { path, httpOnly: true, sameSite: 'Strict', secure, maxAge });
      // The form leads here, and the answer redirects to the authorization server: both must be allowed.
      pageHeaders(c, `'self' ${new URL(record.authorizationUrl).origin}`);
      const form = `<form method="get" action="${escapeHtml(path)}"><input type="hidden" name="confirm" value="${nonce}"><button type="submit">Continue to sign in</button></form>`;
      return c.html(
        page(
          `Connect ${record.server}`,
          `Connect "${record.server}" for ${record.user}? Only continue if you are ${record.user} and you asked for this. If someone sent you this link, close this page.`,
          form,
        ),
        200,
      );
    }

    const expected = getCookie(c, CONFIRM_COOKIE);
    if (expected === undefined || !sameValue(expected, confirm)) {
      return c.html(page('Not confirmed', 'Open the link you were given again and confirm on that page.'), 400);
    }
    const result = users.authorizations.bind(handle);
    if (!result.bound) {
      if (result.reason === 'already-bound') return alreadyConfirmed(c);
      return c.html(page('Link not valid', 'This link is unknown, was already used, or has expired. Call the tool again for a new link.'), 400);
    }
    deleteCookie(c, CONFIRM_COOKIE, { path, httpOnly: true, sameSite: 'Strict', secure });
    setCookie(c, result.cookie.name, result.cookie.value, { path: OAUTH_CALLBACK_PATH, httpOnly: true, sameSite: 'Lax', secure, maxAge });
    logger.info({ server: record.server, user: record.user }, 'a user confirmed an authorization link in a browser');
    return c.redirect(record.authorizationUrl!, 303);
  });
}

function alreadyConfirmed(c: Context) {
  return c.html(page('Link already used', 'This link was already confirmed in a browser, and only that browser can finish it. If that was not you, do not sign in anywhere; call the tool again for a new link.'), 410);
}

function sameValue(a: string, b: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(a), digest(b));
}
