/**
 * Message types for a Tesseract that tesseract-core serves: its `/openapi.json` apply schemas written
 * as a `.proto` file, so that a bridged Tesseract has a schema, reflection and generated stubs like a
 * bundled one. The mapping (tesseract-core's schema conventions are in docs/bridge.md):
 *
 *   model ($ref)                      -> message (Apply_ prefix dropped; Apply_InputSchema -> Inputs)
 *   array object (array_flags), inline or a $ref to one (pydantic's own form)
 *                                     -> tesseract.v1.Tensor, [(tesseract.v1.differentiable) = true]
 *                                        when array_flags holds DIFFERENTIABLE (not for a float16 or
 *                                        complex one: UNDIFFERENTIABLE_DTYPES), and
 *                                        [(tesseract.v1.datatype) = DATA_TYPE_…] for its declared dtype
 *                                        (none for an any-dtype array: declaredDtype)
 *   integer, number, string, boolean  -> int64, double, string, bool
 *   enum (Literal[...])               -> enum <Field>Value { <FIELD>_VALUE_UNSPECIFIED = 0; <FIELD>_VALUE_<VALUE> = i; }
 *                                        (values of any JSON type, sent to the runtime as themselves)
 *                                        (UNSPECIFIED: unset, so tesseract-core's default applies)
 *   dict[str, X] (additionalProperties) -> map<string, X>
 *   list[X] (items)                   -> repeated X
 *   Optional[X] (anyOf X | null), or a declared default -> proto3 `optional` (unset: tesseract-core's
 *                                        default applies), messages being optional already
 *   const (a one-value Literal)       -> that scalar when typed, else an enum as for Literal
 *   allOf [X], type [T, null]         -> X, Optional[T] (openapi-shapes.ts)
 *
 * Fields are written in the declared order (`field_order`, else the schema's property order),
 * numbered by their keys (fieldNumbers) and named by them where protobuf can take them, otherwise
 * after them with the key in `(tesseract.v1.json_key)` (proto-field-names.ts). What has no protobuf
 * form (a list of lists, a union of two types or models) is refused at start with the property's
 * path and what it is (openapi-shapes.ts).
 */
import { createHash } from "node:crypto";
import { literalName, type LiteralEnum } from "../../common/enum-names";
import { clip, quote } from "../../common/errors";
import { MAX_DEPTH } from "../../common/nesting";
import { enumValueNames } from "./enum-value-names";
import { protoFieldNames } from "./proto-field-names";
import { mapEntryName } from "./proto-compiler";
import { containerProblem, noProtobufForm, normalised } from "./openapi-shapes";

export interface ProtoFromOpenApi {
  /** The `.proto` file's text (imports tesseract/v1/tensor.proto). */
  text: string;
  packageName: string;
  inputType: string;
  outputType: string;
  /** Per enum (full name), the tesseract-core Literal it stands for. */
  enumLiterals: Record<string, LiteralEnum>;
  /** Per message (full name), the fields its model requires (an answer must hold them). */
  requiredFields: RequiredFields;
  /** Per message, the required fields that may be null (Optional[X] without a default, a Literal holding None): unset, they are sent as null. */
  nullFields: RequiredFields;
  /** What the runtime's document says that protobuf cannot, for this server's /openapi.json to say it too. */
  documented: DocumentedSchema;
  /**
   * Per message (full name) and field, the dtype of an array the runtime flags DIFFERENTIABLE that
   * is served here as not differentiable (UNDIFFERENTIABLE_DTYPES says why).
   */
  undifferentiable: Record<string, Record<string, string>>;
}

/**
 * Dtypes whose arrays finite differences here cannot differentiate, whatever the runtime flags:
 * float16 keeps 11 significant bits, so the runtime rounds a perturbed value back (1 + 1e-6 is 1)
 * and the quotient is of that rounding (a Jacobian of zeros answered OK); a complex value moved
 * along the real axis alone gives half of its derivative, and a Tensor holds no complex number.
 */
export const UNDIFFERENTIABLE_DTYPES: Readonly<Record<string, string>> = {
  float16: "and rounds every value of it to 11 significant bits, which loses a finite-difference step (1 + 1e-6 is 1); declare it float32 or float64 in the Tesseract to differentiate it",
  complex64: "and finite differences here step real numbers only, half of a complex derivative",
  complex128: "and finite differences here step real numbers only, half of a complex derivative",
};

/**
 * Per message (full name) and field: its declared `default`, and an array field's `shape` schema
 * (rank and fixed dimensions); `differentiableArrays` as the runtime lists them, shapes included.
 */
