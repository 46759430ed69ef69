import { fieldsOf, type FieldValues } from './schema-fields.js';
import type { JsonSchema } from './types.js';

interface SchemaFormProps {
  schema: JsonSchema;
  /** Makes the inputs' ids unique on the page. */
  idPrefix: string;
  values: FieldValues;
  problems: Record<string, string>;
  onChange(values: FieldValues): void;
}

/** The inputs of a tool's arguments, each labelled with its name and described by its schema's description. */
export function SchemaForm({ schema, idPrefix, values, problems, onChange }: SchemaFormProps) {
  const fields = fieldsOf(schema);
  if (fields.length === 0) return <p class="muted">This tool takes no arguments.</p>;
  const set = (name: string, value: string | boolean) => onChange({ ...values, [name]: value });
  return (
    <div class="fields">
      {fields.map((field) => {
        const id = `${idPrefix}-${field.name}`;
        const help = field.schema.description ? `${id}-help` : undefined;
        const problemId = problems[field.name] ? `${id}-problem` : undefined;
        const describedBy = [help, problemId].filter(Boolean).join(' ') || undefined;
        const value = values[field.name];
        const label = (
          <label for={id}>
            {field.name}
            {field.required ? <span class="required"> (required)</span> : null}
            <span class="type"> {field.kind === 'json' ? 'JSON' : field.kind}</span>
          </label>
        );
        let input;
        if (field.kind === 'boolean') {
          input = <input id={id} type="checkbox" checked={value === true} aria-describedby={describedBy} onChange={(e) => set(field.name, e.currentTarget.checked)} />;
        } else if (field.kind === 'enum') {
          input = (
            <select id={id} value={String(value ?? '')} aria-describedby={describedBy} aria-invalid={problemId ? true : undefined} onChange={(e) => set(field.name, e.currentTarget.value)}>
              {field.required ? null : <option value="">(none)</option>}
              {(field.schema.enum as string[]).map((option) => (
                <option key={option} value={option}>
                  {option}
                </option>
              ))}
            </select>
          );
        } else if (field.kind === 'json') {
          input = (
            <textarea id={id} rows={3} value={String(value ?? '')} spellcheck={false} aria-describedby={describedBy} aria-invalid={problemId ? true : undefined} onInput={(e) => set(field.name, e.currentTarget.value)} />
          );
        } else {
          const common = {
            id,
            value: String(value ?? ''),
            required: field.required,
            'aria-describedby': describedBy,
            'aria-invalid': problemId ? true : undefined,
            onInput: (e: { currentTarget: HTMLInputElement }) => set(field.name, e.currentTarget.value),
          };
          input = field.kind === 'text' ? <input type="text" {...common} /> : <input type="number" step={field.kind === 'number' ? 'any' : '1'} {...common} />;
        }
        return (
          <div class={`field field-${field.kind}`} key={field.name}>
            {label}
            {input}
            {help ? (
              <small id={help} class="help">
                {field.schema.description}
              </small>
            ) : null}
            {problemId ? (
              <small id={problemId} class="problem">
                {problems[field.name]}
              </small>
            ) : null}
          </div>
        );
      })}
    </div>
  );
}
