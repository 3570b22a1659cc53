/**
 * Objects keyed by caller-chosen strings (protobuf map entries, tangents by path, JSON objects).
 * They have no prototype, so keys such as "__proto__", "constructor" or "toString" are plain data:
 * never a setter that swallows the entry, never an inherited value that answers a lookup.
 */
export function emptyRecord<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** A plain object (a message or map in a tree): prototype Object.prototype or none; arrays excluded. */
export function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

export function recordFrom<V>(entries: Iterable<readonly [string, V]>): Record<string, V> {
  const record = emptyRecord<V>();
  for (const [key, value] of entries) record[key] = value;
  return record;
}

/**
 * `record[key]` where the record holds it itself, else undefined: a message object whose field
 * `toString` or `constructor` is unset must not answer with Object.prototype's function.
 */
export function ownValue(record: object, key: string): unknown {
  return Object.hasOwn(record, key) ? (record as Record<string, unknown>)[key] : undefined;
}

/** `out[name] = value`, where a field named `__proto__` is a property like any other, not the prototype. */
export function setProperty(out: Record<string, unknown>, name: string, value: unknown): void {
  if (name === "__proto__") Object.defineProperty(out, name, { value, writable: true, enumerable: true, configurable: true });
  else out[name] = value;
}
