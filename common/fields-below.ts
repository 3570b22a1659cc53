/** Questions asked of a message type and every message type below it, answered once per type. */
import * as protobuf from "protobufjs";

/**
 * Whether a field of `type`, or of a message type below it (recursive types visited once),
 * passes `test`; kept in `memo` per type, since callers ask per message encoded or path renamed.
 */
export function someFieldBelow(type: protobuf.Type, test: (field: protobuf.Field) => boolean, memo: WeakMap<protobuf.Type, boolean>): boolean {
  let known = memo.get(type);
  if (known === undefined) {
    const seen = new Set<protobuf.Type>();
    const below = (t: protobuf.Type): boolean => !seen.has(t) && (seen.add(t), t.fieldsArray.some((f) => test(f) || (f.resolve().resolvedType instanceof protobuf.Type && below(f.resolvedType as protobuf.Type))));
    memo.set(type, (known = below(type)));
  }
  return known;
}