export interface DocumentedSchema {
  /** `nullable`: Optional[X] (anyOf X | null), whatever its default. */
  fields: Record<string, Record<string, { default?: unknown; shape?: unknown; nullable?: true }>>;
  differentiableArrays: { inputs: Record<string, unknown>; outputs: Record<string, unknown> };
}

/** Per message (full name, no leading dot), the names of the fields its model lists as required. */
export type RequiredFields = Record<string, string[]>;

type JsonSchema = Record<string, unknown>;

/** tesseract-core's dtype names with a tesseract.v1.DataType (float16 and complex have none). */
const DATA_TYPES: Readonly<Record<string, string>> = {
  bool: "DATA_TYPE_BOOL",
  uint8: "DATA_TYPE_UINT8",
  uint16: "DATA_TYPE_UINT16",
  uint32: "DATA_TYPE_UINT32",
  uint64: "DATA_TYPE_UINT64",
  int8: "DATA_TYPE_INT8",
  int16: "DATA_TYPE_INT16",
  int32: "DATA_TYPE_INT32",
  int64: "DATA_TYPE_INT64",
  float32: "DATA_TYPE_FP32",
  float64: "DATA_TYPE_FP64",
};

/** numpy's dtype kinds in `same_kind` order (bool, unsigned, signed, float, complex): a dtype casts to its own kind or a later one. */
const DTYPE_KINDS: Readonly<Record<string, number>> = {
  bool: 0,
  uint8: 1,
  uint16: 1,
  uint32: 1,
  uint64: 1,
  int8: 2,
  int16: 2,
  int32: 2,
  int64: 2,
  float16: 3,
  float32: 3,
  float64: 3,
  complex64: 4,
  complex128: 4,
};

/**
 * The dtype an array's dtype schema declares: its `examples[0]`, unless its `enum` takes a dtype
 * that numpy does not cast to that one `same_kind`. tesseract-core lists in the enum what it casts to
 * the declared dtype, but an array of any dtype (`Array[shape, None]`) lists every dtype, keeps the
 * caller's, and still gives "float64" as the example: taken as declared, int32 indices reached the
 * runtime cast to float64 (a 500, or OK with another number).
 */
function declaredDtype(dtypeSchema: JsonSchema): string | undefined {
  const declared = Array.isArray(dtypeSchema.examples) ? dtypeSchema.examples[0] : undefined;
  if (typeof declared !== "string" || !Object.hasOwn(DTYPE_KINDS, declared)) return undefined;
  const taken = Array.isArray(dtypeSchema.enum) ? dtypeSchema.enum : [];
  const castsToDeclared = (dtype: unknown) => typeof dtype === "string" && Object.hasOwn(DTYPE_KINDS, dtype) && DTYPE_KINDS[dtype] <= DTYPE_KINDS[declared];
  return taken.every(castsToDeclared) ? declared : undefined;
}

/** The JSON schema types that map to protobuf scalars. */
const SCALAR_TYPES = ["integer", "number", "string", "boolean"];

const isObject = (x: unknown): x is JsonSchema => typeof x === "object" && x !== null && !Array.isArray(x);

/** `info.title` as a package segment: lowercase letters, digits and underscores, starting with a letter. */
export function packageFromTitle(title: unknown): string {
  const name = String(title ?? "tesseract")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
  const slug = /^[a-z]/.test(name) ? name : `t_${name || "tesseract"}`;
  // tesseract-core titles an unnamed Tesseract "Tesseract": a package part named `tesseract` hides the
  // tesseract.v1 types the file refers to (hiddenTesseractTypes), and the server did not start.
  return `tesseract_core.${slug === "tesseract" ? "unnamed_tesseract" : shortPart(slug)}.v1`;
}

/** The longest package part made from a title. */
const MAX_PART = 64;

/**
 * A package part of at most MAX_PART characters: a longer one cut, and told apart from others cut
 * alike by a hash of the whole. Each part is a folder of the generated file's path, and a title of
 * 300 characters stopped the start with ENAMETOOLONG.
 */
export function shortPart(part: string): string {
  if (part.length <= MAX_PART) return part;
  const hash = createHash("sha256").update(part).digest("hex").slice(0, 8);
  return `${part.slice(0, MAX_PART - hash.length - 1).replace(/_+$/, "")}_${hash}`;
}

/**
 * Why `packageName` cannot hold the generated messages, or undefined: protobuf resolves a name from
 * the innermost scope out, so below a part named `tesseract` (acme.tesseract.v1) the file's
 * `tesseract.v1.Tensor` is looked for in acme.tesseract, and under `tesseract` itself the messages
 * would join the project's own package.
 */
