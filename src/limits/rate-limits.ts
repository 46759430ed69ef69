import type { GatewayMetrics } from '../observability/metrics.js';
import { RateLimitedError, RateLimiterUnavailableError } from './errors.js';
import type { RateLimiter } from './rate-limiter.js';

export interface RateLimitSettings {
  perPrincipal: number;
  perServer: number;
  windowSeconds: number;
}

/** The gateway's two rate limits over one limiter (memory, or Redis shared by replicas). */
export class RateLimits {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly settings: RateLimitSettings,
    private readonly metrics?: GatewayMetrics,
  ) {}

  /** Throws `RateLimitedError` when `principal` has used its requests for the window (`RateLimiterUnavailableError` when Redis does not answer under failClosed). */
  async principal(principal: string): Promise<void> {
    if (this.settings.perPrincipal <= 0) return;
    const decision = await this.limiter.hit(`p:${principal}`, this.settings.perPrincipal, this.settings.windowSeconds * 1000);
    if (!decision.allowed) {
      if (decision.unavailable) throw new RateLimiterUnavailableError('principal');
      this.metrics?.rateLimited.inc({ scope: 'principal' });
      throw new RateLimitedError('principal', decision.retryAfterSeconds, principal);
    }
  }

  /** Throws `RateLimitedError` when the upstream `server` has taken its calls for the window. */
  async server(server: string): Promise<void> {
    if (this.settings.perServer <= 0) return;
    const decision = await this.limiter.hit(`s:${server}`, this.settings.perServer, this.settings.windowSeconds * 1000);
    if (!decision.allowed) {
      if (decision.unavailable) throw new RateLimiterUnavailableError('server');
      this.metrics?.rateLimited.inc({ scope: 'server' });
      throw new RateLimitedError('server', decision.retryAfterSeconds, `server "${server}"`);
    }
  }
}
