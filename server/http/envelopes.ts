/**
 * The request envelopes of tesseract-core's endpoints (`inputs`, the path lists, the tangent or
 * cotangent vectors, `options`), checked as pydantic checks its request models: every field missing,
 * every extra key and every value of the wrong type is a 422 entry, in that order. `inputs` itself is
 * checked against the protobuf type (json-messages.ts).
 *
 * Checked here rather than by a JSON schema: ajv with allErrors made an error object for each of a
 * caller's 3 million non-string paths, and fastify joined them all into one message, holding the
 * event loop for 12 s on a 12 MB body. Here only the entries answered are made; the rest are counted.
 */
import { clip } from "../../common/errors";
import { bracedKey, keySegment } from "../../common/paths";
import { isPlainObject } from "../../common/records";
import { MAX_DETAIL_ENTRIES, MISSING_MSG, moreErrors, shortInput, valueError, type DetailEntry, type Loc } from "./errors";

const ARRAY_OBJECT = `an array object {"shape", "dtype", "data"}`;

/** What a field holds: an object, a non-empty list of path strings, or an object of array objects by path. */
type FieldKind = "object" | "paths" | "vectors";

interface Envelope {
  fields: Readonly<Record<string, FieldKind>>;
  required: readonly string[];
}

// Paths listed twice are the engine's to refuse, naming the path.
export const ENVELOPES: Readonly<Record<string, Envelope>> = {
  apply: { fields: { inputs: "object" }, required: ["inputs"] },
  abstract_eval: { fields: { inputs: "object" }, required: ["inputs"] },
  jacobian: { fields: { inputs: "object", jac_inputs: "paths", jac_outputs: "paths", options: "object" }, required: ["inputs", "jac_inputs", "jac_outputs"] },
  jacobian_vector_product: {
    fields: { inputs: "object", jvp_inputs: "paths", jvp_outputs: "paths", tangent_vector: "vectors", options: "object" },
    required: ["inputs", "jvp_inputs", "jvp_outputs", "tangent_vector"],
  },
  vector_jacobian_product: {
    fields: { inputs: "object", vjp_inputs: "paths", vjp_outputs: "paths", cotangent_vector: "vectors", options: "object" },
    required: ["inputs", "vjp_inputs", "vjp_outputs", "cotangent_vector"],
  },
};

/** A body loc as this server's messages write paths: `jac_inputs.[0]`, `tangent_vector.{mesh.points}`; the body itself "the body". */
function fieldName(loc: Loc): string {
  if (loc.length <= 1) return "the body";
  return loc
    .slice(1)
    .map((key, i) => (i === 0 ? String(key) : typeof key === "number" ? `[${key}]` : i === 1 && String(loc[1]).endsWith("_vector") ? bracedKey(key) : keySegment(key)))
    .join(".");
}

/** The 422 entries of a body that does not fit `envelope`, or undefined when it does. */
export function envelopeDetail(body: unknown, envelope: Envelope): DetailEntry[] | undefined {
  // No body at all: pydantic's missing body.
  if (body === undefined) return [{ type: "missing", loc: ["body"], msg: MISSING_MSG }];
  if (!isPlainObject(body)) return [valueError(["body"], "the body must be an object", shortInput(body))];
  const entries: DetailEntry[] = [];
  let more = 0;
  // Entries past the first MAX_DETAIL_ENTRIES are counted, never made.
  const add = (entry: () => DetailEntry) => (entries.length < MAX_DETAIL_ENTRIES ? entries.push(entry()) : more++);
  const wrong = (loc: Loc, expected: string, input: unknown) => add(() => valueError(loc, `${fieldName(loc)} must be ${expected}`, shortInput(input)));
  for (const name of envelope.required) if (!Object.hasOwn(body, name)) add(() => ({ type: "missing", loc: ["body", name], msg: MISSING_MSG }));
  for (const key in body) {
    if (Object.hasOwn(body, key) && !Object.hasOwn(envelope.fields, key)) add(() => ({ type: "extra_forbidden", loc: ["body", clip(key)], msg: "Extra inputs are not permitted" }));
  }
  for (const [name, kind] of Object.entries(envelope.fields)) {
    if (!Object.hasOwn(body, name)) continue;
    const value = body[name];
    if (kind === "paths") {
      if (!Array.isArray(value)) wrong(["body", name], "a list", value);
      else if (value.length === 0) add(() => valueError(["body", name], `${name} must NOT have fewer than 1 items`, []));
      else value.forEach((path, i) => typeof path !== "string" && wrong(["body", name, i], "a string", path));
    } else if (!isPlainObject(value)) wrong(["body", name], kind === "vectors" ? `an object of array objects by path` : "an object", value);
    else if (kind === "vectors") {
      // Said as json-messages.ts says it of an input array: "an object" sent a list's author nowhere.
      for (const key in value) if (Object.hasOwn(value, key) && !isPlainObject(value[key])) wrong(["body", name, key], ARRAY_OBJECT, value[key]);
    }
  }
  if (entries.length === 0) return undefined;
  return more > 0 ? [...entries, moreErrors(more)] : entries;
}