function hiddenTesseractTypes(packageName: string): string | undefined {
  if (!packageName.split(".").includes("tesseract")) return undefined;
  return `package ${quote(packageName)} has a part named "tesseract", which hides the tesseract.v1 types its messages use: choose another (--proto-package)`;
}

const pascal = (s: string) => s.replace(/(^|_)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, "");

/**
 * The schema's own name for a model's key, without tesseract-core's endpoint prefix, as a message
 * name: accents dropped, other characters that are no identifier's too, and a capital first letter,
 * "Model" before a name left empty or starting with a digit (`3D` was an illegal token that
 * stopped the start; a lowercase `tesseract` would hide the tesseract.v1 package).
 */
function messageName(key: string): string {
  const name = key.replace(/^Apply_/, "");
  if (name === "InputSchema") return "Inputs";
  if (name === "OutputSchema") return "Outputs";
  const ascii = pascal(name.normalize("NFKD").replace(/[\u0300-\u036f]/g, ""));
  const capital = ascii.charAt(0).toUpperCase() + ascii.slice(1);
  return /^[A-Z]/.test(capital) ? capital : `Model${capital}`;
}

/**
 * A message name for every model key, each its own: names that meet after the prefix goes and the
 * case is changed (a nested model called `Inputs` beside the inputs' own; `Apply_mesh_data` and
 * `Apply_MeshData`) take a number, in the keys' order, the inputs and outputs keeping theirs. Two
 * models in one message had made the inputs refer to themselves (every request refused) or lost a
 * model's fields.
 */
function messageNames(schemas: Record<string, JsonSchema>): Map<string, string> {
  const keys = Object.keys(schemas).sort((a, b) => Number(!/^(Apply_)?(Input|Output)Schema$/.test(a)) - Number(!/^(Apply_)?(Input|Output)Schema$/.test(b)) || (a < b ? -1 : a > b ? 1 : 0));
  const names = new Map<string, string>();
  const taken = new Set<string>();
  // Per name, the number its next meeting tries first (each had tried 2, 3, … again: 50 000 keys
  // that all read `X` took minutes).
  const next = new Map<string, number>();
  for (const key of keys) {
    const base = messageName(key);
    let k = next.get(base) ?? 1;
    let name = k === 1 ? base : `${base}${k}`;
    while (taken.has(name)) name = `${base}${++k}`;
    next.set(base, k);
    taken.add(name);
    names.set(key, name);
  }
  return names;
}

/**
 * Whether `s` is tesseract-core's array object: `array_flags` (which every version of its array
 * model carries), or, without them, an `object_type` pinned to "array" beside `shape`. A model of
 * the user's with fields that happen to be called `object_type` and `shape` is a model: taken for an
 * array, its message was a Tensor and every answer was refused.
 */
function isArraySchema(s: JsonSchema): boolean {
  if ("array_flags" in s) return true;
  if (!isObject(s.properties) || !isObject(s.properties.shape) || !isObject(s.properties.object_type)) return false;
  const objectType = s.properties.object_type;
  return objectType.const === "array" || (Array.isArray(objectType.enum) && objectType.enum.length === 1 && objectType.enum[0] === "array");
}

/** Whether a property is a dict (a map field, whose entry type takes a name in its message). */
const isMapSchema = (s: JsonSchema): boolean => s.type === "object" && isObject(s.additionalProperties) && !isArraySchema(s);

class Writer {
  private readonly messages = new Map<string, string>();
  private readonly enums: string[] = [];
  readonly enumLiterals: Record<string, LiteralEnum>;
  readonly requiredFields: RequiredFields = {};
  readonly nullFields: RequiredFields = {};
  readonly documented: DocumentedSchema["fields"] = {};
  readonly undifferentiable: Record<string, Record<string, string>> = {};

  constructor(
    private readonly schemas: Record<string, JsonSchema>,
    private readonly packageName: string,
    /** tesseract-core's `field_order`, by dotted path of each model ("" for the top level). */
    private readonly fieldOrder: Record<string, string[]>,
    /** Enums another writer of the same file wrote already (their names are taken: the same values reuse one). */
    written: Record<string, LiteralEnum> = {},
    /** The enum value names of the file so far (one scope for the package), which this writer adds to. */
    private readonly valueNames = new Set<string>(),
    /** Each model's message name (messageNames). */
    private readonly names = messageNames(schemas),
    /** What the top level is called in messages: "inputs" or "outputs". */
    private readonly root = "inputs",
    /** The root's `differentiable_arrays`, by path pattern in keys (`d.{}`, `l.[]`). */
    private readonly arrays: Record<string, unknown> = {},
  ) {
    this.enumLiterals = { ...written };
    this.modelNames = new Set(names.values());
    for (const [full, literals] of Object.entries(written)) this.stemOf(full.slice(packageName.length + 1)).byValues.set(JSON.stringify(literals.values), full.slice(packageName.length + 1));
  }

