/**
 * The gRPC service definition, loaded with @grpc/proto-loader from the contract plus the Tesseract's
 * own .proto files and the health protocol, so that reflection describes all of them.
 */
import * as protoLoader from "@grpc/proto-loader";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { protoPath as HEALTH_PROTO } from "grpc-health-check";
import { PROTO_DIR } from "../proto-dir";
import type { TesseractRuntime } from "../runtime";

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

export function loadDefinition(runtime: TesseractRuntime): { packageDefinition: protoLoader.PackageDefinition; service: ServiceDefinition } {
  const packageDefinition = protoLoader.loadSync(["tesseract/v1/tesseract.proto", HEALTH_PROTO, ...runtime.protoFiles], {
    ...LOADER_OPTIONS,
    includeDirs: [PROTO_DIR, ...runtime.protoIncludeDirs],
  });
  const service = packageDefinition[SERVICE_NAME] as unknown as ServiceDefinition;
  return { packageDefinition, service };
}
