import { isDeepStrictEqual } from 'node:util';
import type { ServerConfig } from './schema.js';

/**
 * The fields of a server's definition that its connection never reads: what the catalog shows
 * of it (names, filters, overrides, metadata) and whether the gateway's readiness waits for it.
 * Every other field belongs to the connection, including `timeout` and `connectTimeout` (they
 * bound its requests and its connects, and its auth reads them when it is made), `roots` (the
 * upstream asks for them when it starts, and is sent no `roots/list_changed`) and `enabled`.
 */
export const CATALOG_FIELDS = ['description', 'tags', 'prefix', 'separator', 'tools', 'required'] as const;

export type CatalogField = (typeof CATALOG_FIELDS)[number];
export type CatalogSettings = Partial<Pick<ServerConfig, CatalogField>>;

/** A server's definition as two parts: what its connection is opened with, and what only the catalog reads. */
export interface SplitServerConfig {
  connection: Record<string, unknown>;
  catalog: CatalogSettings;
}

/**
 * How a running server is affected by a new definition: not at all, in its catalog entry only
 * (its connection keeps running), or in its connection (a new one replaces it).
 */
export type ServerChange = 'unchanged' | 'catalog' | 'connection';

/** What a new set of server definitions changes, by server name, each list sorted. */
export interface ServerChanges {
  added: string[];
  removed: string[];
  /** A connection setting changed: a new connection replaces the running one. */
  reconnected: string[];
  /** Only catalog settings changed: applied to the running entry. */
  updated: string[];
}

/** Splits `config` into its connection settings and its catalog settings (keys left out stay out, so that the parts compare as the whole does). */
export function splitServerConfig(config: ServerConfig): SplitServerConfig {
  const connection: Record<string, unknown> = { ...config };
  const catalog: Record<string, unknown> = {};
  for (const field of CATALOG_FIELDS) {
    if (!(field in connection)) continue;
    catalog[field] = connection[field];
    delete connection[field];
  }
  return { connection, catalog: catalog as CatalogSettings };
}

/** How replacing `running` with `next` affects the server (see `ServerChange`). */
export function serverChange(running: ServerConfig, next: ServerConfig): ServerChange {
  if (isDeepStrictEqual(running, next)) return 'unchanged';
  return isDeepStrictEqual(splitServerConfig(running).connection, splitServerConfig(next).connection) ? 'catalog' : 'connection';
}

/** What replacing the `running` definitions with `next` does to each server. */
export function serverChanges(running: Readonly<Record<string, ServerConfig>>, next: Readonly<Record<string, ServerConfig>>): ServerChanges {
  const changes: ServerChanges = { added: [], removed: [], reconnected: [], updated: [] };
  // Own keys only: a server may be named `constructor`.
  for (const name of Object.keys(running)) if (!Object.hasOwn(next, name)) changes.removed.push(name);
  for (const [name, config] of Object.entries(next)) {
    const before = Object.hasOwn(running, name) ? running[name] : undefined;
    if (before === undefined) {
      changes.added.push(name);
      continue;
    }
    const change = serverChange(before, config);
    if (change === 'connection') changes.reconnected.push(name);
    else if (change === 'catalog') changes.updated.push(name);
  }
  for (const list of Object.values(changes)) list.sort();
  return changes;
}