  /**
   * Per enum name stem (`ModeValue`, of a field `mode`), the enums named from it (`ModeValue`,
   * `ModeValue2`, …) by their values' JSON, and the number the next new one tries first: each
   * Literal had been compared with every enum of its stem before it, and 20 000 models with a
   * `mode` field each took minutes to start.
   */
  private readonly stems = new Map<string, { byValues: Map<string, string>; next: number }>();

  /** The stem's entry, by the stem or by a name made from it (`ModeValue2`). */
  private stemOf(name: string): { byValues: Map<string, string>; next: number } {
    const stem = /^(.*Value)\d*$/.exec(name)?.[1] ?? name;
    let entry = this.stems.get(stem);
    if (!entry) this.stems.set(stem, (entry = { byValues: new Map(), next: 1 }));
    return entry;
  }

  /** The messages the document's models may become: no enum takes their names. */
  private readonly modelNames: Set<string>;

  /** How many models below the root the message being written is (`message` recurses through fields). */
  private depth = 0;

  /** A place in a start error: a path, or the root for none, clipped (keys and model names are the runtime's text). */
  private at(path: string): string {
    return clip(path || this.root);
  }

  /** Writes the message for model `ref` (once) and returns its name. */
  message(ref: string, path: string): string {
    const key = ref.slice(ref.lastIndexOf("/") + 1);
    const name = this.names.get(key) ?? messageName(key);
    if (this.messages.has(name)) return name;
    // No request or answer may nest deeper than MAX_DEPTH (common/nesting.ts): models nested deeper
    // could never be filled, and a chain of 3 000 overflowed the stack here ("Maximum call stack
    // size exceeded", the whole start error).
    if (this.depth++ > MAX_DEPTH) throw new Error(`${this.at(path)}: models nest more than ${MAX_DEPTH} deep below the ${this.root} here, deeper than a request or answer may nest`);
    this.messages.set(name, ""); // recursive references resolve to the same name
    const schema = this.resolve(ref, path);
    const declared = isObject(schema.properties) ? schema.properties : {};
    const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
    // A property that `field_order` leaves out still gets a field, after those it lists (it was dropped: no caller could set it).
    // Own entries that are lists of keys only: a model under `toString` with no field_order found Object's own function.
    const entry = Object.hasOwn(this.fieldOrder, path) ? this.fieldOrder[path] : undefined;
    const listed = Array.isArray(entry) ? entry.filter((key): key is string => typeof key === "string") : [];
    const inOrder = new Set(listed);
    const order = [...listed, ...Object.keys(declared).filter((field) => !inOrder.has(field))];
    for (const key of order) if (!isObject(declared[key])) throw new Error(`${clip(below(path, key))}: no schema for this field`);
    const properties = Object.fromEntries(order.map((key) => [key, normalised(declared[key] as JsonSchema)]));
    // Numbered by the runtime's key, named as protobuf can take it (proto-field-names.ts): a field renamed
    // because another key came to meet it keeps its number, and old stubs still fit.
    const numbers = fieldNumbers(order);
    const isMap = (key: string) => isMapSchema(properties[key] as JsonSchema);
    const fieldNames = protoFieldNames(order, isMap);
    // protobuf declares a map field's entry type (`a` -> AEntry) inside the message, where it hides a
    // model of that name: such a model is named in full (protoc took the entry for it, and refused it).
    const entries = new Set(order.filter(isMap).map((key) => mapEntryName(fieldNames.get(key)!)));
    const fields = order.map((key) => {
      const property = properties[key] as JsonSchema;
      const field = fieldNames.get(key)!;
      const options = this.options(property, field === key ? undefined : key, below(path, key), `${this.packageName}.${name}`, field);
      return `  ${this.field(property, below(path, key), field, entries)} = ${numbers.get(key)}${options};`;
    });
    this.messages.set(name, `message ${name} {\n${fields.join("\n")}\n}`);
    // Required and not nullable: such a field must be there and not null (Optional[X] may be null).
    const mayBeNull = (key: string) => this.nullable(properties[key] as JsonSchema) !== undefined || literalHoldsNull(properties[key] as JsonSchema);
    const named = (keys: string[]) => keys.map((key) => fieldNames.get(key)!);
    this.requiredFields[`${this.packageName}.${name}`] = named(order.filter((key) => required.has(key) && !mayBeNull(key)));
    this.nullFields[`${this.packageName}.${name}`] = named(order.filter((key) => required.has(key) && mayBeNull(key)));
    for (const key of order) {
      const property = properties[key] as JsonSchema;
      const array = this.arraySchema(this.nullable(property) ?? property, below(path, key));
      const shape = array && isObject(array.properties) ? array.properties.shape : undefined;
      const note = {
        ...(Object.hasOwn(property, "default") ? { default: property.default } : {}),
        ...(isObject(shape) ? { shape } : {}),
        ...(this.nullable(property) ? { nullable: true as const } : {}),
      };
      if (Object.keys(note).length > 0) (this.documented[`${this.packageName}.${name}`] ??= {})[fieldNames.get(key)!] = note;
    }
    this.depth--;
    return name;
  }

