/**
 * Message types from a running server through gRPC server reflection, so the CLI can encode any
 * Tesseract's inputs without its .proto files (as grpcurl does).
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as protobuf from "protobufjs";
import * as descriptor from "protobufjs/ext/descriptor";

const REFLECTION_PROTO = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");

interface ReflectionResponse {
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** A Root holding the files that declare `symbols` and everything they import. */
export async function fetchRoot(address: string, credentials: grpc.ChannelCredentials, symbols: string[], options: grpc.ClientOptions = {}): Promise<protobuf.Root> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(REFLECTION_PROTO, { keepCase: true })) as any;
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials, options) as grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionResponse> };
  const stream = client.ServerReflectionInfo();
  const files = new Map<string, unknown>();
  try {
    for (const symbol of symbols) {
      const response = await new Promise<ReflectionResponse>((resolve, reject) => {
        stream.once("data", resolve);
        stream.once("error", reject);
        stream.write({ file_containing_symbol: symbol });
      });
      if (response.error_response) throw new Error(`reflection: ${symbol}: ${response.error_response.error_message}`);
      for (const bytes of response.file_descriptor_response?.file_descriptor_proto ?? []) {
        const file = descriptor.FileDescriptorProto.decode(bytes) as unknown as { name: string };
        files.set(file.name, file);
      }
    }
  } finally {
    stream.end();
    client.close();
  }
  const root = (protobuf.Root as unknown as { fromDescriptor(set: object): protobuf.Root }).fromDescriptor({ file: [...files.values()] });
  root.resolveAll();
  restoreMaps(root);
  root.resolveAll();
  return root;
}

/** A map's entry type: nested in the message, exactly `key = 1` and `value = 2`. */
function isMapEntry(entry: protobuf.Type, parent: protobuf.Type): boolean {
  const [key, value, ...rest] = entry.fieldsArray;
  return entry.parent === parent && rest.length === 0 && key?.name === "key" && key.id === 1 && value?.name === "value" && value.id === 2;
}

/**
 * protobufjs' fromDescriptor leaves each map field as a repeated entry message (the descriptor's
 * encoding of maps); turn those back into map fields.
 */
function restoreMaps(namespace: protobuf.NamespaceBase): void {
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Type) {
      for (const field of [...nested.fieldsArray]) {
        const entry = field.resolvedType;
        if (!field.repeated || !(entry instanceof protobuf.Type) || !isMapEntry(entry, nested)) continue;
        nested.remove(field);
        const map = new protobuf.MapField(field.name, field.id, entry.fields.key.type, entry.fields.value.type, field.options);
        nested.add(map);
        // Type.add leaves the root marked resolved, so root.resolveAll() would skip this field and
        // its value type would stay unknown (a map of Tensors then went out unencoded): resolve it here.
        map.resolve();
      }
    }
    if (nested instanceof protobuf.Namespace) restoreMaps(nested);
  }
}
