import type { StaticAuthConfig } from '../../config/schema.js';
import type { UpstreamAuth } from './upstream-auth.js';

/** Credentials that do not change but when their source does: bearer, api_key, basic, template. */
export function staticAuth(server: string, config: StaticAuthConfig, env: Readonly<Record<string, string | undefined>>): UpstreamAuth {
  void server;
  void config;
  void env;
  throw new Error('not implemented yet');
}