  /**
   * The schema `ref` names, through any schema that is only a `$ref` itself; a cycle of those is
   * refused, and so is a chain longer than MAX_DEPTH (one of 30 000 took 20 s to follow at every
   * field that names it).
   */
  private resolve(ref: string, path: string): JsonSchema {
    const seen: string[] = [];
    for (let current = ref; ; ) {
      if (seen.length > MAX_DEPTH) throw new Error(`${this.at(path)}: ${clip(ref)} is a chain of more than ${MAX_DEPTH} schemas that are only $refs`);
      const key = current.slice(current.lastIndexOf("/") + 1);
      // Own keys only: "__proto__" is no schema of the document's.
      const schema = Object.hasOwn(this.schemas, key) ? this.schemas[key] : undefined;
      if (!isObject(schema)) throw new Error(`${this.at(path)}: ${clip(current)} is not in components.schemas`);
      if (typeof schema.$ref !== "string") return schema;
      seen.push(key);
      if (seen.includes(schema.$ref.slice(schema.$ref.lastIndexOf("/") + 1))) throw new Error(`${this.at(path)}: ${clip(ref)} refers to itself (${clip(`${seen.join(" -> ")} -> ${schema.$ref}`)})`);
      current = schema.$ref;
    }
  }

  /** `[optional|repeated] <type> <name>`, or `map<string, X> <name>`. */
  private field(s: JsonSchema, path: string, name: string, hidden: ReadonlySet<string>): string {
    const nullable = this.nullable(s);
    if (nullable && !isArraySchema(nullable) && (nullable.type === "array" || (nullable.type === "object" && isObject(nullable.additionalProperties)))) {
      // It was refused as "a union of types, or an untyped value", quoting a plain list's schema.
      const kind = nullable.type === "array" ? "list" : "dict";
      throw new Error(`${clip(path)}: an optional ${kind} (${kind} | None) has no protobuf form: a repeated or map field cannot tell None from empty; make it required, or default it to empty`);
    }
    const type = (x: JsonSchema, at: string) => {
      const typeName = this.type(x, at, name);
      return hidden.has(typeName) ? `.${this.packageName}.${typeName}` : typeName;
    };
    if (nullable) return `${this.takesOptional(nullable, path) ? "optional " : ""}${type(nullable, path)} ${name}`;
    if (s.type === "array") return `repeated ${type(this.items(s, path), `${path}.[]`)} ${name}`;
    if (isMapSchema(s)) {
      const values = normalised(s.additionalProperties as JsonSchema);
      const problem = containerProblem("dict", values, path);
      if (problem) throw new Error(problem);
      return `map<string, ${type(values, `${path}.{}`)}> ${name}`;
    }
    // Every scalar has presence, required or not: unset, a field with a default is left to the
    // runtime, and a required one is refused (tesseract-core-client.ts), where it went as a zero.
    return `${this.takesOptional(s, path) ? "optional " : ""}${type(s, path)} ${name}`;
  }

  /** X of Optional[X] (anyOf X | null), or undefined. */
  private nullable(s: JsonSchema): JsonSchema | undefined {
    if (!Array.isArray(s.anyOf)) return undefined;
    const options = (s.anyOf as JsonSchema[]).filter((o) => o.type !== "null");
    return options.length === 1 && options.length < s.anyOf.length ? { ...normalised(options[0]), default: s.default } : undefined;
  }

  /** Whether `optional` applies: to scalars and enums (messages and tensors have presence already). */
  private takesOptional(s: JsonSchema, path: string): boolean {
    if (this.arraySchema(s, path)) return false;
    return typeof s.$ref !== "string" || Array.isArray(this.resolve(s.$ref, path).enum);
  }

