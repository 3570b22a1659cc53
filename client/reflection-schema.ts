/**
 * Message types from a running server through gRPC server reflection (grpc.reflection.v1, or the
 * older v1alpha), so the CLI can encode any Tesseract's inputs without its .proto files, as grpcurl
 * does. The server's FileDescriptorProtos are exact (what protoc writes); they are checked by
 * @bufbuild/protobuf's validating registry, then printed as .proto source (proto-text.ts) for
 * protobufjs to parse.
 */
import * as grpc from "@grpc/grpc-js";
import * as protobuf from "protobufjs";
import { create, createFileRegistry, fromBinary, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { ServerReflectionClient, type ServerReflectionRequest, type ServerReflectionResponse } from "../generated/grpc/reflection/v1/reflection";
import { ServerReflectionClient as ServerReflectionV1alphaClient } from "../generated/grpc/reflection/v1alpha/reflection";
import { printProto } from "./proto-text";
import { TesseractClientError } from "./errors";

/** One reflection stream (grpc.reflection.v1, or the older v1alpha: the same messages): each question answered in turn. */
export class ReflectionStream {
  private readonly client: ServerReflectionClient;
  private readonly stream: grpc.ClientDuplexStream<ServerReflectionRequest, ServerReflectionResponse>;
  private readonly waiting: Array<{ resolve(r: ServerReflectionResponse): void; reject(e: Error): void }> = [];
  private failure?: Error;

  constructor(address: string, credentials: grpc.ChannelCredentials, options: grpc.ClientOptions = {}, version: "v1" | "v1alpha" = "v1") {
    this.client = new (version === "v1" ? ServerReflectionClient : ServerReflectionV1alphaClient)(address, credentials, options);
    this.stream = this.client.serverReflectionInfo();
    this.stream.on("data", (response: ServerReflectionResponse) => this.waiting.shift()?.resolve(response));
    this.stream.on("error", (e: Error) => {
      this.failure = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    });
  }

  ask(request: Partial<ServerReflectionRequest>): Promise<ServerReflectionResponse> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.stream.write({ host: "", ...request });
    });
  }

  close(): void {
    this.stream.end();
    this.client.close();
  }
}

export interface ReflectedFiles {
  /** Every file, each after the files it imports. */
  files: FileDescriptorProto[];
  registry: FileRegistry;
}

/**
 * The files declaring `symbols` and everything they import, as the server describes them, validated.
 * Imports a server leaves out are asked for by name. Asked by grpc.reflection.v1, then by v1alpha
 * where v1 is UNIMPLEMENTED: servers built before v1 (older grpc-java, grpc-go, grpcio) offer v1alpha
 * alone. A server offering neither is UNIMPLEMENTED saying what reflection was `needs`ed for.
 */
export async function fetchDescriptors(address: string, credentials: grpc.ChannelCredentials, symbols: readonly string[], options: grpc.ClientOptions = {}, needs = NEEDS_REFLECTION): Promise<ReflectedFiles> {
  const unimplemented = (e: unknown) => (e as grpc.ServiceError)?.code === grpc.status.UNIMPLEMENTED;
  const files = await reflectedFiles(address, credentials, symbols, options, "v1").catch((e: unknown) => {
    if (!unimplemented(e)) throw e;
    return reflectedFiles(address, credentials, symbols, options, "v1alpha").catch((e: unknown) => {
      // grpc-js's own words ("12 UNIMPLEMENTED: The server does not implement the method /grpc.reflection.v1alpha...") said neither what reflection is for nor what to do.
      if (!unimplemented(e)) throw e;
      throw new TesseractClientError(grpc.status.UNIMPLEMENTED, `the server at ${address} offers no gRPC server reflection (grpc.reflection.v1 or v1alpha), which ${needs}`);
    });
  });
  const ordered = dependencyOrder(files);
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
  return { files: ordered, registry };
}

/** The files declaring `symbols` and everything they import, asked through reflection `version`, by name. */
async function reflectedFiles(address: string, credentials: grpc.ChannelCredentials, symbols: readonly string[], options: grpc.ClientOptions, version: "v1" | "v1alpha"): Promise<Map<string, FileDescriptorProto>> {
  const stream = new ReflectionStream(address, credentials, options, version);
  const files = new Map<string, FileDescriptorProto>();
  const take = (what: string, response: ServerReflectionResponse) => {
    if (response.error_response) throw new Error(`reflection: ${what}: ${response.error_response.error_message}`);
    for (const bytes of response.file_descriptor_response?.file_descriptor_proto ?? []) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      if (!files.has(file.name!)) files.set(file.name!, file);
    }
  };
  try {
    for (const symbol of symbols) take(symbol, await stream.ask({ file_containing_symbol: symbol }));
    for (let missing = missingImports(files); missing.length; missing = missingImports(files)) {
      for (const name of missing) take(name, await stream.ask({ file_by_filename: name }));
    }
  } finally {
    stream.close();
  }
  return files;
}

/** What reflection is for, by default: `proto` and `generate --address` read a Tesseract's .proto files through it. */
const NEEDS_REFLECTION = "`proto` and `generate --address` read the Tesseract's .proto files from: generate the SDK from the server's own .proto files (generate <file.proto>)";

/** A protobufjs Root holding the files that declare `symbols` and everything they import. */
export async function fetchRoot(address: string, credentials: grpc.ChannelCredentials, symbols: string[], options: grpc.ClientOptions = {}, needs?: string): Promise<protobuf.Root> {
  const { files, registry } = await fetchDescriptors(address, credentials, symbols, options, needs);
  const root = new protobuf.Root();
  for (const file of files) protobuf.parse(printProto(file, registry), root, { keepCase: true });
  root.resolveAll();
  return root;
}

function missingImports(files: Map<string, FileDescriptorProto>): string[] {
  return [...new Set([...files.values()].flatMap((f) => f.dependency.filter((d) => !files.has(d))))];
}

/** Each file after the files it imports. */
function dependencyOrder(files: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const ordered: FileDescriptorProto[] = [];
  const placed = new Set<string>();
  const place = (name: string, chain: string[]) => {
    if (placed.has(name)) return;
    if (chain.includes(name)) throw new Error(`reflection: ${[...chain, name].join(" imports ")}`);
    const file = files.get(name)!;
    for (const dependency of file.dependency) place(dependency, [...chain, name]);
    placed.add(name);
    ordered.push(file);
  };
  for (const name of files.keys()) place(name, []);
  return ordered;
}
