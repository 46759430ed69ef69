import type { JsonSchema } from './types.js';

/**
 * The fields of a tool's input schema and the arguments their inputs make: pure, so that the
 * form (schema-form.tsx) stays a view.
 */

/** A form field's value as the inputs hold it: text, or a checkbox's state. */
export type FieldValues = Record<string, string | boolean>;

export type Kind = 'text' | 'number' | 'integer' | 'boolean' | 'enum' | 'json';

export interface Field {
  name: string;
  kind: Kind;
  schema: JsonSchema;
  required: boolean;
}

/** The fields a tool's input schema asks for, in its order; anything but a plain value is edited as JSON. */
export function fieldsOf(schema: JsonSchema): Field[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, property]) => ({ name, kind: kindOf(property), schema: property, required: required.has(name) }));
}

function kindOf(schema: JsonSchema): Kind {
  if (Array.isArray(schema.enum) && schema.enum.length > 0 && schema.enum.every((v) => typeof v === 'string')) return 'enum';
  const types = (Array.isArray(schema.type) ? schema.type : [schema.type]).filter((t) => t !== 'null');
  if (types.length !== 1) return 'json';
  const [type] = types;
  return type === 'string' || type === 'number' || type === 'integer' || type === 'boolean' ? (type === 'string' ? 'text' : type) : 'json';
}

/** The inputs' starting values: each field's default, if it has one. */
export function initialValues(schema: JsonSchema): FieldValues {
  // No prototype: a property an upstream names `__proto__` is a field like any other.
  const values = Object.create(null) as FieldValues;
  for (const field of fieldsOf(schema)) {
    const fallback = field.schema.default;
    if (field.kind === 'boolean') values[field.name] = fallback === true;
    else if (fallback === undefined) values[field.name] = '';
    else values[field.name] = field.kind === 'json' ? JSON.stringify(fallback, null, 2) : String(fallback);
  }
  return values;
}

/** The call's arguments from the inputs, or what is wrong with each field. */
export function argumentsFrom(schema: JsonSchema, values: FieldValues): { arguments: Record<string, unknown> } | { problems: Record<string, string> } {
  // No prototype: an argument named `__proto__` is sent, and checked when required.
  const args = Object.create(null) as Record<string, unknown>;
  const problems = Object.create(null) as Record<string, string>;
  for (const field of fieldsOf(schema)) {
    const value = values[field.name];
    if (field.kind === 'boolean') {
      if (field.required || value !== (field.schema.default === true)) args[field.name] = value === true;
      continue;
    }
    const text = typeof value === 'string' ? value : '';
    if (text.trim() === '') {
      if (field.required) problems[field.name] = 'required';
      continue;
    }
    if (field.kind === 'number' || field.kind === 'integer') {
      const number = Number(text);
      if (!Number.isFinite(number) || (field.kind === 'integer' && !Number.isInteger(number))) problems[field.name] = `expected ${field.kind === 'integer' ? 'an integer' : 'a number'}`;
      else args[field.name] = number;
    } else if (field.kind === 'json') {
      try {
        args[field.name] = JSON.parse(text);
      } catch {
        problems[field.name] = 'expected JSON';
      }
    } else {
      args[field.name] = text;
    }
  }
  return Object.keys(problems).length ? { problems } : { arguments: args };
}
