/**
 * The schema layer: a protobufjs Root (keepCase) that turns a `google.protobuf.Any` of a Tesseract's
 * message type into a JS tree whose Tensor leaves are ndarrays, and back; and that knows, from the
 * `(tesseract.v1.differentiable)` field option, which paths may be differentiated.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as protobuf from "protobufjs";
import "protobufjs/ext/descriptor";
import type { NdArray } from "ndarray";
import { clip, invalidArgument, Code, listed, quote, TesseractError } from "../../common/errors";
import { emptyRecord, ownValue, setProperty } from "../../common/records";
import { boolKeysForEncoding } from "../../common/bool-keys";
import { TYPE_URL_PREFIX } from "../../common/type-url";
import { PROTO_DIR } from "../proto-dir";
import {
  decodeAbstractTensor,
  type DataType,
  decodeTensor,
  encodeTensor,
  isFloatingPoint,
  isNdArray,
  ndarrayExtentProblem,
  type DecodeLimits,
  type TensorMessage,
  type TypedArray,
} from "../../common/tensor-codec";
import { expandPattern, formatPath, getAtPath, isPattern, matchesPattern, parsePath, type Segment } from "../../common/paths";
import { decodeStrict, type DecodeStyle } from "./wire-decode";
import { keepFieldIndexAcrossAdds } from "./linear-fields";
import { castNdArray, declaredDatatype, isDifferentiableField, protoName } from "./output-casting";
import { checkDifferentiableOutput } from "./returned-outputs";
import { plural } from "../../common/plural";

// Messages of many fields build in linear time (linear-fields.ts).
keepFieldIndexAcrossAdds();

const TENSOR_TYPE = "tesseract.v1.Tensor";
/** Far above any real type URL; longer ones are refused before anything else is looked at. */
export const MAX_TYPE_URL_LENGTH = 2048;
/** The Tesseract's trees: 64-bit integers as numbers, unset scalars as their defaults. */
const TREE_STYLE: DecodeStyle = { longs: "number", defaults: true };
/** protobufjs ships descriptor.proto; it is needed for the field-option extension. */
const PROTOBUFJS_DIR = path.dirname(require.resolve("protobufjs/package.json"));

export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** Written by `npm run build` beside this module: the well-known types' descriptors, as buf compiles them. */
const WELL_KNOWN_TYPES = path.join(__dirname, "well-known-types.binpb");
let wellKnown: { files: Set<string>; json: protobuf.INamespace } | undefined;

/**
 * The well-known types as their .proto files declare them. protobufjs' bundled ones name some fields
 * in camelCase (google.protobuf.Value's numberValue for number_value): apply saw those names, the
 * REST API wanted them, and the CLI and reflection the .proto's.
 */
function wellKnownTypes(): { files: Set<string>; json: protobuf.INamespace } {
  if (!wellKnown) {
    const compiled = (protobuf.Root as unknown as { fromDescriptor(bytes: Uint8Array): protobuf.Root }).fromDescriptor(fs.readFileSync(WELL_KNOWN_TYPES));
    const google = (compiled.lookup("google") as protobuf.Namespace).toJSON();
    withMapFields(google);
    withoutMapEntryOptions(google);
    wellKnown = { files: new Set(compiled.files.filter((f) => f.startsWith("google/protobuf/"))), json: { nested: { google } } };
  }
  return wellKnown;
}

type NamespaceJson = { options?: Record<string, unknown>; fields?: Record<string, { rule?: string; type: string; id: number; keyType?: string }>; nested?: Record<string, NamespaceJson> };

/** protobufjs' fromDescriptor leaves a map as a list of its entry type (Struct.fields): a map again, as protobufjs declares maps. */
function withMapFields(json: NamespaceJson): void {
  for (const nested of Object.values(json.nested ?? {})) {
    withMapFields(nested);
    for (const field of Object.values(nested.fields ?? {})) {
      const entryName = field.type.split(".").pop()!;
      const entry = nested.nested?.[entryName];
      if (field.rule !== "repeated" || !entry?.options?.map_entry) continue;
      delete field.rule;
      field.keyType = entry.fields!.key.type;
      field.type = entry.fields!.value.type;
      delete nested.nested![entryName];
    }
  }
}

