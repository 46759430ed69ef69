import type { CallToolResult, ContentBlock } from './types';

/** A tool's result as a person reads it: its blocks (text, images, resources), structured content, and whether it is an error. */
export function ResultView({ result, durationMs, label }: { result: CallToolResult; durationMs?: number | undefined; label?: string }) {
  return (
    <div class={`result ${result.isError ? 'result-error' : 'result-ok'}`} data-testid="tool-result">
      <p class="result-head">
        <strong>{result.isError ? 'Tool error' : 'Result'}</strong>
        {label ? <span> · {label}</span> : null}
        {durationMs !== undefined ? <span class="muted"> · {durationMs} ms</span> : null}
      </p>
      {(result.content ?? []).map((block, index) => (
        <Block key={index} block={block} />
      ))}
      {result.structuredContent !== undefined ? (
        <details open={!result.content?.length}>
          <summary>Structured content</summary>
          <pre>{JSON.stringify(result.structuredContent, null, 2)}</pre>
        </details>
      ) : null}
    </div>
  );
}

const SHOWN_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

function Block({ block }: { block: ContentBlock }) {
  switch (block.type) {
    case 'text':
      return <pre class="text-block">{block.text}</pre>;
    case 'image':
      // Only the raster types a browser shows as pictures; anything else is named, not loaded.
      return SHOWN_IMAGES.has(block.mimeType) ? (
        <img class="image-block" src={`data:${block.mimeType};base64,${block.data}`} alt={`Image result (${block.mimeType})`} />
      ) : (
        <p class="muted">Image ({block.mimeType}) not shown</p>
      );
    case 'audio':
      return <p class="muted">Audio ({block.mimeType}, {Math.round((block.data.length * 3) / 4)} bytes)</p>;
    case 'resource':
      return (
        <div class="resource-block">
          <p>
            Resource <code>{block.resource.uri}</code>
            {block.resource.mimeType ? <span class="muted"> ({block.resource.mimeType})</span> : null}
          </p>
          {block.resource.text !== undefined ? <pre>{block.resource.text}</pre> : <p class="muted">Binary content</p>}
        </div>
      );
    case 'resource_link':
      return (
        <p class="resource-block">
          Link to resource <code>{block.uri}</code> {block.name}
          {block.description ? <span class="muted"> — {block.description}</span> : null}
        </p>
      );
    default:
      return <pre>{JSON.stringify(block, null, 2)}</pre>;
  }
}
