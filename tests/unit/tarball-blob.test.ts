import { describe, expect, it } from 'vitest';
import { TarballBlob } from '../../src/store/tarball-blob.js';

describe('TarballBlob', () => {
  it('reads back exactly its bytes, as a Blob of them does, and each read is a copy of its own', async () => {
    // A view into a larger buffer, as a Buffer from Node's pool is: only the viewed bytes are its.
    const backing = new Uint8Array(64).map((_, i) => i);
    const bytes = Buffer.from(backing.buffer, 8, 16);
    const blob = new TarballBlob(bytes);

    const first = new Uint8Array(await blob.arrayBuffer());
    expect([...first]).toEqual([...backing.subarray(8, 24)]);
    expect(first.buffer.byteLength).toBe(16);
    expect(blob.size).toBe(16);
    expect(blob.type).toBe('application/x-tar');
    expect([...(await blob.bytes())]).toEqual([...first]);
    // The Blob's other readers see the same bytes.
    expect([...new Uint8Array(await new Response(blob.stream()).arrayBuffer())]).toEqual([...first]);
    expect([...new Uint8Array(await blob.slice(4, 8).arrayBuffer())]).toEqual([12, 13, 14, 15]);
    expect([...new Uint8Array(await blob.slice(-2).arrayBuffer())]).toEqual([22, 23]);
    expect(await new TarballBlob(new TextEncoder().encode('pgdata/')).text()).toBe('pgdata/');

    // A reader that changes what it got changes neither the source nor the next read.
    first.fill(0);
    expect([...new Uint8Array(await blob.arrayBuffer())]).toEqual([...backing.subarray(8, 24)]);
    expect(bytes[0]).toBe(8);
  });
});
