import type { ServerCapabilities } from '@modelcontextprotocol/client';

/** The capability each method needs a server to declare, as the SDK client's strict mode reads them. */
const NEEDED: Readonly<Record<string, (capabilities: ServerCapabilities) => unknown>> = {
  'tools/list': (c) => c.tools,
  'tools/call': (c) => c.tools,
  'prompts/list': (c) => c.prompts,
  'prompts/get': (c) => c.prompts,
  'resources/list': (c) => c.resources,
  'resources/templates/list': (c) => c.resources,
  'resources/read': (c) => c.resources,
  'resources/subscribe': (c) => c.resources?.subscribe,
  'resources/unsubscribe': (c) => c.resources?.subscribe,
  'completion/complete': (c) => c.completions,
  'logging/setLevel': (c) => c.logging,
};

/** Whether a server that declared `capabilities` offers `method`; a method no capability governs is offered. */
export function offersMethod(capabilities: ServerCapabilities, method: string): boolean {
  const needed = Object.hasOwn(NEEDED, method) ? NEEDED[method] : undefined;
  return needed === undefined || Boolean(needed(capabilities));
}
