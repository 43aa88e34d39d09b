/** Positional parameters of one statement: `add` returns the placeholder of a new value. */
export class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}