  /**
   * The array schema `s` is, or refers to by `$ref` (pydantic writes a field of tesseract-core's
   * array model so, `array_flags` on the component: read as a model, its `shape` tuple stopped the
   * start), or undefined.
   */
  private arraySchema(s: JsonSchema, path: string): JsonSchema | undefined {
    const target = typeof s.$ref === "string" ? this.resolve(s.$ref, path) : s;
    return isArraySchema(target) ? target : undefined;
  }

  private items(s: JsonSchema, path: string): JsonSchema {
    if (Array.isArray(s.prefixItems)) throw new Error(`${clip(path)}: a tuple (items by position) has no protobuf form; use a list or a model`);
    if (!isObject(s.items)) throw new Error(`${clip(path)}: a list without an item schema has no protobuf form`);
    const items = normalised(s.items);
    const problem = containerProblem("list", items, path);
    if (problem) throw new Error(problem);
    return items;
  }

  /** The protobuf type of a value schema. */
  private type(s: JsonSchema, path: string, fieldName: string): string {
    if (typeof s.$ref === "string") {
      const target = this.resolve(s.$ref, path);
      if (isArraySchema(target)) return "tesseract.v1.Tensor";
      return Array.isArray(target.enum) ? this.enum(target.enum, fieldName) : this.message(s.$ref, path);
    }
    if (isArraySchema(s)) return "tesseract.v1.Tensor";
    if (Array.isArray(s.enum)) return this.enum(s.enum, fieldName);
    // A Literal of one value, as pydantic writes it; with a scalar type the field is that scalar (the runtime refuses another value).
    if (Object.hasOwn(s, "const") && !SCALAR_TYPES.includes(s.type as string)) return this.enum([s.const], fieldName);
    switch (s.type) {
      case "integer":
        return "int64";
      case "number":
        return "double";
      case "string":
        return "string";
      case "boolean":
        return "bool";
    }
    throw new Error(noProtobufForm(s, path));
  }

  /**
   * An enum for a Literal; its value numbers map back to the Literal's values (enumLiterals),
   * whatever their JSON type. Each value's number comes from the value alone (literalNumbers), as a
   * field's does from its name.
   */
  private enum(listed: unknown[], fieldName: string): string {
    // A schema may list a value twice: one enum value for it.
    const keys = new Set<string>();
    const values = listed.filter((v) => !keys.has(JSON.stringify(v)) && keys.add(JSON.stringify(v)));
    const strings = values.map(literalName);
    // The same name for the same values; another Literal on a field of the same name gets a suffix,
    // and so does one whose name a model has (a `parameter` field beside a ParameterValue model).
    const stem = `${pascal(fieldName)}Value`;
    const named = this.stemOf(stem);
    const json = JSON.stringify(values);
    const known = (n: string) => this.enumLiterals[`${this.packageName}.${n}`];
    let name = named.byValues.get(json) ?? (named.next === 1 ? stem : `${stem}${named.next}`);
    while (!named.byValues.has(json) && (known(name) || this.modelNames.has(name))) name = `${stem}${++named.next}`;
    named.byValues.set(json, name);
    if (!known(name)) {
      const numbers = literalNumbers(values);
      this.enumLiterals[`${this.packageName}.${name}`] = { values, numbers };
      // Named after the values where protobuf and protoc take that, else by place (enum-value-names.ts).
      const { unset, values: valueNames } = enumValueNames(name, strings, this.valueNames);
      const lines = valueNames.map((valueName, k) => `  ${valueName} = ${numbers[k]};`);
      this.enums.push(`enum ${name} {\n  ${unset} = 0;\n${lines.join("\n")}\n}`);
    }
    return name;
  }

  /**
   * The field options of an array, or a dict or list of them: `(tesseract.v1.differentiable)` when
   * array_flags holds DIFFERENTIABLE, `(tesseract.v1.datatype)` for the declared dtype (declaredDtype)
   * when it has a DataType and its `differentiable_arrays` entry does not say null (any dtype).
   */
  private options(s: JsonSchema, jsonKey: string | undefined, path: string, message: string, field: string): string {
    const options = this.arrayOptions(s, path, message, field);
    // The runtime's key of a field named otherwise (proto-field-names.ts).
    if (jsonKey !== undefined) options.push(`(tesseract.v1.json_key) = ${protoString(jsonKey, path)}`);
    return options.length ? ` [${options.join(", ")}]` : "";
  }

