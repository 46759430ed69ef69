/**
 * The console's one way to the gateway: the REST API under /api/v1 (and /metrics), with the
 * signed-in credential as a Bearer token. Same origin, JSON bodies: the requests pass the
 * gateway's Host, Origin and content-type guards like any client's.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface Api {
  get<T>(path: string): Promise<T>;
  send<T>(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T>;
  /** The gateway's Prometheus metrics, as text. */
  metrics(): Promise<string>;
}

export const API_BASE = '/api/v1';

/** The API as `token` (none: a gateway with `auth: none`) may use it. */
export function createApi(token: string | undefined, onUnauthorized: () => void): Api {
  const headers = (json: boolean): Record<string, string> => ({
    accept: 'application/json',
    ...(json ? { 'content-type': 'application/json' } : {}),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  });
  const request = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${API_BASE}${path}`, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    if (response.status === 204) return undefined as T;
    const payload: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const error = (payload as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
      if (response.status === 401) onUnauthorized();
      throw new ApiError(response.status, error?.code ?? 'http_error', error?.message ?? `HTTP ${response.status}`, error?.details);
    }
    return payload as T;
  };
  return {
    get: (path) => request('GET', path),
    send: (method, path, body) => request(method, path, body),
    async metrics() {
      const response = await fetch('/metrics', { cache: 'no-store', credentials: 'omit' });
      if (!response.ok) throw new ApiError(response.status, 'http_error', `metrics: HTTP ${response.status}`);
      return response.text();
    },
  };
}

/** What an error says to the person using the console. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.status} ${error.code})`;
  return error instanceof Error ? error.message : String(error);
}
