import { INVALID_SPAN_CONTEXT, ProxyTracerProvider, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';

/**
 * OpenTelemetry spans through the API only: with no SDK registered in the process (the
 * default) every call is a no-op. To export traces, preload an SDK, e.g.
 * `node --import @opentelemetry/auto-instrumentations-node/register dist/cli.js serve`.
 */
const tracer = () => trace.getTracer(GATEWAY_NAME, GATEWAY_VERSION);

/** What `work` gets while no SDK is registered: records nothing, like the API's own no-op span. */
const NOT_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Whether an SDK is registered. Asked per span, so one registered later is used at once; while
 * there is none, spans are skipped outright (the API's no-op path still allocated a tracer,
 * a span and a context per call, twice per tool call).
 */
function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(GATEWAY_NAME, GATEWAY_VERSION) !== undefined;
}

/** Runs `work` inside a span, ending it with the outcome. */
export async function inSpan<T>(name: string, kind: 'server' | 'client', attributes: Record<string, string | number | undefined>, work: (span: Span) => Promise<T>): Promise<T> {
  if (!tracing()) return work(NOT_RECORDING);
  return tracer().startActiveSpan(name, { kind: kind === 'server' ? SpanKind.SERVER : SpanKind.CLIENT, attributes: clean(attributes) }, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}

function clean(attributes: Record<string, string | number | undefined>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) out[key] = value;
  return out;
}
