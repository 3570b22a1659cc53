/**
 * Which fields a JSON request may set to null, as tesseract-core's models take it: those its runtime's
 * schema lets be null — Optional[X] (anyOf X | null), a field whose default is null, a required one
 * that may be null — and no other. pydantic answers null for `normalize: bool = False` with a 422
 * naming the field; read as unset, it applied the default and answered 200. (A Literal holding None
 * takes null as one of its values: json-messages.ts reads it so.) A Tesseract defined by protobuf
 * declares no such field. The same rule writes `anyOf [X, null]` in this server's /openapi.json.
 */
import type * as protobuf from "protobufjs";
import type { DocumentedSchema, RequiredFields } from "./openapi-proto";
import { protoName } from "./output-casting";

export interface NullableSchema {
  /** Per message, the required fields that may be null (ProtoFromOpenApi.nullFields). */
  nullFields: RequiredFields;
  documented?: DocumentedSchema;
}

export function takesNull(field: protobuf.Field, { nullFields, documented }: NullableSchema): boolean {
  const full = protoName(field.parent as protobuf.Type);
  if (nullFields[full]?.includes(field.name)) return true;
  const notes = documented?.fields[full];
  const note = notes && Object.hasOwn(notes, field.name) ? notes[field.name] : undefined;
  // A list or dict has no null (openapi-proto.ts refuses an optional one): its null default is no Optional.
  return note !== undefined && (note.nullable === true || (note.default === null && !field.map && !field.repeated));
}
