import { describe, expect, it } from 'vitest';
import { allows, DEFAULT_LOG_THRESHOLD, mostVerbose, thresholdOf, upstreamLevel } from '../../src/gateway/log-levels.js';

describe('log levels', () => {
  it('passes a message at or above the threshold only', () => {
    expect(allows('info', 'debug')).toBe(false);
    expect(allows('info', 'info')).toBe(true);
    expect(allows('warning', 'error')).toBe(true);
    expect(allows('emergency', 'alert')).toBe(false);
  });

  it('gives a session that set no level the fixed default, never another session\'s level', () => {
    expect(DEFAULT_LOG_THRESHOLD).toBe('info');
    expect(thresholdOf(undefined)).toBe('info');
    expect(thresholdOf('error')).toBe('error');
    expect(allows(thresholdOf(undefined), 'debug')).toBe(false);
  });

  it('sets an upstream to the most verbose threshold among the sessions that may read it', () => {
    expect(mostVerbose([])).toBeUndefined();
    expect(mostVerbose(['error', 'notice', 'warning'])).toBe('notice');
    expect(upstreamLevel([])).toBeUndefined();
    expect(upstreamLevel([{ logLevel: 'error' }])).toBe('error');
    // A reader that set nothing still needs its default.
    expect(upstreamLevel([{ logLevel: 'error' }, { logLevel: undefined }])).toBe('info');
    expect(upstreamLevel([{ logLevel: 'debug' }, { logLevel: undefined }])).toBe('debug');
  });
});
