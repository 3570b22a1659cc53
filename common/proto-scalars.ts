/**
 * The .proto scalar type names and their FieldDescriptorProto types, both ways: the server's .proto
 * compiler reads them, the SDK's .proto printer writes them.
 */
import { FieldDescriptorProto_Type as FieldType } from "@bufbuild/protobuf/wkt";

export const SCALAR_TYPES: Readonly<Record<string, FieldType>> = {
  double: FieldType.DOUBLE,
  float: FieldType.FLOAT,
  int64: FieldType.INT64,
  uint64: FieldType.UINT64,
  int32: FieldType.INT32,
  fixed64: FieldType.FIXED64,
  fixed32: FieldType.FIXED32,
  bool: FieldType.BOOL,
  string: FieldType.STRING,
  bytes: FieldType.BYTES,
  uint32: FieldType.UINT32,
  sfixed32: FieldType.SFIXED32,
  sfixed64: FieldType.SFIXED64,
  sint32: FieldType.SINT32,
  sint64: FieldType.SINT64,
};

export const SCALAR_NAMES: Readonly<Partial<Record<FieldType, string>>> = Object.fromEntries(Object.entries(SCALAR_TYPES).map(([name, type]) => [type, name]));
