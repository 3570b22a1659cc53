/**
 * The gRPC service definition, loaded with @grpc/proto-loader from the contract plus the Tesseract's
 * own .proto files and the health protocol, so that reflection describes all of them.
 */
import * as protoLoader from "@grpc/proto-loader";
import type { ServiceDefinition } from "@grpc/grpc-js";
import type * as protobuf from "protobufjs";
import { protoPath as HEALTH_PROTO } from "grpc-health-check";
import { PROTO_DIR } from "../proto-dir";
import type { TesseractRuntime } from "../runtime";
import { loadRoot } from "../schema/schema";
import { decodeStrict, type DecodeStyle } from "../schema/wire-decode";

export const SERVICE_NAME = "tesseract.v1.Tesseract";

/**
 * snake_case fields verbatim; 64-bit integers as strings (exact); enums as numbers; unset fields
 * absent (so optional fields tell "unset" from zero); empty lists and maps present.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
};

/** The same shapes as LOADER_OPTIONS gives (64-bit integers as strings, unset scalars absent). */
const REQUEST_STYLE: DecodeStyle = { longs: "string", defaults: false };

export function loadDefinition(runtime: TesseractRuntime): { packageDefinition: protoLoader.PackageDefinition; service: ServiceDefinition } {
  const packageDefinition = protoLoader.loadSync(["tesseract/v1/tesseract.proto", HEALTH_PROTO, ...runtime.protoFiles], {
    ...LOADER_OPTIONS,
    includeDirs: [PROTO_DIR, ...runtime.protoIncludeDirs],
  });
  const service = strictRequests(packageDefinition[SERVICE_NAME] as unknown as ServiceDefinition);
  return { packageDefinition, service };
}

let contract: protobuf.Service | undefined;

/** The service with every request decoded strictly (schema/wire-decode.ts) instead of by protobufjs. */
function strictRequests(service: ServiceDefinition): ServiceDefinition {
  contract ??= loadRoot(["tesseract/v1/tesseract.proto"]).lookupService(SERVICE_NAME);
  const methods = contract.methods;
  return Object.fromEntries(
    Object.entries(service).map(([name, method]) => {
      const type = methods[name]?.resolvedRequestType;
      if (!type) throw new Error(`${SERVICE_NAME}/${name} has no request type in the contract`);
      return [name, { ...method, requestDeserialize: (bytes: Buffer) => decodeStrict(type, bytes, "request", REQUEST_STYLE) }];
    }),
  );
}
