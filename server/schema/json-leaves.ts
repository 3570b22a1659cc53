/**
 * Array leaves of a tesseract-core JSON answer read by path, without decoding the rest: after the
 * first answer of a job was decoded whole (and its leaves found), the later answers only need the
 * outputs being differentiated. Each leaf is cast to its declared datatype and checked as the whole
 * decode would (array object, dtype, shape, data length). The paths' fields are looked up once.
 */
import * as protobuf from "protobufjs";
import { invalidArgument } from "../../common/errors";
import { tensorFromArrayObject } from "../../common/numpy-arrays";
import { emptyRecord, isPlainObject } from "../../common/records";
import { decodeTensor, type DataType } from "../../common/tensor-codec";
import { isTensorField } from "./json-messages";
import { castArray, declaredDatatype, protoName } from "./output-casting";
import type { RequiredFields } from "./openapi-proto";
import { formatPath, type Segment } from "../../common/paths";
import { fieldNamed, keySegments } from "./json-keys";

/** A concrete segment's property in JSON: the field's key, the map key or the list index. */
function segmentKey(s: Segment): string | number {
  if (s.kind === "field") return s.name;
  if (s.kind === "key") return s.key;
  if (s.kind === "index") return s.index;
  throw new Error("a leaf's path has no wildcards");
}

/** One leaf to read: its JSON keys from the root, its tree's (field names), whether each step is a list index, and its Tensor field. */
interface LeafPlan {
  keys: (string | number)[];
  /** The same steps in the tree `read` returns, which names fields by their names: a field named otherwise (json-keys.ts) is read at its key, put at its name. */
  names: (string | number)[];
  isIndex: boolean[];
  at: string;
  declared: DataType | undefined;
  /** The answer may leave it out (null or absent): a field on its path the runtime's schema does not require. */
  optional: boolean;
}

/** Whether a field on the leaf's path (before any key or index the caller chose) is one `required` does not list. */
function optionalLeaf(type: protobuf.Type, segments: readonly Segment[], required: RequiredFields): boolean {
  let message: protobuf.Type | undefined = type;
  for (const s of segments) {
    if (s.kind !== "field" || !message) return false;
    if (!(required[protoName(message)] ?? []).includes(s.name)) return true;
    const field: protobuf.Field | undefined = message.fields[s.name];
    message = field?.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
  }
  return false;
}

/** The Tensor field that declares the leaf at `segments` of `type`. */
function tensorField(type: protobuf.Type, segments: readonly Segment[], at: string): protobuf.Field {
  let message: protobuf.Type | undefined = type;
  let field: protobuf.Field | undefined;
  for (const s of segments) {
    if (s.kind !== "field") continue;
    field = message && fieldNamed(message, s.name);
    message = field?.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
  }
  if (!field || !isTensorField(field)) throw invalidArgument(`${at} is not an array field`);
  return field;
}

export class JsonLeafReader {
  private readonly plans: LeafPlan[];

  /**
   * Leaves at `leaves` of answers of `type`; messages name them from `where` (`outputs`). `required`:
   * per message, the fields an answer must hold (openapi-proto.ts); a leaf under any other may be
   * left out. Without it, every leaf must be there.
   */
  constructor(type: protobuf.Type, leaves: readonly (readonly Segment[])[], where: string, required?: RequiredFields) {
    this.plans = leaves.map((segments) => {
      const at = `${where}.${formatPath(segments)}`;
      const optional = required !== undefined && optionalLeaf(type, segments, required);
      // Where the leaf is in the answer: its fields by their keys (json-keys.ts).
      return { keys: keySegments(type, segments).map(segmentKey), names: segments.map(segmentKey), isIndex: segments.map((s) => s.kind === "index"), at, declared: declaredDatatype(tensorField(type, segments, at)), optional };
    });
  }

  /** A tree holding only the leaves, as ndarrays in their declared datatypes; an optional one the answer left out is left out. */
  read(json: unknown): Record<string, unknown> {
    const tree = emptyRecord<unknown>();
    this.plans.forEach((plan) => {
      let value = json;
      plan.keys.forEach((key, depth) => {
        const container = plan.isIndex[depth] ? Array.isArray(value) : isPlainObject(value);
        value = container && Object.hasOwn(value as object, key) ? (value as Record<string | number, unknown>)[key] : undefined;
      });
      if (value === undefined || value === null) {
        if (plan.optional) return; // None, as the schema allows: the outputs' selector tells whose it is
        throw invalidArgument(`${plan.at} is missing`);
      }
      const cast = plan.declared === undefined ? value : castArray(value, plan.declared, plan.at, true);
      if (!isPlainObject(cast)) throw invalidArgument(`${plan.at} is ${JSON.stringify(cast)?.slice(0, 40)}, expected an array object`);
      setLeaf(tree, plan, decodeTensor(tensorFromArrayObject(cast, plan.at), plan.at));
    });
    return tree;
  }
}

/** Puts `array` at the plan's names in `tree`, creating the messages, maps and lists on the way. */
function setLeaf(tree: Record<string, unknown>, plan: LeafPlan, array: unknown): void {
  let node = tree as Record<string | number, unknown>;
  const last = plan.names.length - 1;
  for (let depth = 0; depth < last; depth++) {
    node = (node[plan.names[depth]] ??= plan.isIndex[depth + 1] ? [] : emptyRecord<unknown>()) as Record<string | number, unknown>;
  }
  node[plan.names[last]] = array;
}