/** Once the entry types are gone, no type is one (fromDescriptor marks the type holding one as one too). */
function withoutMapEntryOptions(json: NamespaceJson): void {
  if (json.options) delete json.options.map_entry;
  if (json.options && Object.keys(json.options).length === 0) delete json.options;
  for (const nested of Object.values(json.nested ?? {})) withoutMapEntryOptions(nested);
}

/** Loads .proto files with the contract's proto/ folder (and the well-known types) on the path. */
export function loadRoot(files: string[], includeDirs: string[] = []): protobuf.Root {
  const dirs = [...includeDirs, PROTO_DIR, PROTOBUFJS_DIR];
  const known = wellKnownTypes();
  const root = new protobuf.Root();
  root.addJSON(known.json.nested!);
  // Imports of them are loaded already: never protobufjs' bundled copies.
  root.files.push(...known.files);
  root.resolvePath = (origin, target) => {
    if (known.files.has(target)) return target;
    if (path.isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  resolving(root, () => root.loadSync(files, { keepCase: true })); // loadSync resolves every type too
  for (const file of root.files) if (!known.files.has(file)) refuseProtoNames(file);
  resolving(root, () => root.resolveAll());
  return root;
}

/** The file that declares each of the contract's types, for the import a file that uses one lacks. */
const CONTRACT_FILES: Record<string, string> = {
  "tesseract.v1.Tensor": "tesseract/v1/tensor.proto",
  "tesseract.v1.DataType": "tesseract/v1/tensor.proto",
};

/**
 * protobufjs's "no such Type or Enum 'tesseract.v1.Tensor' in Type .acme.v1.Inputs" names neither
 * the file nor the fix: most often the import of the contract's tensor.proto is missing.
 */
function resolving(root: protobuf.Root, step: () => void): void {
  try {
    step();
  } catch (e) {
    const m = /^no such Type or Enum '([^']+)' in Type \.(\S+)$/.exec((e as Error).message);
    if (!m) throw e;
    const [, name, user] = m;
    const at = root.lookup(user);
    const file = at?.filename ? ` (${at.filename})` : "";
    const contract = CONTRACT_FILES[name.replace(/^\./, "")];
    const fix = contract
      ? `add import "${contract}"; to that file (the contract's files are always on the import path)`
      : `import the .proto file that declares it, or correct the name (a type of another package by its full name, package included)`;
    throw new Error(`${user}${file} uses the type ${name}, which no file it imports declares: ${fix}`);
  }
}

/**
 * protobufjs keeps declarations in plain objects, where a field, message or enum value named
 * `__proto__` sets the prototype instead: it was dropped without a word (a Tesseract served without
 * that input). Refused, naming the file.
 */
function refuseProtoNames(file: string): void {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return;
  }
  const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, " ");
  if (/\b__proto__\b/.test(code)) throw new Error(`${file} declares something named __proto__, which this server cannot hold (its parser drops it): rename it`);
}

/** A Root from `.proto` text that imports the contract's files (a bridged Tesseract's generated schema). */
export function loadRootFromText(text: string): protobuf.Root {
  const root = loadRoot(["tesseract/v1/tensor.proto"]);
  protobuf.parse(text, root, { keepCase: true });
  resolving(root, () => root.resolveAll());
  return root;
}

function isTensorField(field: protobuf.Field): boolean {
  return field.resolvedType?.fullName === `.${TENSOR_TYPE}`;
}

/** The segment that addresses one element of a map or list field. */
function containerSegment(field: protobuf.Field): Segment | undefined {
  if (field.map) return { kind: "anyKey" };
  if (field.repeated) return { kind: "anyIndex" };
  return undefined;
}

/** Turns one message type's values into trees with ndarray leaves and back. */
export class MessageSchema {
  readonly fullName: string;
  /** Patterns (with `{}`/`[]`) of every differentiable Tensor leaf, in declaration order. */
  readonly differentiablePatterns: Segment[][];

  /** Why a Tensor field that is not differentiable is not, where its Tesseract says (a bridged runtime's float16 array). */
  private readonly notDifferentiable = new Map<protobuf.Field, string>();

  constructor(readonly type: protobuf.Type) {
    this.fullName = protoName(type);
    this.differentiablePatterns = collectDifferentiable(type, [], new Set());
  }

