import { ProtocolError } from '@modelcontextprotocol/client';
import { afterEach, describe, expect, it } from 'vitest';
import { asMcpError } from '../../src/gateway/error-mapping.js';
import { HolderIncidentError, localError } from '../../src/gateway/owner-wire.js';
import { silentLogger } from '../../src/observability/logger.js';
import { BusRpc } from '../../src/state/bus-rpc.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { UpstreamConnectionLostError, UpstreamUnavailableError } from '../../src/upstream/errors.js';

/**
 * Failures of a `processes: one` request as they cross the replica bus from the replica running
 * the process (`holder`, serving a topic whose handler throws what it is given) to the one that
 * sent it, and the error that replica makes of them.
 */
describe('an error of the replica running the process, as the calling replica sees it', () => {
  const open: BusRpc[] = [];
  afterEach(() => {
    for (const rpc of open.splice(0)) rpc.close();
  });

  /** What `localError` makes of `thrown`, thrown by the holder's handler. */
  async function crossed(thrown: unknown): Promise<unknown> {
    const hub = new MemoryHub();
    const [caller, holder] = [new MemorySharedState(hub), new MemorySharedState(hub)];
    const [callerRpc, holderRpc] = [caller, holder].map((state) => new BusRpc(state.bus, silentLogger())) as [BusRpc, BusRpc];
    open.push(callerRpc, holderRpc);
    holderRpc.serve('test-request', () => {
      throw thrown;
    });
    const failure = await callerRpc.call(holder.replicaId, 'test-request', {}, { timeoutMs: 5000 }).catch((error: unknown) => error);
    return localError(failure, 'solo', 'tools/call');
  }

  it('is a lost connection, saying why, when the request was cut short there (an aborted signal rethrows its reason)', async () => {
    const error = await crossed('the gateway is stopping');
    expect(error).toBeInstanceOf(UpstreamConnectionLostError);
    expect((error as Error).message).toBe('upstream "solo" lost its connection during tools/call: the gateway process running it stopped the request (the gateway is stopping)');
    const abort = await crossed(new DOMException('This operation was aborted', 'AbortError'));
    expect((abort as Error).message).toBe('upstream "solo" lost its connection during tools/call: the gateway process running it stopped the request (This operation was aborted)');
    // A client reads it as it reads a lost connection: its message, not an incident id.
    expect(asMcpError(error, silentLogger())).toMatchObject({ code: -32603, message: (error as Error).message });
  });

  it('is a lost connection when it failed there unexpectedly (the request may or may not have run), naming its incident there', async () => {
    const error = await crossed(new HolderIncidentError('Internal error (incident 6d1f0c3e)'));
    expect(error).toBeInstanceOf(UpstreamConnectionLostError);
    expect((error as Error).message).toBe('upstream "solo" lost its connection during tools/call: the gateway process running it failed (Internal error (incident 6d1f0c3e))');
    expect(asMcpError(error, silentLogger()).message).toBe((error as Error).message);
    // Any other failure's text may quote internals: its kind alone is told.
    const broken = await crossed(new TypeError("Cannot read properties of undefined (reading 'rows')"));
    expect(broken).toBeInstanceOf(UpstreamConnectionLostError);
    expect((broken as Error).message).toBe('upstream "solo" lost its connection during tools/call: the gateway process running it failed unexpectedly (TypeError)');
  });

  it('keeps the typed faults and JSON-RPC errors as they were', async () => {
    const stopping = await crossed(new UpstreamUnavailableError('solo', 'the gateway process running it is stopping; try again shortly'));
    expect(stopping).toBeInstanceOf(UpstreamUnavailableError);
    expect((stopping as Error).message).toBe('upstream "solo" is unavailable: the gateway process running it is stopping; try again shortly');
    const refused = await crossed(new ProtocolError(-32602, 'name is required', { field: 'name' }));
    expect(refused).toBeInstanceOf(ProtocolError);
    expect(refused).toMatchObject({ code: -32602, data: { field: 'name' } });
  });
});
