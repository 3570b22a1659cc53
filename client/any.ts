/**
 * The Tesseract's own input and output messages inside `google.protobuf.Any`, type URL
 * `type.googleapis.com/<full message name>` (the contract, proto/tesseract/v1/tesseract.proto), encoded with ts-proto's generated code.
 */
import { TYPE_URL_PREFIX } from "../common/type-url";
import type { Any } from "../generated/google/protobuf/any";
import { isTensorMessage, toArrays, toTensors } from "./tree";
import { described } from "./arguments";
import { listed } from "../common/errors";
import { keySegment } from "../common/paths";

/**
 * What the SDK needs from ts-proto's generated message object (e.g. `Inputs` from
 * generated/tesseract/examples/meshstats/v1/meshstats): the generated `MessageFns<T>` fits.
 * `fromPartial`, when there, fills unset fields with their defaults before encoding; `$type`, when
 * there (ts-proto's `outputTypeAnnotations=static-only`), is the message's full name.
 */
export interface MessageFns<T> {
  readonly $type?: string;
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
  fromPartial?(object: any): T;
}

/** The message name a type URL names: everything after the last "/". */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/** A tree with ndarray leaves (or abstract `{ shape, datatype }` leaves) packed as an Any. */
export function packAny<T>(typeName: string, fns: MessageFns<T>, tree: unknown, options: { abstract?: boolean } = {}): Any {
  const message = toTensors(tree, options) as T;
  const encode = (m: unknown) => fns.encode(fns.fromPartial ? fns.fromPartial(m) : (m as T)).finish();
  let bytes: Uint8Array;
  try {
    bytes = encode(message);
  } catch (e) {
    const at = refusedAt(message, encode);
    if (at === undefined) throw e;
    throw new TypeError(`${at.path || "inputs"} is ${described(at.value)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (decodesEveryField(fns)) checkSent(message, fns.decode(bytes), "");
  return { type_url: TYPE_URL_PREFIX + typeName, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

/**
 * An Any unpacked into a tree with ndarray leaves. With `expected`, a different message name in the
 * type URL is an error (the server answered with another type than the one we decode).
 */
export function unpackAny<T>(any: Any | undefined, fns: MessageFns<T>, field: string, expected?: string): unknown {
  if (!any) throw new TypeError(`${field} is missing from the response`);
  if (expected !== undefined && typeNameOf(any.type_url) !== expected) {
    throw new TypeError(`${field} has type URL "${any.type_url}", expected ${TYPE_URL_PREFIX}${expected}`);
  }
  return toArrays(fns.decode(any.value), field);
}

/**
 * Where the encoder refused a tree (its errors name no field: "Cannot convert three to a BigInt"):
 * the deepest value that fails to encode alone, on its path with everything else left out. Runs
 * only after a failure; each level tries each key once.
 */
function refusedAt(tree: unknown, encode: (message: unknown) => unknown): { path: string; value: unknown } | undefined {
  const fails = (message: unknown) => {
    try {
      encode(message);
      return false;
    } catch {
      return true;
    }
  };
  let value = tree;
  let path = "";
  let rebuild = (v: unknown) => v; // the whole tree with only `path` kept, holding v at its end
  for (;;) {
    if (typeof value !== "object" || value === null || isTensorMessage(value) || ArrayBuffer.isView(value)) break;
    const entries: [string, unknown, (v: unknown) => unknown][] = Array.isArray(value)
      ? value.map((v, k) => [`[${k}]`, v, (x: unknown) => [x]])
      : value instanceof Map
        ? [...value].map(([k, v]) => [`.${keySegment(String(k))}`, v, (x: unknown) => new Map([[k, x]])])
        : Object.keys(value).map((k) => [`.${keySegment(k)}`, (value as Record<string, unknown>)[k], (x: unknown) => ({ [k]: x })]);
    const outer = rebuild;
    const culprit = entries.find(([, v, wrap]) => fails(outer(wrap(v))));
    if (!culprit) break;
    const [step, v, wrap] = culprit;
    path += step;
    value = v;
    rebuild = (x) => outer(wrap(x));
  }
  return path ? { path: path.replace(/^\./, ""), value } : undefined;
}

const everyField = new WeakMap<object, boolean>();

/**
 * Whether `fns` decodes a message with every field present, defaults included (ts-proto's generated
 * types do, at every level): only then does a key missing from the decoded message say that the
 * encoder dropped it. Other message functions (protobufjs types from reflection, as the CLI's) may
 * leave defaults out and name enum values, and convert what they are given themselves.
 */
function decodesEveryField(fns: MessageFns<unknown>): boolean {
  let every = everyField.get(fns);
  if (every === undefined) {
    // Lists and maps may be there empty either way; a scalar's default or an unset message field says it.
    const empty = fns.decode(new Uint8Array(0)) as unknown;
    const fields = typeof empty === "object" && empty !== null ? Object.values(empty) : [];
    everyField.set(fns, (every = fields.some((v) => typeof v !== "object" || v === null)));
  }
  return every;
}

/**
 * What the caller wrote that the encoded message does not say, found by decoding what is sent: a key
 * that is no field of its message (ts-proto's fromPartial dropped it), or a value of another kind
 * than its field's (the encoder coerced it: 5 for a string field was sent as "5", "yes" for a bool
 * as true, a plain list or a number for a tensor as an empty tensor). `given` is the tree after
 * toTensors, `sent` the same message decoded; both are walked together, tensors not entered.
 */
function checkSent(given: unknown, sent: unknown, path: string): void {
  if (given == null) return; // unset, as fromPartial takes it
  const at = path || "inputs";
  const below = (key: string) => (path ? `${path}.${keySegment(key)}` : keySegment(key));
  if (isTensorMessage(sent)) {
    if (!isTensorMessage(given)) throw new TypeError(`${at} is ${described(given)}: expected a tensor, an ndarray: ndarray(data, shape)`);
  } else if (sent instanceof Uint8Array) {
    if (!(given instanceof Uint8Array)) throw new TypeError(`${at} is ${described(given)}: expected bytes, a Uint8Array or Buffer`);
  } else if (Array.isArray(sent)) {
    if (!Array.isArray(given)) throw new TypeError(`${at} is ${described(given)}: expected a list`);
    given.forEach((value, k) => checkSent(value, sent[k], `${path}[${k}]`));
  } else if (sent instanceof Map) {
    if (!(given instanceof Map)) throw new TypeError(`${at} is ${described(given)}: expected a Map`);
    for (const [key, value] of given) checkSent(value, sent.get(key), below(String(key)));
  } else if (typeof sent === "object" && sent !== null) {
    if (typeof given !== "object" || Array.isArray(given) || ArrayBuffer.isView(given)) throw new TypeError(`${at} is ${described(given)}: expected an object of its message's fields (or a map's entries)`);
    for (const key of Object.keys(given)) {
      const value = (given as Record<string, unknown>)[key];
      if (value == null) continue;
      if (!Object.hasOwn(sent, key)) throw new TypeError(`${below(key)} is not a field of ${path ? `${path}'s message` : "the Tesseract's inputs"}: expected one of ${listed(Object.keys(sent))}`);
      checkSent(value, (sent as Record<string, unknown>)[key], below(key));
    }
  } else if (typeof given !== typeof sent && !(typeof given === "bigint" && typeof sent === "number") && !(typeof given === "string" && typeof sent === "number")) {
    // A string the encoder took as a number (an enum value's name, by message functions that read names) is sent as it says.
    throw new TypeError(`${at} is ${described(given)}: expected a ${typeof sent}`);
  }
}