  private arrayOptions(s: JsonSchema, path: string, message: string, fieldName: string): string[] {
    let field = this.nullable(s) ?? s;
    let pattern = path;
    if (!this.arraySchema(field, path) && field.type === "object" && isObject(field.additionalProperties)) [field, pattern] = [normalised(field.additionalProperties), `${path}.{}`];
    else if (field.type === "array" && isObject(field.items)) [field, pattern] = [normalised(field.items), `${path}.[]`];
    const target = this.arraySchema(field, path);
    if (!target) return [];
    const options: string[] = [];
    const flags = Array.isArray(target.array_flags) ? target.array_flags : [];
    const dtypeSchema = isObject(target.properties) && isObject(target.properties.dtype) ? target.properties.dtype : {};
    const entry = Object.hasOwn(this.arrays, pattern) ? this.arrays[pattern] : undefined;
    const anyDtype = isObject(entry) && entry.dtype === null;
    const declared = anyDtype ? undefined : declaredDtype(dtypeSchema);
    if (flags.includes("DIFFERENTIABLE")) {
      if (declared !== undefined && Object.hasOwn(UNDIFFERENTIABLE_DTYPES, declared)) (this.undifferentiable[message] ??= {})[fieldName] = declared;
      else options.push("(tesseract.v1.differentiable) = true");
    }
    if (declared !== undefined && Object.hasOwn(DATA_TYPES, declared)) options.push(`(tesseract.v1.datatype) = ${DATA_TYPES[declared]}`);
    return options;
  }

  text(): string {
    return [
      `// Generated by tesseract-grpc from the apply schemas of a tesseract-core Tesseract's /openapi.json.`,
      `syntax = "proto3";`,
      ``,
      `package ${this.packageName};`,
      ``,
      `import "tesseract/v1/tensor.proto";`,
      ``,
      ...[...this.messages.values(), ...this.enums].flatMap((block) => [block, ""]),
    ].join("\n");
  }
}

const below = (path: string, field: string) => (path ? `${path}.${field}` : field);

/**
 * `text` as a .proto string that protoc, buf and protobufjs all read back as it is: protobufjs drops
 * a `\"` (and `\x`, `\u` escapes), so a key holding `"` goes between single quotes. A key holding
 * both quotes, or a control character, has no such string: refused naming it.
 */
function protoString(text: string, path: string): string {
  const mark = text.includes('"') ? "'" : '"';
  if (text.includes(mark) || /[\u0000-\u001f\u007f]/.test(text)) {
    throw new Error(`${clip(path)}: the key ${quote(text)} cannot be written in a .proto (it holds both quotes, or a control character); rename the field in the Tesseract (a pydantic alias)`);
  }
  return `${mark}${text.replace(/\\/g, "\\\\")}${mark}`;
}

/** Whether a schema is a Literal one of whose values is None. */
const literalHoldsNull = (s: JsonSchema) => Array.isArray(s.enum) && s.enum.includes(null);

/** The `.proto` of a tesseract-core Tesseract, from its `/openapi.json`; throws naming what has no protobuf form. */
export function protoFromOpenApi(doc: unknown, options: { packageName?: string } = {}): ProtoFromOpenApi {
  const schemas = isObject(doc) && isObject(doc.components) && isObject(doc.components.schemas) ? (doc.components.schemas as Record<string, JsonSchema>) : undefined;
  if (!schemas || !isObject(schemas.ApplyInputSchema) || !isObject(schemas.ApplyOutputSchema)) {
    throw new Error("not a tesseract-core OpenAPI document: components.schemas.ApplyInputSchema and ApplyOutputSchema are missing");
  }
  const packageName = options.packageName ?? packageFromTitle(isObject((doc as JsonSchema).info) ? ((doc as { info: JsonSchema }).info.title as string) : undefined);
  const hidden = hiddenTesseractTypes(packageName);
  if (hidden) throw new Error(hidden);
  // The roots' $refs sit beside tesseract-core's descriptions of them, which pydantic before 2.9 wraps in allOf.
  const inputsRef = isObject(schemas.ApplyInputSchema.properties) && isObject(schemas.ApplyInputSchema.properties.inputs) ? normalised(schemas.ApplyInputSchema.properties.inputs).$ref : undefined;
  const outputsRef = normalised(schemas.ApplyOutputSchema).$ref;
  if (typeof inputsRef !== "string" || typeof outputsRef !== "string") throw new Error("ApplyInputSchema.properties.inputs and ApplyOutputSchema must be $refs to models");
  const order = (s: JsonSchema) => (isObject(s.field_order) ? (s.field_order as Record<string, string[]>) : {});
  const valueNames = new Set<string>();
  const names = messageNames(schemas);
  const inputs = new Writer(schemas, packageName, order(schemas.ApplyInputSchema), {}, valueNames, names, "inputs", arraysOf(schemas.ApplyInputSchema));
  const inputType = inputs.message(inputsRef, "");
  // Outputs are written by a writer of their own (their field_order is keyed from the outputs' root),
  // into the same file: models shared with the inputs are written once.
  // Its enums continue the inputs' names: an output `method` with other values than the input's
  // `method` shared its enum, and the output's values replaced the input's (REST "forward" went as "qr").
  const outputs = new Writer(schemas, packageName, order(schemas.ApplyOutputSchema), inputs.enumLiterals, valueNames, names, "outputs", arraysOf(schemas.ApplyOutputSchema));
  const outputType = outputs.message(outputsRef, "");
  return {
    text: mergeFiles(inputs.text(), outputs.text()),
    packageName,
    inputType: `${packageName}.${inputType}`,
    outputType: `${packageName}.${outputType}`,
    enumLiterals: outputs.enumLiterals,
    requiredFields: { ...inputs.requiredFields, ...outputs.requiredFields },
    nullFields: { ...inputs.nullFields, ...outputs.nullFields },
    documented: {
      fields: { ...inputs.documented, ...outputs.documented },
      differentiableArrays: { inputs: arraysOf(schemas.ApplyInputSchema), outputs: arraysOf(schemas.ApplyOutputSchema) },
    },
    undifferentiable: { ...inputs.undifferentiable, ...outputs.undifferentiable },
  };
}

