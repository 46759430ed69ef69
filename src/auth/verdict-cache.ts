import type { Principal } from './principal.js';

const MAX_ENTRIES = 10_000;

/**
 * Remembers which exact JWT strings verified, until they expire. A signed token cannot change,
 * so a second check of the same string can only differ by time; `exp` is compared on every use.
 * Saves the signature check (the largest cost of a token) on a client's repeated requests.
 */
export class VerdictCache {
  private readonly entries = new Map<string, { principal: Principal; expiresAt: number }>();

  get(token: string, now = Date.now()): Principal | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(token);
      return undefined;
    }
    return entry.principal;
  }

  /** `exp` in seconds, as in the token; tokens without one are not remembered. */
  set(token: string, principal: Principal, exp: unknown): void {
    if (typeof exp !== 'number') return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(token, { principal, expiresAt: exp * 1000 });
  }

  clear(): void {
    this.entries.clear();
  }
}