  /** Records why `field` (a Tensor field of this type or below it) is not differentiable: a path naming it is refused saying so. */
  explainNotDifferentiable(field: protobuf.Field, why: string): void {
    this.notDifferentiable.set(field, why);
  }

  get typeUrl(): string {
    return TYPE_URL_PREFIX + this.fullName;
  }

  /** Whether `path` names one Tensor of this type (a field, or one element of a map or list of them); no patterns. */
  namesTensor(path: string): boolean {
    let segments: Segment[];
    try {
      segments = parsePath(path);
    } catch {
      return false;
    }
    return this.tensorFieldAt(segments) !== undefined;
  }

  /** The datatype the Tensor field at a concrete path declares, or undefined (none declared, or no Tensor there). */
  declaredDatatypeAt(segments: readonly Segment[]): DataType | undefined {
    const field = this.tensorFieldAt(segments);
    return field && declaredDatatype(field);
  }

  /** The Tensor field whose value (or one element of it) a concrete path names (or with `patterns`, a pattern), or undefined. */
  private tensorFieldAt(segments: readonly Segment[], patterns = false): protobuf.Field | undefined {
    let type: protobuf.Type = this.type;
    for (let k = 0; k < segments.length; k++) {
      const segment = segments[k];
      const field = segment.kind === "field" && Object.hasOwn(type.fields, segment.name) ? type.fields[segment.name] : undefined;
      if (!field) return undefined;
      if (field.map || field.repeated) {
        const element = segments[++k];
        const kinds = field.map ? ["key", patterns && "anyKey"] : ["index", patterns && "anyIndex"];
        if (!kinds.includes(element?.kind)) return undefined;
      }
      if (isTensorField(field)) return k === segments.length - 1 ? field : undefined;
      if (!(field.resolvedType instanceof protobuf.Type)) return undefined;
      type = field.resolvedType;
    }
    return undefined;
  }

  /**
   * Decodes an Any of this type. `abstract` allows tensors with a shape but no data (AbstractEval);
   * those leaves become `{ shape, datatype }` objects instead of ndarrays (`onAbstract` is told of each).
   */
  decodeAny(any: AnyMessage | null | undefined, field: string, opts: DecodeOptions = {}): Record<string, unknown> {
    if (!any || (!any.type_url && !any.value?.length)) throw invalidArgument(`${field} is missing: expected an Any of ${this.typeUrl}`);
    if (!any.type_url) throw invalidArgument(`${field} has ${plural(any.value!.length, "byte")} of value but no type_url: expected "${this.typeUrl}"`);
    const url = any.type_url;
    if (url.length > MAX_TYPE_URL_LENGTH) throw invalidArgument(`${field}.type_url is ${url.length} characters long, more than the ${MAX_TYPE_URL_LENGTH} a type URL may have; expected "${this.typeUrl}"`);
    if (url.slice(url.lastIndexOf("/") + 1) !== this.fullName) {
      throw invalidArgument(`${field} has type URL ${quote(url)}, expected "${this.typeUrl}"`);
    }
    const plain = decodeStrict(this.type, any.value ?? new Uint8Array(0), field, TREE_STYLE, { maxMessages: opts.limits?.maxMessages, maxRank: opts.limits?.maxRank });
    return toTree(this.type, plain, "", opts) as Record<string, unknown>;
  }

  /**
   * Encodes a tree (ndarray leaves) as an Any of this type. A mismatch is the Tesseract's fault for
   * its outputs (INTERNAL) and the caller's for inputs (INVALID_ARGUMENT, e.g. the CLI's JSON).
   */
  encodeAny(tree: unknown, role: "outputs" | "inputs" = "outputs"): AnyMessage {
    const fail = (message: string) => new TesseractError(role === "outputs" ? Code.INTERNAL : Code.INVALID_ARGUMENT, `${role} ${message}`);
    const undeclared = undeclaredField(this.type, tree, "");
    if (undeclared) throw fail(undeclared);
    const plain = fromTree(this.type, tree, "", fail);
    const problem = this.type.verify(plain);
    if (problem) throw fail(`do not match ${this.fullName}: ${problem}`);
    return { type_url: this.typeUrl, value: this.type.encode(boolKeysForEncoding(this.type, plain)).finish() };
  }

