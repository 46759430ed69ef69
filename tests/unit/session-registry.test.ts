import { describe, expect, it } from 'vitest';
import { SessionRegistry } from '../../src/gateway/session-registry.js';
import { silentLogger } from '../../src/observability/logger.js';

describe('session places held while an initialize is answered', () => {
  it('count against the quota of their key and the total until released, once', () => {
    const registry = new SessionRegistry({ logger: silentLogger(), idleMs: 0, createServer: () => Promise.reject(new Error('not used')) as never });
    const first = registry.reserve('ip:10.0.0.1');
    const second = registry.reserve('ip:10.0.0.1');
    registry.reserve('ip:10.0.0.2');
    expect(registry.countFor('ip:10.0.0.1')).toBe(2);
    expect(registry.countFor('ip:10.0.0.2')).toBe(1);
    expect(registry.held).toBe(3);
    expect(registry.size).toBe(0);
    first();
    first();
    expect(registry.countFor('ip:10.0.0.1')).toBe(1);
    second();
    expect(registry.countFor('ip:10.0.0.1')).toBe(0);
    expect(registry.held).toBe(1);
  });
});
