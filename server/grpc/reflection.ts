/**
 * gRPC server reflection, grpc.reflection.v1 and v1alpha, over the exact descriptors of the contract,
 * health, reflection itself and the Tesseract's own .proto files (schema/descriptor-set.ts): what
 * grpcurl, grpcui, Postman and the reflection clients of every language load into their validating
 * pools. A file is answered with every file it imports, directly or not, as grpc-java does.
 */
import * as grpc from "@grpc/grpc-js";
import type { DescriptorProto, FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { protoPath as HEALTH_PROTO } from "grpc-health-check";
import { quote } from "../../common/errors";
import {
  ServerReflectionService as ReflectionV1,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../generated/grpc/reflection/v1/reflection";
import { ServerReflectionService as ReflectionV1alpha } from "../../generated/grpc/reflection/v1alpha/reflection";
import { compileDescriptorSet, type DescriptorSet } from "../schema/descriptor-set";
import { CONTRACT_PROTO, SERVICE_NAME } from "../schema/contract";

/** The health protocol's real name (grpc-health-check ships it as proto/health/v1/health.proto). */
const HEALTH_FILE = "grpc/health/v1/health.proto";
const REFLECTION_FILES = ["grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"];
const SERVICES = [SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/** ErrorResponse codes (grpc status codes). */
const INVALID_ARGUMENT = grpc.status.INVALID_ARGUMENT;
const NOT_FOUND = grpc.status.NOT_FOUND;

/** The descriptors a server with this Tesseract serves: the contract, health, reflection and the Tesseract's files. */
export function servedDescriptors(tesseract: { protoFiles: readonly string[]; protoIncludeDirs: readonly string[] }): DescriptorSet {
  try {
    return compileDescriptorSet({
      files: [CONTRACT_PROTO, HEALTH_FILE, ...REFLECTION_FILES, ...tesseract.protoFiles],
      includeDirs: tesseract.protoIncludeDirs,
      named: { [HEALTH_FILE]: HEALTH_PROTO },
    });
  } catch (e) {
    throw new Error(`the Tesseract's .proto files do not compile: ${(e as Error).message}`);
  }
}

/** Answers reflection requests from one descriptor set. */
export class ReflectionIndex {
  /** Fully qualified name (no leading dot) of every message, enum, value, field, oneof, extension, service and method -> its file. */
  private readonly fileOfSymbol = new Map<string, string>();
  /** Extended message -> extension number -> the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, string>>();
  private readonly messages = new Set<string>();

  constructor(
    private readonly set: DescriptorSet,
    readonly services: readonly string[] = SERVICES,
  ) {
    for (const file of set.files) this.indexFile(file);
  }

  answer(request: ServerReflectionRequest): ServerReflectionResponse {
    const base = { valid_host: request.host, original_request: request };
    if (request.list_services !== undefined) {
      return { ...base, list_services_response: { service: this.services.map((name) => ({ name })) } };
    }
    if (request.file_by_filename !== undefined) {
      const name = request.file_by_filename;
      return this.files(base, this.set.bytes.has(name) ? name : undefined, `file ${quote(name)} is not served`);
    }
    if (request.file_containing_symbol !== undefined) {
      const symbol = request.file_containing_symbol.replace(/^\./, "");
      return this.files(base, this.fileOfSymbol.get(symbol), `symbol ${quote(symbol)} not found`);
    }
    if (request.file_containing_extension !== undefined) {
      const { containing_type, extension_number } = request.file_containing_extension;
      const type = containing_type.replace(/^\./, "");
      return this.files(base, this.extensions.get(type)?.get(extension_number), `no extension ${extension_number} of ${quote(type)}`);
    }
    if (request.all_extension_numbers_of_type !== undefined) {
      const type = request.all_extension_numbers_of_type.replace(/^\./, "");
      if (!this.messages.has(type)) return error(base, NOT_FOUND, `message type ${quote(type)} not found`);
      const numbers = [...(this.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
      return { ...base, all_extension_numbers_response: { base_type_name: type, extension_number: numbers } };
    }
    return error(base, INVALID_ARGUMENT, "the request asks nothing: set one of file_by_filename, file_containing_symbol, file_containing_extension, all_extension_numbers_of_type, list_services");
  }

  /** `name` and every file it imports, directly or not, each once; NOT_FOUND when `name` is undefined. */
  private files(base: Partial<ServerReflectionResponse>, name: string | undefined, notFound: string): ServerReflectionResponse {
    if (name === undefined) return error(base, NOT_FOUND, notFound);
    const byName = new Map(this.set.files.map((f) => [f.name!, f]));
    const names: string[] = [];
    const visit = (file: string) => {
      if (names.includes(file)) return;
      names.push(file);
      byName.get(file)?.dependency.forEach(visit);
    };
    visit(name);
    return { valid_host: "", ...base, file_descriptor_response: { file_descriptor_proto: names.map((n) => Buffer.from(this.set.bytes.get(n)!)) } };
  }

  private indexFile(file: FileDescriptorProto): void {
    const name = file.name!;
    const add = (symbol: string) => this.fileOfSymbol.set(symbol, name);
    const scope = file.package ?? "";
    const indexMessage = (prefix: string, message: DescriptorProto) => {
      const full = join(prefix, message.name!);
      add(full);
      this.messages.add(full);
      for (const field of message.field) add(join(full, field.name!));
      for (const oneof of message.oneofDecl) add(join(full, oneof.name!));
      for (const nested of message.nestedType) indexMessage(full, nested);
      for (const e of message.enumType) indexEnum(full, e);
      for (const ext of message.extension) indexExtension(full, ext);
    };
    const indexEnum = (prefix: string, e: FileDescriptorProto["enumType"][number]) => {
      add(join(prefix, e.name!));
      // Enum values are scoped beside their enum, as in C++.
      for (const value of e.value) add(join(prefix, value.name!));
    };
    const indexExtension = (prefix: string, ext: FileDescriptorProto["extension"][number]) => {
      add(join(prefix, ext.name!));
      const extendee = ext.extendee!.replace(/^\./, "");
      if (!this.extensions.has(extendee)) this.extensions.set(extendee, new Map());
      this.extensions.get(extendee)!.set(ext.number!, name);
    };
    file.messageType.forEach((m) => indexMessage(scope, m));
    file.enumType.forEach((e) => indexEnum(scope, e));
    file.extension.forEach((e) => indexExtension(scope, e));
    for (const service of file.service) {
      add(join(scope, service.name!));
      for (const method of service.method) add(join(scope, service.name!, method.name!));
    }
  }
}

/** Adds both versions of the reflection service; each request of a stream gets its answer, in order. */
export function addReflection(server: grpc.Server, index: ReflectionIndex): void {
  for (const { serverReflectionInfo } of [ReflectionV1, ReflectionV1alpha]) {
    const definition = { ServerReflectionInfo: serverReflectionInfo } as unknown as grpc.ServiceDefinition;
    server.addService(definition, { ServerReflectionInfo: (call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) => answerStream(call, index) });
  }
}

function answerStream(call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>, index: ReflectionIndex): void {
  call.on("data", (request: ServerReflectionRequest) => {
    // A caller that asks without reading waits: its requests are not read until answers drain.
    if (!call.write(index.answer(request))) {
      call.pause();
      call.once("drain", () => call.resume());
    }
  });
  call.on("end", () => call.end());
  call.on("error", () => undefined);
}

function error(base: Partial<ServerReflectionResponse>, code: number, message: string): ServerReflectionResponse {
  return { valid_host: "", ...base, error_response: { error_code: code, error_message: message } };
}

function join(...parts: string[]): string {
  return parts.filter(Boolean).join(".");
}