/** A root schema's `differentiable_arrays`, entries that are objects. */
function arraysOf(root: JsonSchema): Record<string, unknown> {
  const arrays = isObject(root.differentiable_arrays) ? root.differentiable_arrays : {};
  return Object.fromEntries(Object.entries(arrays).filter(([, entry]) => isObject(entry)));
}

/** The blocks of the second file not already in the first, appended to it. */
function mergeFiles(first: string, second: string): string {
  const blocks = (text: string) => text.split("\n\n").filter((b) => /^(message|enum) /.test(b));
  const seen = new Set(blocks(first).map((b) => b.split(" ")[1]));
  const extra = blocks(second).filter((b) => !seen.has(b.split(" ")[1]));
  return extra.length ? `${first}\n${extra.join("\n\n")}\n` : first;
}

/** Field numbers are drawn from 1 … FIELD_NUMBERS - 1 (tags of at most four bytes), protobuf's reserved range skipped. */
const FIELD_NUMBERS = 1 << 24;
const RESERVED_FIRST = 19_000;
const RESERVED_COUNT = 1_000;

/**
 * Each field's number from its name alone (FNV-1a), so that stubs made from one version of a
 * runtime's schema fit the next one that adds, drops or reorders fields: numbered by their order, a
 * field inserted before others moved them all, and an old stub's values landed in other fields (a
 * wrong number answered OK); now a field that is new to a stub is left unset by it, and one it
 * sends that the runtime dropped is skipped, as unknown fields are. Names that meet on a number take
 * the next free one, in the order of the names.
 */
export function fieldNumbers(names: readonly string[]): Map<string, number> {
  const numbers = new Map<string, number>();
  const taken = new Set<number>();
  for (const name of [...names].sort()) {
    let n = 1 + (fnv1a(name) % (FIELD_NUMBERS - 1 - RESERVED_COUNT));
    if (n >= RESERVED_FIRST) n += RESERVED_COUNT;
    while (taken.has(n)) n = n + 1 === RESERVED_FIRST ? RESERVED_FIRST + RESERVED_COUNT : n + 1 >= FIELD_NUMBERS ? 1 : n + 1;
    taken.add(n);
    numbers.set(name, n);
  }
  return numbers;
}

/**
 * Each Literal value's enum number from the value alone (FNV-1a of its JSON, 1 … ENUM_NUMBERS - 1),
 * for the reason field numbers follow names: numbered by position, a runtime version that put a
 * value before others moved them all, and an old stub's `forward` reached the runtime as `qr`.
 * Values that meet on a number take the next free one, in the order of their JSON.
 */
export function literalNumbers(values: readonly unknown[]): number[] {
  const keys = values.map((v) => JSON.stringify(v));
  const numbers = new Map<string, number>();
  const taken = new Set<number>();
  for (const key of [...keys].sort()) {
    let n = 1 + (fnv1a(key) % (ENUM_NUMBERS - 1));
    while (taken.has(n)) n = n + 1 >= ENUM_NUMBERS ? 1 : n + 1;
    taken.add(n);
    numbers.set(key, n);
  }
  return keys.map((key) => numbers.get(key)!);
}

/** Enum value numbers are drawn from 1 … ENUM_NUMBERS - 1: positive (a negative int32 takes ten bytes on the wire), at most four bytes. */
const ENUM_NUMBERS = 1 << 24;

/** 32-bit FNV-1a of a string's UTF-16 code units. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}
