/**
 * The Tesseract's own input and output messages inside `google.protobuf.Any`, type URL
 * `type.googleapis.com/<full message name>` (the contract, proto/tesseract/v1/tesseract.proto), encoded with ts-proto's generated code.
 */
import { TYPE_URL_PREFIX } from "../common/type-url";
import type { Any } from "../generated/google/protobuf/any";
import { toArrays, toTensors } from "./tree";

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
  const bytes = fns.encode(fns.fromPartial ? fns.fromPartial(message) : message).finish();
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
