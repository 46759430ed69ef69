import type { z } from 'zod';
import { ConfigSchema, HttpServerSchema, ReplicatedServerSchema, ServerConfigSchema, StdioServerSchema } from './schema.js';

type AnySchema = z.core.$ZodType;
type Path = readonly PropertyKey[];

/** Every key any kind of server entry takes: what a client's file may carry over as it is. */
export const SERVER_KEYS: readonly string[] = [
  ...new Set([...Object.keys(StdioServerSchema.shape), ...Object.keys(HttpServerSchema.shape), ...Object.keys(ReplicatedServerSchema.shape)]),
];

/**
 * The keys the config schema accepts in the object at `path` of `document`, for "did you mean".
 * Walks the schema alongside the document, so that a union picks the member the document's
 * own values select (a stdio server's keys for an entry with `command`).
 */
export function knownKeysAt(document: unknown, path: Path): string[] {
  let schema: AnySchema | undefined = ConfigSchema;
  let value: unknown = document;
  for (const segment of path) {
    schema = schema && childSchema(schema, value, segment);
    value = isRecord(value) || Array.isArray(value) ? (value as Record<PropertyKey, unknown>)[segment] : undefined;
  }
  return schema ? objectKeys(schema, value) : [];
}

function childSchema(schema: AnySchema, value: unknown, segment: PropertyKey): AnySchema | undefined {
  const def = definition(schema, value);
  if (def === undefined) return undefined;
  if (def.type === 'object') return (def.shape as Record<string, AnySchema>)[String(segment)];
  if (def.type === 'record') return def.valueType as AnySchema;
  if (def.type === 'array') return def.element as AnySchema;
  return undefined;
}

function objectKeys(schema: AnySchema, value: unknown): string[] {
  if (schema === ServerConfigSchema && serverSchemaFor(value) === undefined) return [...SERVER_KEYS];
  const def = definition(schema, value);
  return def?.type === 'object' ? Object.keys(def.shape as object) : [];
}

/** The definition of the object, record or array `schema` stands for once wrappers and unions are seen through. */
function definition(schema: AnySchema, value: unknown): Record<string, unknown> | undefined {
  // A server entry picks its schema in code (see ServerConfigSchema), invisible to a walk.
  if (schema === ServerConfigSchema) schema = serverSchemaFor(value) ?? StdioServerSchema;
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'nullable':
    case 'prefault':
    case 'readonly':
      return definition(def.innerType as AnySchema, value);
    case 'pipe':
      return definition(def.in as AnySchema, value) ?? definition(def.out as AnySchema, value);
    case 'union': {
      const options = def.options as AnySchema[];
      const discriminator = def.discriminator as string | undefined;
      const chosen = discriminator && isRecord(value) ? options.find((option) => acceptsDiscriminator(option, discriminator, value[discriminator])) : undefined;
      for (const option of chosen ? [chosen] : options) {
        const found = definition(option, value);
        if (found) return found;
      }
      return undefined;
    }
    case 'object':
    case 'record':
    case 'array':
      return def;
    default:
      return undefined;
  }
}

function acceptsDiscriminator(option: AnySchema, key: string, value: unknown): boolean {
  const shape = (option._zod.def as unknown as { shape?: Record<string, AnySchema> }).shape;
  const field = shape?.[key];
  return field !== undefined && (field as z.ZodType).safeParse(value).success;
}

/** The schema a server entry is checked against, as ServerConfigSchema chooses it; undefined when the entry does not say. */
function serverSchemaFor(value: unknown): AnySchema | undefined {
  if (!isRecord(value)) return undefined;
  if (value.urls !== undefined) return ReplicatedServerSchema;
  if (value.transport === 'stdio' || (value.transport === undefined && value.command !== undefined)) return StdioServerSchema;
  if (value.transport !== undefined || value.url !== undefined) return HttpServerSchema;
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Keys no kind of server entry takes. The schema finds these only once it knows the entry's
 * kind; an entry whose `command` is misspelt has none, and its misspelling would go unnamed.
 */
export function unknownServerKeys(document: unknown): { path: string[]; key: string }[] {
  const servers = isRecord(document) ? document.servers : undefined;
  if (!isRecord(servers)) return [];
  return Object.entries(servers).flatMap(([name, entry]) =>
    isRecord(entry) ? Object.keys(entry).filter((key) => !SERVER_KEYS.includes(key)).map((key) => ({ path: ['servers', name], key })) : [],
  );
}
