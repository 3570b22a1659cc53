/**
 * Fields by their keys in tesseract-core's JSON. A field's key is its `(tesseract.v1.json_key)`
 * option where it has one (a bridged runtime's key that protobuf could not take as a field name:
 * proto-field-names.ts), else its name. Trees, paths over gRPC and the .proto use names; the JSON a
 * bridged runtime is sent and answers, and this server's REST API (tesseract-core's, paths
 * included), use keys. A REST path may name a field by its name where no key does (a key no path
 * can spell, `a.b`): no name is another field's key (proto-field-names.ts), so the two never name
 * different fields.
 */
import * as protobuf from "protobufjs";
import { someFieldBelow } from "../../common/fields-below";
import { formatPath, parsePath, type Segment } from "../../common/paths";

const JSON_KEY_OPTION = "(tesseract.v1.json_key)";

/** The field's key in tesseract-core's JSON. */
export function jsonKey(field: protobuf.Field): string {
  const key = field.options?.[JSON_KEY_OPTION];
  return typeof key === "string" ? key : field.name;
}

const byKey = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

/** The field of `type` whose key is `key`, or undefined. */
export function fieldOfKey(type: protobuf.Type, key: string): protobuf.Field | undefined {
  let fields = byKey.get(type);
  if (!fields) byKey.set(type, (fields = new Map(type.fieldsArray.map((f) => [jsonKey(f), f]))));
  return fields.get(key);
}

/** The keys of `type`'s fields, in their order (for messages that list them). */
export const jsonKeys = (type: protobuf.Type): string[] => type.fieldsArray.map(jsonKey);

const keyed = new WeakMap<protobuf.Type, boolean>();

/** Whether a field of `type`, or of a message below it, has a key other than its name. */
const hasJsonKeys = (type: protobuf.Type): boolean => someFieldBelow(type, (f) => jsonKey(f) !== f.name, keyed);

/**
 * `segments` of a path in `type` with each field segment renamed by `rename`; a segment that names
 * no field is kept (the engine refuses the path, naming it), as is everything below it.
 */
function renamed(type: protobuf.Type, segments: readonly Segment[], rename: (field: protobuf.Field) => string, find: (t: protobuf.Type, name: string) => protobuf.Field | undefined): Segment[] {
  let message: protobuf.Type | undefined = type;
  return segments.map((s) => {
    if (s.kind !== "field") return s;
    const field = message && find(message, s.name);
    message = field?.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    return field ? { kind: "field", name: rename(field) } : s;
  });
}

/** The field of `type` named `name` (an own property only: a name such as "constructor" is no field unless declared), or undefined. */
export const fieldNamed = (type: protobuf.Type, name: string): protobuf.Field | undefined => (Object.hasOwn(type.fields, name) ? type.fields[name] : undefined);

/** A path's segments (field names) with the fields' keys: where its value is in the JSON. */
export function keySegments(type: protobuf.Type, segments: readonly Segment[]): Segment[] {
  return renamed(type, segments, jsonKey, fieldNamed);
}

/**
 * A path of field names as the REST API writes it, in keys (`w_v_2` → `wV`); a key no path can
 * spell (`a.b`, `1x`) stays the field's name, which the REST API takes too.
 */
export function keyPath(type: protobuf.Type, path: string): string {
  const spelt = (field: protobuf.Field) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(jsonKey(field)) ? jsonKey(field) : field.name);
  return formatPath(renamed(type, parsePath(path), spelt, fieldNamed));
}

/**
 * A REST API path (keys) as a path of field names (`wV` → `w_v_2`); one that does not parse is
 * left as it is, for the engine to refuse naming it.
 */
export function namePath(type: protobuf.Type, path: string): string {
  // Nothing to rename (every Tesseract but a bridged one): parsed and written again, 100 000 paths
  // of a 60 MB body held the event loop for a second and a half.
  if (!hasJsonKeys(type)) return path;
  let segments: Segment[];
  try {
    segments = parsePath(path);
  } catch {
    return path;
  }
  return formatPath(renamed(type, segments, (f) => f.name, (t, name) => fieldOfKey(t, name) ?? fieldNamed(t, name)));
}
