import type { TestIdentityProvider } from '../fixtures/oidc-provider.js';

/** Sends a request to the gateway (a real fetch, or a Hono app's `request`); redirects are not followed. */
export type GatewayRequest = (url: string, init: { headers: Record<string, string> }) => Promise<Response>;

/** The confirmation page, as a user sees it. */
export interface StartPage {
  status: number;
  html: string;
  /** The value of the page's form, when it has one. */
  confirm: string | undefined;
}

/**
 * One user's browser towards the gateway: a cookie jar (name to value; paths and expiry beyond
 * deletion are not modelled) and the steps a user takes with the link they are given: open it,
 * confirm, sign in at the authorization server (the provider's browserless driver), land on the callback.
 */
export class AuthorizationBrowser {
  readonly cookies = new Map<string, string>();
  /** Every Set-Cookie the gateway sent, in order (to check their attributes). */
  readonly setCookies: string[] = [];

  constructor(private readonly request: GatewayRequest) {}

  async #send(url: string): Promise<Response> {
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const response = await this.request(url, { headers: cookie ? { cookie } : {} });
    for (const line of response.headers.getSetCookie()) {
      this.setCookies.push(line);
      const [pair, ...attributes] = line.split(';');
      const at = pair!.indexOf('=');
      const name = pair!.slice(0, at).trim();
      const deleted = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || attributes.some((a) => /^\s*expires=thu, 01 jan 1970/i.test(a));
      if (deleted) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(at + 1).trim());
    }
    return response;
  }

  /** Opens the gateway's link: the confirmation page. */
  async open(link: string): Promise<StartPage> {
    const response = await this.#send(link);
    const html = await response.text();
    return { status: response.status, html, confirm: /name="confirm" value="([^"]+)"/.exec(html)?.[1] };
  }

  /** Presses the page's button: answers the gateway's response (a 303 to the authorization server when it binds). */
  async confirm(link: string, page: StartPage): Promise<Response> {
    const url = new URL(link);
    url.searchParams.set('confirm', page.confirm ?? '');
    return this.#send(url.href);
  }

  /** Opens the link and confirms: the authorization server's URL the gateway redirects to. */
  async authorizationServerUrl(link: string): Promise<URL> {
    const page = await this.open(link);
    if (page.status !== 200) throw new Error(`the link answered ${page.status}: ${page.html}`);
    const response = await this.confirm(link, page);
    const location = response.headers.get('location');
    if (response.status !== 303 || !location) throw new Error(`confirming answered ${response.status}: ${await response.text()}`);
    return new URL(location);
  }

  /** The browser comes back from the authorization server to `redirect_uri` with `query`. */
  async callback(authorizationServerUrl: URL, query: Record<string, string>): Promise<Response> {
    const callback = new URL(authorizationServerUrl.searchParams.get('redirect_uri')!);
    callback.search = new URLSearchParams({ state: authorizationServerUrl.searchParams.get('state')!, ...query }).toString();
    return this.#send(callback.href);
  }

  /** At the authorization server (`url`, where confirming led): sign in as `account`, consent, and land on the callback. */
  async finish(idp: TestIdentityProvider, url: URL, account: string): Promise<Response> {
    const code = await idp.authorize(url, account);
    return this.callback(url, { code, iss: idp.issuer });
  }

  /** The whole way: link, page, confirmation, sign-in as `account` and consent, callback. */
  async authorize(idp: TestIdentityProvider, link: string, account: string): Promise<Response> {
    return this.finish(idp, await this.authorizationServerUrl(link), account);
  }
}
