import { inspect } from 'node:util';

/**
 * A secret value that does not show itself: logging, JSON, string conversion and
 * `util.inspect` all print `[secret]`; only `reveal()` gives the value, so every place that
 * uses it says so.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[secret]';
  }

  toJSON(): string {
    return '[secret]';
  }

  [inspect.custom](): string {
    return '[secret]';
  }
}