  /**
   * Refuses (INTERNAL) outputs of apply with a field this type does not declare: a misspelt output
   * (Apply answered OK without it, and a Jacobian of it blamed the caller's path).
   */
  checkDeclared(outputs: unknown): void {
    const undeclared = undeclaredField(this.type, outputs, "");
    if (undeclared) throw new TesseractError(Code.INTERNAL, `outputs ${undeclared}`);
  }

  /** Concrete differentiable paths present in `tree`, formatted. */
  differentiablePaths(tree: unknown): string[] {
    return this.differentiablePatterns.flatMap((p) => expandPattern(tree, p).map(formatPath));
  }

  /** Differentiable patterns, formatted (e.g. `mesh.cell_data.{}`), for Describe. */
  differentiablePatternNames(): string[] {
    return this.differentiablePatterns.map(formatPath);
  }

  /**
   * Checks the paths a request names (`field`, e.g. "jac_outputs") before any tree exists: each must
   * parse and match a differentiable pattern; the list must not be empty. `side` ("input"/"output")
   * words the messages. With a tree, "does not exist" and "is not differentiable" are told apart.
   */
  checkDifferentiable(requested: readonly string[], field: string, side: string, tree?: unknown): Segment[][] {
    const available = () => {
      // A schema with nothing marked: the fix is in the .proto, which a list "(none)" does not say.
      if (this.differentiablePatterns.length === 0) return `(none: ${this.fullName} marks no field differentiable; a .proto marks a Tensor field [(tesseract.v1.differentiable) = true])`;
      return listed(tree === undefined ? this.differentiablePatternNames() : this.differentiablePaths(tree));
    };
    if (requested.length === 0) {
      throw invalidArgument(`${field} is empty: name at least one differentiable ${side} path; available: ${available()}`);
    }
    return requested.map((requestedPath) => {
      let segments: Segment[];
      try {
        segments = parsePath(requestedPath);
      } catch (e) {
        throw invalidArgument(`${field}: ${(e as Error).message}; differentiable ${side} paths: ${available()}`);
      }
      if (!this.differentiablePatterns.some((p) => matchesPattern(segments, p))) {
        const why = this.notDifferentiable.size > 0 ? this.notDifferentiable.get(this.tensorFieldAt(segments, true)!) : undefined;
        if (why) throw invalidArgument(`${field}: ${side} path ${quote(requestedPath)} is not differentiable here: ${why}; differentiable ${side} paths: ${available()}`);
        const what = tree === undefined || isPattern(segments) ? "is not a differentiable path" : getAtPath(tree, segments) === undefined ? "does not exist" : "is not differentiable";
        throw invalidArgument(`${field}: ${side} path ${quote(requestedPath)} ${what}; differentiable ${side} paths: ${available()}`);
      }
      return segments;
    });
  }

