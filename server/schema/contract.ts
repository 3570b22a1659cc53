/**
 * The gRPC contract (proto/tesseract/v1/tesseract.proto) as @grpc/proto-loader loads it: for the
 * server's service (the transport) and for the clients that call other servers' Apply (apply replicas).
 */
import * as protoLoader from "@grpc/proto-loader";
import { PROTO_DIR } from "../proto-dir";
import { keepFieldIndexAcrossAdds } from "./linear-fields";

// Messages of many fields build in linear time (linear-fields.ts).
keepFieldIndexAcrossAdds();

export const SERVICE_NAME = "tesseract.v1.Tesseract";
export const CONTRACT_PROTO = "tesseract/v1/tesseract.proto";

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

/** The contract, plus `files` with their import folders when a caller needs more. */
export function loadContract(files: readonly string[] = [], includeDirs: readonly string[] = []): protoLoader.PackageDefinition {
  return protoLoader.loadSync([CONTRACT_PROTO, ...files], { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR, ...includeDirs] });
}
