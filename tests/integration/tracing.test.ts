import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, describe, expect, it } from 'vitest';
import { connectClient, startGateway, stdioFixture, testConfig } from '../helpers/gateway.js';

describe('OpenTelemetry traces', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider.register();
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
  });

  it('records a span per downstream call with a child span per upstream request, once an SDK is registered', async () => {
    const gateway = await startGateway(testConfig({ t: stdioFixture('t') }));
    try {
      const { client, close } = await connectClient(gateway.url);
      await client.callTool({ name: 't__echo', arguments: { text: 'x' } });
      await close();
      const spans = exporter.getFinishedSpans();
      const server = spans.find((s) => s.name === 'tools/call t__echo')!;
      const upstream = spans.find((s) => s.name === 'upstream tools/call')!;
      expect(server.attributes).toMatchObject({ 'mcp.tool': 't__echo', 'enduser.id': 'anonymous' });
      expect(upstream.attributes).toMatchObject({ 'mcp.server': 't', 'mcp.method': 'tools/call' });
      expect(upstream.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
      expect(upstream.spanContext().traceId).toBe(server.spanContext().traceId);
    } finally {
      await gateway.stop();
    }
  });
});
