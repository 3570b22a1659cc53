/**
 * Options as protoc writes them in descriptors: standard options (`deprecated`, `packed`,
 * `java_package`…) as fields of the options message, custom options (`(tesseract.v1.differentiable)`)
 * as the extension's encoded bytes, in the order they are written. protobufjs' parser hands them over
 * as `{ name: value }` entries (`parsedOptions`), or flat (`"(a).b": value`) for enum values.
 */
import { create, fromJson, protoInt64, setExtension, ScalarType, type DescExtension, type DescMessage, type FileRegistry, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";

export type OptionEntry = Record<string, unknown>;

/** Written like options but not options: protoc keeps them elsewhere in the descriptor. */
const PSEUDO_OPTIONS = new Set(["json_name", "default", "proto3_optional"]);

const isCustom = (name: string) => name.startsWith("(");

/** Flat names (`"(a).b.c": v`, as protobufjs keeps enum values' options) as nested entries. */
export function entriesFromFlat(options: Record<string, unknown> | undefined): OptionEntry[] {
  const entries: OptionEntry[] = [];
  for (const [name, value] of Object.entries(options ?? {})) {
    const match = /^(\([^)]*\)|[^.]+)(?:\.(.+))?$/.exec(name);
    if (!match) continue;
    const [, head, rest] = match;
    if (!rest) {
      entries.push({ [head]: value });
      continue;
    }
    let entry = entries.find((e) => head in e);
    if (!entry) entries.push((entry = { [head]: {} }));
    let target = entry[head] as Record<string, unknown>;
    const path = rest.split(".");
    for (const key of path.slice(0, -1)) target = (target[key] ??= {}) as Record<string, unknown>;
    target[path[path.length - 1]] = value;
  }
  return entries;
}

/** The standard options among `entries` as a message of `schema`, or undefined when there are none. */
export function standardOptions<D extends DescMessage>(schema: D, entries: readonly OptionEntry[] | undefined): Message | undefined {
  const json: JsonObject = {};
  for (const entry of entries ?? []) {
    for (const [name, value] of Object.entries(entry)) {
      if (isCustom(name) || PSEUDO_OPTIONS.has(name)) continue;
      const previous = json[name];
      json[name] = previous === undefined ? (value as JsonValue) : ([] as JsonValue[]).concat(previous, value as JsonValue);
    }
  }
  if (Object.keys(json).length === 0) return undefined;
  try {
    return fromJson(schema, json) as Message;
  } catch (e) {
    throw new Error(`invalid option: ${(e as Error).message}`);
  }
}

/** The custom options among `entries`: name as written (inside the parentheses) and value. */
export function customOptions(entries: readonly OptionEntry[] | undefined): Array<{ name: string; value: unknown }> {
  return (entries ?? []).flatMap((entry) => Object.entries(entry).filter(([name]) => isCustom(name)).map(([name, value]) => ({ name: name.slice(1, -1), value })));
}

/**
 * Appends one custom option to `options` (a message of `schema`) as protoc does: the extension's
 * encoded bytes, as an unknown field of the options message.
 */
export function appendCustomOption(options: Message, schema: DescMessage, extension: DescExtension, value: unknown, registry: FileRegistry): void {
  if (extension.extendee.typeName !== schema.typeName) {
    throw new Error(`option (${extension.typeName}) extends ${extension.extendee.typeName}, not ${schema.typeName}`);
  }
  const container = create(schema) as Message;
  const values = extension.fieldKind === "list" ? [extensionValue(extension, value, registry)] : extensionValue(extension, value, registry);
  setExtension(container as never, extension as never, values as never);
  options.$unknown = [...(options.$unknown ?? []), ...(container.$unknown ?? [])];
}

/** A parsed option value in the shape @bufbuild/protobuf expects for the extension. */
function extensionValue(extension: DescExtension, value: unknown, registry: FileRegistry): unknown {
  const what = `option (${extension.typeName})`;
  if (extension.message) {
    if (value === null || typeof value !== "object") throw new Error(`${what}: expected a message value { … }`);
    return fromJson(extension.message, value as JsonValue, { registry });
  }
  if (extension.enum) {
    const found = typeof value === "number" ? extension.enum.values.find((v) => v.number === value) : extension.enum.values.find((v) => v.name === value);
    if (!found) throw new Error(`${what}: ${JSON.stringify(value)} is not a value of ${extension.enum.typeName}`);
    return found.number;
  }
  return scalarValue(extension.scalar!, value, what);
}

function scalarValue(scalar: ScalarType, value: unknown, what: string): unknown {
  switch (scalar) {
    case ScalarType.BOOL:
      if (typeof value !== "boolean") throw new Error(`${what}: expected true or false`);
      return value;
    case ScalarType.STRING:
      if (typeof value !== "string") throw new Error(`${what}: expected a string`);
      return value;
    case ScalarType.BYTES:
      if (typeof value !== "string") throw new Error(`${what}: expected a string`);
      return new TextEncoder().encode(value);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return protoInt64.parse(numeric(value, what));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return protoInt64.uParse(numeric(value, what));
    default:
      if (typeof value !== "number") throw new Error(`${what}: expected a number`);
      return value;
  }
}

function numeric(value: unknown, what: string): string | number {
  if (typeof value !== "number" && typeof value !== "string") throw new Error(`${what}: expected a number`);
  return value;
}
