import { resolve } from 'node:path';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeArgs } from '../helpers/built-entries.js';
import { connectClient, ROOT, startGateway, testConfig, type ConnectedClient, type RunningGateway } from '../helpers/gateway.js';

const APP_FIXTURE = resolve(ROOT, 'tests/fixtures/app-server.ts');
const appServer = (label: string) => ({ transport: 'stdio', command: process.execPath, args: [...nodeArgs(APP_FIXTURE), label], cwd: ROOT });

/** The `ui://` resource a tool names, in the nested and the flat spelling. */
function uiUris(tool: Tool): { nested: unknown; flat: unknown } {
  const meta = tool._meta ?? {};
  return { nested: (meta.ui as { resourceUri?: unknown } | undefined)?.resourceUri, flat: meta['ui/resourceUri'] };
}

describe('MCP Apps through the gateway', () => {
  let gateway: RunningGateway;
  let connected: ConnectedClient;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: appServer('alpha'), beta: appServer('beta') }));
    connected = await connectClient(gateway.url);
  }, 60_000);

  afterAll(async () => {
    await connected?.close();
    await gateway?.stop();
  });

  it("points each server's app tool at that server's own resource", async () => {
    const { tools } = await connected.client.listTools();
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect(uiUris(byName.get('alpha__show_widget')!)).toEqual({ nested: 'conflux://alpha/ui://widget', flat: 'conflux://alpha/ui://widget' });
    expect(uiUris(byName.get('beta__show_widget')!)).toEqual({ nested: 'conflux://beta/ui://widget', flat: 'conflux://beta/ui://widget' });
    // A URI only one server offers is the one it sent.
    expect(uiUris(byName.get('alpha__show_own')!)).toEqual({ nested: 'ui://alpha', flat: 'ui://alpha' });
    expect(uiUris(byName.get('beta__show_own')!)).toEqual({ nested: 'ui://beta', flat: 'ui://beta' });

    const { resources } = await connected.client.listResources();
    expect(resources.map((r) => r.uri).sort()).toEqual(['conflux://alpha/ui://widget', 'conflux://beta/ui://widget', 'ui://alpha', 'ui://beta']);
  });

  it("reads each app tool's resource from its own server", async () => {
    const { tools } = await connected.client.listTools();
    const expected: Record<string, string> = {
      alpha__show_widget: 'alpha widget',
      beta__show_widget: 'beta widget',
      alpha__show_own: 'alpha own',
      beta__show_own: 'beta own',
    };
    const apps = tools.filter((t) => uiUris(t).nested !== undefined);
    expect(apps.map((t) => t.name).sort()).toEqual(Object.keys(expected).sort());
    for (const tool of apps) {
      const uri = uiUris(tool).nested as string;
      const { contents } = await connected.client.readResource({ uri });
      expect(contents).toHaveLength(1);
      expect(contents[0]).toMatchObject({ uri, mimeType: 'text/html;profile=mcp-app' });
      expect((contents[0] as { text: string }).text).toContain(`<p>${expected[tool.name]}</p>`);
    }
  });
});
