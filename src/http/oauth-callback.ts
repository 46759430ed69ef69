import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie } from 'hono/cookie';
import type { Logger } from 'pino';
import { z } from 'zod';
import { AuthorizationCallbackError, OAUTH_CALLBACK_PATH, type UserIdentities } from '../upstream/auth/user-identity.js';

const CallbackQuery = z.object({
  state: z.string().min(1).max(512),
  code: z.string().min(1).max(4096).optional(),
  iss: z.string().min(1).max(2048).optional(),
  error: z.string().max(256).optional(),
});

/**
 * `GET /oauth/callback`: where authorization servers send a user's browser back with the code.
 * It carries no credential of the gateway's own (a browser has none): the `state` names the
 * authorization, and the binding cookie set when the user confirmed their link
 * (`/oauth/start/<handle>`) proves this is the browser that did. Without it the authorization is
 * dropped: a callback from any other browser (a victim sent someone else's link, or an attacker
 * finishing a link they learnt with their own account) stores nothing. Mounted after the
 * app-wide guards (Host, Origin), like every route. The answer is a small page saying it is done
 * or what failed; it never repeats the code, the state or any token.
 */
export function mountOAuthCallback<E extends object>(app: Hono<E>, users: UserIdentities, logger: Logger): void {
  app.get(OAUTH_CALLBACK_PATH, async (c) => {
    const query = CallbackQuery.safeParse(c.req.query());
    pageHeaders(c);
    if (!query.success) return c.html(page('Authorization failed', 'This link is missing its state. Call the tool again for a new link.'), 400);
    try {
      const { server, bindingCookie } = await users.complete(query.data, getCookie(c));
      if (bindingCookie) deleteCookie(c, bindingCookie, { path: OAUTH_CALLBACK_PATH, secure: users.redirectUrl.startsWith('https:'), httpOnly: true, sameSite: 'Lax' });
      return c.html(page('Connected', `The gateway may now act for you on "${server}". You can close this page and return to your client.`), 200);
    } catch (error) {
      if (error instanceof AuthorizationCallbackError) return c.html(page('Authorization failed', error.message), error.status);
      logger.error({ err: error }, 'the OAuth callback failed');
      return c.html(page('Authorization failed', 'The gateway could not complete the authorization. Try again later.'), 500);
    }
  });
}

/** Pages the browser should neither keep nor show to anyone else; `formAction`: where its form may lead (none by default). */
export function pageHeaders(c: Context, formAction?: string): void {
  c.header('Cache-Control', 'no-store');
  c.header('Referrer-Policy', 'no-referrer');
  c.header('Content-Security-Policy', `default-src 'none'${formAction ? `; form-action ${formAction}` : ''}`);
}

/** A small page: a title, a message, and `trustedHtml` (built by the caller from escaped parts) after it. */
export function page(title: string, message: string, trustedHtml = ''): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${trustedHtml}</body></html>`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}
