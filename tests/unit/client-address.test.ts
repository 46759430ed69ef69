import { describe, expect, it } from 'vitest';
import { TrustedProxies } from '../../src/auth/trusted-proxies.js';
import { clientAddress, clientAddressKey } from '../../src/limits/client-address.js';

const balancer = new TrustedProxies(['10.0.0.0/8', 'fd00::/8']);

describe('clientAddress', () => {
  it('is the peer when no proxy is trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress('10.0.0.5', '203.0.113.7', undefined)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', '203.0.113.7', new TrustedProxies([]))).toBe('10.0.0.5');
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', () => {
    expect(clientAddress('198.51.100.9', '203.0.113.7', balancer)).toBe('198.51.100.9');
  });

  it('is the peer when a trusted proxy sends no X-Forwarded-For', () => {
    expect(clientAddress('10.0.0.5', null, balancer)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', '', balancer)).toBe('10.0.0.5');
  });

  it('takes the forwarded address from a trusted peer, also one reported as IPv4-mapped IPv6', () => {
    expect(clientAddress('10.0.0.5', '203.0.113.7', balancer)).toBe('203.0.113.7');
    expect(clientAddress('::ffff:10.0.0.5', ' 203.0.113.7 ', balancer)).toBe('203.0.113.7');
  });

  it('takes the right-most entry that is not a trusted proxy, never what the client wrote left of it', () => {
    expect(clientAddress('10.0.0.5', '192.0.2.1, 203.0.113.7', balancer)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.5', '192.0.2.1, 203.0.113.7, 10.1.2.3', balancer)).toBe('203.0.113.7');
    // What the client wrote is not even read.
    expect(clientAddress('10.0.0.5', 'garbage, 203.0.113.7', balancer)).toBe('203.0.113.7');
  });

  it('takes the left-most entry when every entry is a trusted proxy (a trusted hop wrote it)', () => {
    expect(clientAddress('10.0.0.5', '10.9.9.9, 10.1.2.3', balancer)).toBe('10.9.9.9');
  });

  it('falls back to the peer on a malformed entry met before the client', () => {
    for (const header of ['unknown', 'not-an-ip', '203.0.113.7, ', '203.0.113.7, 999.1.1.1', '203.0.113.7, [10.0.0.1', '203.0.113.7,,']) {
      expect(clientAddress('10.0.0.5', header, balancer), header).toBe('10.0.0.5');
    }
  });

  it('reads IPv6 entries bare or bracketed, and IPv4 entries with a port', () => {
    expect(clientAddress('10.0.0.5', '2001:db8::7', balancer)).toBe('2001:db8::7');
    expect(clientAddress('10.0.0.5', '[2001:db8::7]:4711', balancer)).toBe('2001:db8::7');
    expect(clientAddress('10.0.0.5', '203.0.113.7:4711', balancer)).toBe('203.0.113.7');
    expect(clientAddress('fd00::1', '[fd00::2], 2001:db8::7, fd00::3', balancer)).toBe('2001:db8::7');
    expect(clientAddressKey(clientAddress('10.0.0.5', '2001:db8:1:2:3:4:5:6', balancer))).toBe('2001:db8:1:2::/64');
  });
});
