/**
 * The shapes of pydantic's JSON schemas as openapi-proto.ts meets them: other spellings of the
 * shapes it maps (`allOf` of one schema, a `type` list holding "null", `const`), and, for those
 * with no protobuf form, the start-up error that names the property and what it is in Python
 * terms (a union of models, a dict of lists…), so that the Tesseract's author knows what to change.
 */

import { clip, quote } from "../../common/errors";

type JsonSchema = Record<string, unknown>;

const isObject = (x: unknown): x is JsonSchema => typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * `s` in the spelling openapi-proto.ts maps: `{allOf: [X], …}` (pydantic's $ref beside a
 * description or default) as X with the rest; `{type: [T, "null"]}` as Optional[T] (`anyOf`).
 */
export function normalised(s: JsonSchema): JsonSchema {
  if (Array.isArray(s.allOf) && s.allOf.length === 1 && isObject(s.allOf[0])) {
    const { allOf, ...rest } = s;
    return normalised({ ...(allOf as JsonSchema[])[0], ...rest });
  }
  if (Array.isArray(s.type) && s.type.includes("null")) {
    const types = s.type.filter((t) => t !== "null");
    const { type: _, default: fallback, ...rest } = s;
    const inner = { ...rest, type: types.length === 1 ? types[0] : types };
    return { anyOf: [inner, { type: "null" }], ...(Object.hasOwn(s, "default") ? { default: fallback } : {}) };
  }
  return s;
}

/** A schema's short name in a message: a model's name, a type, `None`, `list[…]`. */
function shortName(s: unknown): string {
  if (!isObject(s)) return "?";
  if (typeof s.$ref === "string") return s.$ref.slice(s.$ref.lastIndexOf("/") + 1).replace(/^Apply_/, "");
  if (s.type === "null") return "None";
  if (s.type === "array") return `list[${shortName(s.items)}]`;
  if (s.type === "object" && isObject(s.additionalProperties)) return `dict[str, ${shortName(s.additionalProperties)}]`;
  if (Array.isArray(s.enum)) return `Literal[${s.enum.map((v) => JSON.stringify(v)).join(", ")}]`;
  if (typeof s.type === "string") return s.type;
  return "Any";
}

/** Why the value schema `s` at `path` has no protobuf form, as the start-up error says it. */
export function noProtobufForm(s: JsonSchema, path: string): string {
  const options = Array.isArray(s.oneOf) ? s.oneOf : Array.isArray(s.anyOf) ? s.anyOf : undefined;
  if (options) {
    const discriminator = isObject(s.discriminator) && typeof s.discriminator.propertyName === "string" ? `, discriminated by ${quote(s.discriminator.propertyName)}` : "";
    return `${clip(path)}: a union (${clip(options.map(shortName).join(" | "))}${discriminator}) has no protobuf form here: a field has one type; use one model with Optional fields, or a field per alternative`;
  }
  if (Array.isArray(s.type)) return `${clip(path)}: a union of types (${clip(s.type.join(" | "))}) has no protobuf form here: a field has one type`;
  if (s.type === "null") return `${clip(path)}: a field that can only be None has no protobuf form`;
  if (s.type === "object") return `${clip(path)}: a dict whose values have no schema (dict, dict[str, Any]) has no protobuf form; declare the values' type`;
  if (s.type === undefined) return `${clip(path)}: a value of any type (Any, or no type) has no protobuf form; declare its type`;
  return `${clip(path)}: schema ${JSON.stringify(s).slice(0, 120)} has no protobuf form`;
}

/**
 * Why a list's items or a dict's values, `element`, have no protobuf form (a repeated field's
 * elements and a map's values are single values), or undefined.
 */
export function containerProblem(container: "list" | "dict", element: JsonSchema, path: string): string | undefined {
  const inner = element.type === "array" ? "lists" : element.type === "object" && isObject(element.additionalProperties) && !("array_flags" in element) ? "dicts" : undefined;
  const hint = `wrap the inner ${inner === "lists" ? "list" : "dict"} in a model`;
  if (inner) return `${clip(path)}: a ${container} of ${inner} has no protobuf form (${clip(shortName({ type: container === "list" ? "array" : "object", items: element, additionalProperties: element }))}); ${hint}`;
  const options = Array.isArray(element.anyOf) ? (element.anyOf as unknown[]) : [];
  if (options.some((o) => isObject(o) && o.type === "null")) {
    return `${clip(path)}: a ${container} of Optional values (None among its ${container === "list" ? "items" : "values"}) has no protobuf form: a repeated or map field cannot hold None; use a default value, or wrap the value in a model`;
  }
  return undefined;
}
