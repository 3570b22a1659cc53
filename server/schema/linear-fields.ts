/**
 * protobufjs's Type.add checks a new field's number against `fieldsById`, an index that every add
 * clears (so does adding a oneof: each proto3 `optional` field has one) and the next add rebuilds
 * from all the fields: a message of n fields took O(n²) to build (a bridged model of 10 000 fields
 * held the start for 77 s, 20 000 for 7 minutes). Here the index is carried over each add instead,
 * so a message builds in linear time; what add checks and does is unchanged. Installed once for the process's protobufjs (this project's parsing and
 * proto-loader's alike); a protobufjs without the index leaves add as it is.
 */
import * as protobuf from "protobufjs";

interface Indexed {
  fields: Record<string, protobuf.Field>;
  fieldsById: Record<number, protobuf.Field>;
  _fieldsById: Record<number, protobuf.Field> | null;
}

let installed = false;

/** Makes protobufjs's Type.add keep the field index (idempotent). */
export function keepFieldIndexAcrossAdds(): void {
  if (installed) return;
  installed = true;
  const prototype = protobuf.Type.prototype as unknown as { add(object: protobuf.ReflectionObject): protobuf.Type };
  if (!Object.hasOwn(prototype, "add") || !("fieldsById" in prototype)) return;
  const add = prototype.add;
  prototype.add = function (this: protobuf.Type & Indexed, object) {
    const byId = this.fieldsById; // built once, then kept across adds
    const added = add.call(this, object);
    // A field added (not refused, not skipped as "__proto__") joins the index, as a rebuild would
    // put it; any other add (a oneof, whose fields came through here already; a nested type) leaves
    // the fields as they were.
    if (this._fieldsById === null) {
      if (object instanceof protobuf.Field && this.fields[object.name] === object) byId[object.id] = object;
      this._fieldsById = byId;
    }
    return added;
  };
}
