import { ConfluxError, kindOfStatus, type ErrorKind } from '../errors.js';

/**
 * Failures of registry operations, with the HTTP status and code the REST API reports
 * (`{error: {code, message, details}}`); mapped in `http/api/api-errors.ts`.
 */
export class RegistryError extends ConfluxError {
  readonly kind: ErrorKind;

  constructor(
    readonly status: 400 | 403 | 404 | 409 | 503,
    override readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'RegistryError';
    this.kind = kindOfStatus(status);
  }

  override clientDetails(): unknown {
    return this.details;
  }
}
