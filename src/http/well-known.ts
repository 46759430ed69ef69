import type { Context, Hono } from 'hono';
import { cors } from 'hono/cors';
import type { Logger } from 'pino';
import { AuthFailure } from '../auth/auth-failure.js';
import type { OAuthResourceServer } from '../auth/oauth-resource-server.js';
import { resourceUri } from './caller.js';

/**
 * OAuth discovery documents: the protected-resource metadata (RFC 9728, at the root and in the
 * path-inserted form for `/mcp`) and, for clients that look on the resource's own origin, the
 * authorization server's metadata (RFC 8414) as discovered from the issuer.
 */
export function mountWellKnown<E extends object>(app: Hono<E>, oauth: OAuthResourceServer | undefined, logger: Logger): void {
  // Browser-based clients read these from another origin.
  app.use('/.well-known/*', cors({ origin: '*', allowMethods: ['GET', 'OPTIONS'] }));
  const noOAuth = { error: { code: 'not_found', message: 'OAuth is not enabled on this gateway' } };
  const protectedResource = (c: Context) =>
    oauth ? c.json(oauth.protectedResourceMetadata(resourceUri(c, oauth.settings.resource))) : c.json(noOAuth, 404);
  app.get('/.well-known/oauth-protected-resource', protectedResource);
  app.get('/.well-known/oauth-protected-resource/mcp', protectedResource);
  app.get('/.well-known/oauth-authorization-server', async (c) => {
    if (!oauth) return c.json(noOAuth, 404);
    try {
      return c.json(await oauth.metadata());
    } catch (error) {
      if (!(error instanceof AuthFailure)) logger.error({ err: error }, 'authorization server metadata failed');
      return c.json({ error: { code: 'authorization_server_unavailable', message: (error as Error).message } }, 503);
    }
  });
}
