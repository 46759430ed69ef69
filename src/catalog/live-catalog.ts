import { buildToolCatalog, EMPTY_CATALOG, type ToolCatalog, type UpstreamTools } from './tool-catalog.js';

/**
 * The current catalog, rebuilt only when an upstream's tools or state change, never per
 * request. `update` reports whether what clients see actually changed, so sessions are told
 * about real changes only.
 */
export class LiveCatalog {
  #catalog: ToolCatalog = EMPTY_CATALOG;
  #signature = '[]';

  get current(): ToolCatalog {
    return this.#catalog;
  }

  update(upstreams: readonly UpstreamTools[]): boolean {
    const next = buildToolCatalog(upstreams);
    const signature = JSON.stringify(next.tools);
    this.#catalog = next;
    if (signature === this.#signature) return false;
    this.#signature = signature;
    return true;
  }
}
