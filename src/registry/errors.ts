/**
 * Failures of registry operations, with the HTTP status and code the REST API reports
 * (`{error: {code, message, details}}`); mapped in `http/api/api-errors.ts`.
 */
export class RegistryError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 503,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}
