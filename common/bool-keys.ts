/**
 * protobufjs writes a map<bool, V> key as the truthiness of its string: "false" is written true, so
 * a false entry overwrote the true one (or became it). The empty string is the one falsy key, and
 * encodes false; verify the message first (it refuses "" for a bool key), then encode this.
 */
import * as protobuf from "protobufjs";
import { someFieldBelow } from "./fields-below";
import { recordFrom } from "./records";

const withBoolKeys = new WeakMap<protobuf.Type, boolean>();

/** Whether `type`, or a message below it, has a map<bool, V> field (most have none: their messages go to encode as they are). */
const hasBoolKeys = (type: protobuf.Type): boolean => someFieldBelow(type, (f) => f.map && (f as unknown as protobuf.MapField).keyType === "bool", withBoolKeys);

/** `message` (protobufjs' plain object of `type`) with every bool map key "false" (or "0") as "", for `type.encode`. */
export function boolKeysForEncoding(type: protobuf.Type, message: Record<string, unknown>): Record<string, unknown> {
  if (!hasBoolKeys(type)) return message;
  let out = message;
  for (const field of type.fieldsArray) {
    const v = Object.hasOwn(message, field.name) ? message[field.name] : undefined;
    if (v === undefined || v === null || typeof v !== "object") continue;
    const sub = field.resolve().resolvedType;
    const inner = sub instanceof protobuf.Type && hasBoolKeys(sub) ? (x: unknown) => (x !== null && typeof x === "object" ? boolKeysForEncoding(sub, x as Record<string, unknown>) : x) : undefined;
    let value: unknown = v;
    if (field.map) {
      const boolKeys = (field as unknown as protobuf.MapField).keyType === "bool";
      if (!boolKeys && !inner) continue;
      value = recordFrom(Object.entries(v).map(([k, x]) => [boolKeys && (k === "false" || k === "0") ? "" : k, inner ? inner(x) : x]));
    } else if (inner) {
      value = Array.isArray(v) ? v.map(inner) : inner(v);
    } else continue;
    if (out === message) out = { ...message };
    out[field.name] = value;
  }
  return out;
}
