import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { listen } from '../../src/http/listen.js';

/**
 * Shutdown waits for answers being written, but not for long-lived streams: those are told by
 * what the gateway answered (an event stream to a GET or a listen), never by a request header
 * a client chooses.
 */
describe('answers shutdown waits for', () => {
  it('excepts an event stream answered to a listen, and waits for anything else claiming to be one', async () => {
    let releaseJson!: () => void;
    const jsonHeld = new Promise<void>((resolve) => (releaseJson = resolve));
    let reachedJson!: () => void;
    const jsonReached = new Promise<void>((resolve) => (reachedJson = resolve));
    let closeStream!: () => void;
    const app = new Hono();
    app.post('/stream', () => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(': open\n\n'));
          closeStream = () => controller.close();
        },
      });
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
    });
    // Claims to be a listen by its header, answers JSON once released.
    app.post('/json', async () => {
      reachedJson();
      await jsonHeld;
      return Response.json({ ok: true });
    });
    const listening = await listen(app, '127.0.0.1', 0);
    const base = `http://127.0.0.1:${listening.port}`;
    const headers = { 'mcp-method': 'subscriptions/listen' };
    try {
      const stream = await fetch(`${base}/stream`, { method: 'POST', headers });
      const reader = stream.body!.getReader();
      await reader.read();
      // The stream alone is open: nothing is being answered.
      expect(await listening.answered(5_000)).toBe(true);

      const pending = fetch(`${base}/json`, { method: 'POST', headers });
      await jsonReached;
      // A request the handler holds: waited for, whatever its header says.
      expect(await listening.answered(200)).toBe(false);
      releaseJson();
      expect((await (await pending).json()) as unknown).toEqual({ ok: true });
      expect(await listening.answered(5_000)).toBe(true);
      closeStream();
      await reader.cancel();
    } finally {
      releaseJson();
      await listening.stopAccepting();
      listening.cut();
    }
  });
});
