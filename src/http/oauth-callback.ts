import type { Hono } from 'hono';
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
 * It carries no credential of the gateway's own (a browser has none): the `state`, which only
 * the authorization the user started knows, is what ties it to them. Mounted after the app-wide
 * guards (Host, Origin), like every route. The answer is a small page saying it is done or what
 * failed; it never repeats the code, the state or any token.
 */
export function mountOAuthCallback<E extends object>(app: Hono<E>, users: UserIdentities, logger: Logger): void {
  app.get(OAUTH_CALLBACK_PATH, async (c) => {
    const query = CallbackQuery.safeParse(c.req.query());
    // Pages the browser should neither keep nor show to anyone else.
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Content-Security-Policy', "default-src 'none'");
    if (!query.success) return c.html(page('Authorization failed', 'This link is missing its state. Call the tool again for a new link.'), 400);
    try {
      const { server } = await users.complete(query.data);
      return c.html(page('Connected', `The gateway may now act for you on "${server}". You can close this page and return to your client.`), 200);
    } catch (error) {
      if (error instanceof AuthorizationCallbackError) return c.html(page('Authorization failed', error.message), error.status);
      logger.error({ err: error }, 'the OAuth callback failed');
      return c.html(page('Authorization failed', 'The gateway could not complete the authorization. Try again later.'), 500);
    }
  });
}

function page(title: string, message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}