  /**
   * Resolves the paths a request names against a tree: each must be a differentiable Tensor leaf
   * that exists. Patterns expand to every matching leaf; a leaf named twice is an error. A tree
   * `returnedBy` the Tesseract (its apply's outputs) that holds something else than a floating-point
   * tensor at a differentiable path is the Tesseract's mistake (its code: INTERNAL, or UNKNOWN for a
   * remote runtime), not the request's: its quotients of integers would be rounding jumps over 2h.
   */
  resolveDifferentiable(tree: unknown, requested: readonly string[], field: string, side: string, returnedBy?: ReturnedBy): ResolvedLeaf[] {
    const patterns = this.checkDifferentiable(requested, field, side, tree);
    const available = () => listed(this.differentiablePaths(tree));
    const seen = new Set<string>();
    const resolved: ResolvedLeaf[] = [];
    patterns.forEach((segments, i) => {
      const concrete = expandPattern(tree, segments);
      // A field path (no map key or list element the caller chose) the tree leaves out.
      if (concrete.length === 0 && segments.every((s) => s.kind === "field")) {
        // Outputs: the Tesseract did not return a field it declares.
        if (returnedBy) {
          const error = new TesseractError(returnedBy.code, `${returnedBy.by} returned no ${side} ${requested[i]}, a differentiable tensor field of ${this.type.name}`);
          throw returnedBy.mayOmit ? omitted(error, field, side, requested[i]) : error;
        }
        // Inputs the caller left unset (vectoradd's `s`, "1 when unset"): apply's default is its own, so
        // tesseract-core, whose schema fills defaults in, differentiates there; here it must be sent.
        throw invalidArgument(`${field}: ${side} path ${quote(requested[i])} is a differentiable field the ${side}s leave unset: send its value to differentiate at it (what apply takes in its place is apply's own); differentiable ${side} paths: ${available()}`);
      }
      if (concrete.length === 0) {
        const refusal = invalidArgument(`${field}: ${side} path ${quote(requested[i])} does not exist in the ${side}s; differentiable ${side} paths: ${available()}`);
        if (!returnedBy) throw refusal;
        // A map key or element the caller named is the caller's mistake only if f(x) has none either:
        // one that f(x) has and x + h has not was refused as a step out of what the Tesseract accepts.
        throw missingOutput(new TesseractError(returnedBy.code, `${returnedBy.by} returned no ${side} ${requested[i]} here, which it returns at the unperturbed inputs: ${PRESENCE_FIXED}`), refusal);
      }
      for (const segs of concrete) {
        const name = formatPath(segs);
        if (seen.has(name)) throw invalidArgument(`${field}: ${side} path ${quote(name)} is listed more than once`);
        seen.add(name);
        const leaf = getAtPath(tree, segs);
        if (returnedBy && !isNdArray(leaf)) {
          throw new TesseractError(returnedBy.code, `${returnedBy.by} returned ${notAnNdArray(leaf)} at ${side} ${name}, a differentiable tensor field: expected an ndarray${howToWrap(leaf)}`);
        }
        if (!isNdArray(leaf)) {
          throw invalidArgument(`${field}: ${side} path ${quote(name)} holds no tensor; differentiable ${side} paths: ${available()}`);
        }
        if (returnedBy) checkDifferentiableOutput(leaf as NdArray, this.declaredDatatypeAt(segs), name, returnedBy.code, returnedBy.by);
        resolved.push({ path: name, segments: segs, array: leaf as NdArray<TypedArray> });
      }
    });
    return resolved;
  }
}

/** What a value is that should have been an ndarray: a typed array or a list by name, as they are the usual slips. */
function notAnNdArray(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a plain array";
  if (ArrayBuffer.isView(value)) return `a bare ${value.constructor.name}`;
  return typeof value;
}

/** The fix for values that hold an ndarray's data already (a typed array, a list). */
function howToWrap(value: unknown): string {
  return Array.isArray(value) || ArrayBuffer.isView(value) ? ": make one with ndarray(data, shape)" : "";
}

/** Who made a tree (its apply), and the code of its mistakes: INTERNAL for a Tesseract served here, UNKNOWN for a remote runtime. */
export interface ReturnedBy {
  by: string;
  code: Code;
  /**
   * The Tesseract's schema lets it leave outputs out (a tesseract-core runtime's Optional outputs,
   * None at some inputs; one it requires is refused as it arrives: output-casting.ts).
   */
  mayOmit?: boolean;
}

/** Why an output that one evaluation returns and another does not (a map key that comes and goes) is refused. */
export const PRESENCE_FIXED = "whether an output is there must not depend on the values of the differentiated inputs (differences are taken output by output)";

/** Per error of a requested output left out, the request's own error (itself too), where the unperturbed inputs leave it out too. */
const omissions = new WeakMap<object, TesseractError>();

/** `error` (the Tesseract's: it returned no `path`) marked as an omission its schema allows (omittedOutputError). */
export function omitted(error: TesseractError, field: string, side: string, path: string): TesseractError {
  const nested = path.includes(".") ? " (or a model on its path is)" : "";
  return missingOutput(error, invalidArgument(`${field}: ${side} ${quote(path)} is None at these inputs${nested}: the Tesseract left it out, as its schema allows; there is nothing to differentiate`));
}

/** `error` (the Tesseract's: it returned no requested output) marked as `requestError` where f(x) has none either (omittedOutputError). */
export function missingOutput(error: TesseractError, requestError: TesseractError): TesseractError {
  omissions.set(error, requestError).set(requestError, requestError);
  return error;
}

/**
 * The request's error for a requested output the Tesseract left out, for when the unperturbed inputs
 * leave it out too: one its schema lets it leave out (nothing there to differentiate), or a map key
 * or element the caller named that is not there.
 */
export function omittedOutputError(e: unknown): TesseractError | undefined {
  return typeof e === "object" && e !== null ? omissions.get(e) : undefined;
}

