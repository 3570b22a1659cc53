/**
 * Objects keyed by caller-chosen strings (protobuf map entries, tangents by path, JSON objects).
 * They have no prototype, so keys such as "__proto__", "constructor" or "toString" are plain data:
 * never a setter that swallows the entry, never an inherited value that answers a lookup.
 */
export function emptyRecord<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

export function recordFrom<V>(entries: Iterable<readonly [string, V]>): Record<string, V> {
  const record = emptyRecord<V>();
  for (const [key, value] of entries) record[key] = value;
  return record;
}
