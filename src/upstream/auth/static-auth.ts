import type { StaticAuthConfig } from '../../config/schema.js';
import { credentialSource, type CredentialSource } from './credential-ref.js';
import type { AuthChallenge, UpstreamAuth, UpstreamCredentials } from './upstream-auth.js';

/** Where each method puts its credential unless `header` or `param` says otherwise. */
const DEFAULT_HEADER: Record<StaticAuthConfig['method'], string> = { bearer: 'Authorization', api_key: 'X-API-Key', basic: 'Authorization', template: 'Authorization' };
const DEFAULT_PARAM: Record<StaticAuthConfig['method'], string> = { bearer: 'access_token', api_key: 'api_key', basic: 'access_token', template: 'access_token' };

/** The value a method sends, made from the credential as read now. */
export function credentialValue(config: StaticAuthConfig, credential: string): string {
  switch (config.method) {
    case 'bearer':
      // In the query the token goes alone (RFC 6750 §2.3, `access_token=<token>`), not as a header value.
      return config.location === 'query' ? credential : `${config.prefix}${credential}`;
    case 'api_key':
      return `${config.prefix}${credential}`;
    case 'basic':
      return `Basic ${Buffer.from(`${config.username}:${credential}`, 'utf8').toString('base64')}`;
    case 'template':
      return config.template.replaceAll('{credential}', credential);
  }
}

/** Credentials that do not change but when their source does: bearer, api_key, basic, template. */
export function staticAuth(server: string, config: StaticAuthConfig, env: Readonly<Record<string, string | undefined>>): UpstreamAuth {
  return new StaticAuth(config, credentialSource(server, config.credential, env));
}

class StaticAuth implements UpstreamAuth {
  /** The value sent last: a refusal of another (already rotated) value is worth one retry. */
  #sent: string | undefined;

  constructor(
    private readonly config: StaticAuthConfig,
    private readonly source: CredentialSource,
  ) {}

  async ready(): Promise<void> {
    this.source.read();
  }

  async credentials(): Promise<UpstreamCredentials> {
    const credential = this.source.read();
    this.#sent = credential;
    const value = credentialValue(this.config, credential);
    if (this.config.location === 'query') return { headers: {}, query: { [this.config.param ?? DEFAULT_PARAM[this.config.method]]: value } };
    return { headers: { [this.config.header ?? DEFAULT_HEADER[this.config.method]]: value }, query: {} };
  }

  /**
   * A refused credential may have been rotated a moment ago (a file rewritten between two
   * checks): the file is read again now, and the request retried once if it changed.
   */
  async onRejected(challenge: AuthChallenge): Promise<boolean> {
    if (challenge.status !== 401) return false;
    const current = this.source.read({ fresh: true });
    return current !== this.#sent;
  }

  close(): void {}
}