export interface ResolvedLeaf {
  path: string;
  segments: Segment[];
  array: NdArray<TypedArray>;
}

function collectDifferentiable(type: protobuf.Type, prefix: Segment[], visiting: Set<protobuf.Type>): Segment[][] {
  if (visiting.has(type)) {
    // A message that holds itself: its differentiable tensors below the repeat lie at paths without
    // end, which no list of patterns holds (they were left out unseen, then refused as "not a
    // differentiable path"). Without any, the repeat adds nothing.
    if (holdsDifferentiable(type, new Set())) {
      throw new Error(`${clip(formatPath(prefix))}: ${clip(protoName(type))} holds itself here and holds differentiable tensors, whose paths would have no end: differentiable paths are listed (Describe, patterns), so a recursive message cannot hold them; move them out of the recursion`);
    }
    return [];
  }
  visiting.add(type);
  const found: Segment[][] = [];
  for (const field of type.fieldsArray) {
    const here: Segment[] = [...prefix, { kind: "field", name: field.name }];
    const element = containerSegment(field);
    const elementPath = element ? [...here, element] : here;
    if (isTensorField(field)) {
      if (isDifferentiableField(field)) found.push(elementPath);
    } else if (isDifferentiableField(field)) {
      // Refused at load: ignored, it left the author wondering why no path was differentiable.
      throw new Error(`${clip(`${protoName(type)}.${field.name}`)} is marked (tesseract.v1.differentiable), which only a tesseract.v1.Tensor field (or a map or list of them) can be; this field is ${field.map ? "a map of " : field.repeated ? "a list of " : ""}${field.type}`);
    } else if (field.resolvedType instanceof protobuf.Type) {
      found.push(...collectDifferentiable(field.resolvedType, elementPath, visiting));
    }
  }
  visiting.delete(type);
  return found;
}

/** Whether `type`, or a message below it, has a differentiable Tensor field. */
function holdsDifferentiable(type: protobuf.Type, seen: Set<protobuf.Type>): boolean {
  if (seen.has(type)) return false;
  seen.add(type);
  return type.fieldsArray.some((field) => (isTensorField(field) ? isDifferentiableField(field) : field.resolvedType instanceof protobuf.Type && holdsDifferentiable(field.resolvedType, seen)));
}

type Converter = (value: unknown, where: string) => unknown;

/** Applies `convert` to one field's value, element-wise for maps and lists. */
function mapField(field: protobuf.Field, value: unknown, where: string, convert: Converter): unknown {
  if (field.map) {
    const out = emptyRecord();
    for (const [key, v] of Object.entries((value ?? {}) as Record<string, unknown>)) {
      out[key] = convert(v, `${where}.${formatPath([{ kind: "key", key }])}`);
    }
    return out;
  }
  if (field.repeated) return ((value ?? []) as unknown[]).map((v, i) => convert(v, `${where}.[${i}]`));
  return convert(value, where);
}

/** "where: Type has no such field; fields: ..." for the first key of a tree (messages at any depth) its type does not declare. */
function undeclaredField(type: protobuf.Type, tree: unknown, prefix: string): string | undefined {
  if (tree === null || typeof tree !== "object" || Array.isArray(tree)) return undefined; // fromTree says what it expected
  const source = tree as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    const where = prefix ? `${prefix}.${key}` : key;
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!field) return `${where}: ${type.name} has no such field; fields: ${Object.keys(type.fields).join(", ")}`;
    const sub = field.resolvedType;
    const value = source[key];
    if (!(sub instanceof protobuf.Type) || isTensorField(field) || value === null || typeof value !== "object") continue;
    const items = field.map ? Object.entries(value).map(([k, v]) => [`${where}.${formatPath([{ kind: "key", key: k }])}`, v] as const) : field.repeated && Array.isArray(value) ? value.map((v, i) => [`${where}.[${i}]`, v] as const) : [[where, value] as const];
    for (const [at, item] of items) {
      const found = undeclaredField(sub, item, at);
      if (found) return found;
    }
  }
  return undefined;
}

interface DecodeOptions {
  abstract?: boolean;
  limits?: DecodeLimits;
  onAbstract?: () => void;
}

