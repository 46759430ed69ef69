import { ConfluxError, kindOfStatus, type ErrorKind } from '../errors.js';

/** Why a request was not authenticated; the HTTP layer turns it into 401/403/503 with `WWW-Authenticate`. */
export class AuthFailure extends ConfluxError {
  readonly kind: ErrorKind;

  constructor(
    readonly status: 401 | 403 | 503,
    /** RFC 6750 error code; absent when the request carried no credentials at all. */
    override readonly code: 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'temporarily_unavailable' | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'AuthFailure';
    this.kind = kindOfStatus(status);
  }

  static invalidToken(message: string): AuthFailure {
    return new AuthFailure(401, 'invalid_token', message);
  }
}