function toTree(type: protobuf.Type, plain: Record<string, unknown>, prefix: string, opts: DecodeOptions): unknown {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const where = prefix ? `${prefix}.${field.name}` : field.name;
    const sub = field.resolvedType;
    let convert: Converter | undefined;
    if (isTensorField(field)) {
      convert = (v, w) => {
        if (v == null) return undefined;
        const tensor = v as TensorMessage;
        let array: NdArray<TypedArray> | undefined;
        if (!opts.abstract) array = decodeTensor(tensor, w, opts.limits);
        else {
          const t = decodeAbstractTensor(tensor, w, opts.limits);
          if (!t.array) {
            opts.onAbstract?.();
            return { shape: t.shape, datatype: t.datatype };
          }
          array = t.array;
        }
        // In the field's declared floating-point datatype, as the JSON forms are (output-casting.ts);
        // other datatypes stay the caller's to match (a float is no integer's same kind).
        const declared = declaredDatatype(field);
        return declared !== undefined && isFloatingPoint(declared) ? castNdArray(array, tensor.datatype, declared, w) : array;
      };
    } else if (sub instanceof protobuf.Type) {
      convert = (v, w) => (v == null ? undefined : toTree(sub, v as Record<string, unknown>, w, opts));
    }
    const value = ownValue(plain, field.name);
    setProperty(out, field.name, convert ? mapField(field, value, where, convert) : value);
  }
  return out;
}

function fromTree(type: protobuf.Type, tree: unknown, prefix: string, fail: (message: string) => Error): Record<string, unknown> {
  if (tree === null || typeof tree !== "object" || Array.isArray(tree)) {
    throw fail(`${prefix || "(root)"}: expected an object for ${type.fullName.slice(1)}`);
  }
  const source = tree as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const value = Object.hasOwn(source, field.name) ? source[field.name] : undefined;
    if (value === undefined || value === null) continue;
    const where = prefix ? `${prefix}.${field.name}` : field.name;
    const sub = field.resolvedType;
    let convert: Converter | undefined;
    if (isTensorField(field)) {
      convert = (v, w) => {
        if (!isNdArray(v)) throw fail(`${w}: expected an ndarray, got ${notAnNdArray(v)}${howToWrap(v)}`);
        const problem = ndarrayExtentProblem(v);
        if (problem) throw fail(`${w} ${problem}`);
        return encodeTensor(v);
      };
    } else if (sub instanceof protobuf.Type) {
      convert = (v, w) => fromTree(sub, v, w, fail);
    }
    out[field.name] = convert ? mapField(field, value, where, convert) : value;
  }
  return out;
}

/** Every message type a Tesseract needs, loaded once. */
export class TesseractSchema {
  readonly inputs: MessageSchema;
  readonly outputs: MessageSchema;

  constructor(readonly root: protobuf.Root, inputType: string, outputType: string) {
    this.inputs = new MessageSchema(lookupType(root, inputType, "inputType"));
    this.outputs = new MessageSchema(lookupType(root, outputType, "outputType"));
  }
}

function lookupType(root: protobuf.Root, name: string, property: string): protobuf.Type {
  // protobufjs also finds a name in any namespace nested below or around the one it is given
  // ("acme.Inputs" finds acme.v1.Inputs, "Inputs" the first Inputs anywhere): only the full name is the type.
  let found: protobuf.Type | undefined;
  try {
    found = root.lookupType(name);
  } catch {
    found = undefined;
  }
  if (found && found.fullName === `.${name.replace(/^\./, "")}`) return found;
  const guess = found ? `; did you mean ${found.fullName.slice(1)}? (the full name, package included)` : "";
  throw new Error(`${property}: message type ${name} is not declared in the Tesseract's .proto files${guess}; they declare ${listed(declaredMessages(root))}`);
}

/** The full names of the message types a root holds, nested ones too, but for the contract's (tesseract.v1) and the well-known types. */
function declaredMessages(root: protobuf.Root): string[] {
  const names: string[] = [];
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const child of ns.nestedArray) {
      if (child instanceof protobuf.Type) names.push(child.fullName.replace(/^\./, ""));
      if (child instanceof protobuf.Namespace || child instanceof protobuf.Type) visit(child);
    }
  };
  visit(root);
  return names.filter((n) => !/^(google\.protobuf|tesseract\.v1)\./.test(n));
}
