/**
 * The gRPC service definition: the contract plus the Tesseract's own .proto files and the health
 * protocol (so that reflection describes all of them), with every request decoded strictly.
 */
import type * as protoLoader from "@grpc/proto-loader";
import type { ServiceDefinition } from "@grpc/grpc-js";
import type * as protobuf from "protobufjs";
import { protoPath as HEALTH_PROTO } from "grpc-health-check";
import { CONTRACT_PROTO, loadContract, SERVICE_NAME } from "../schema/contract";
import { loadRoot } from "../schema/schema";
import { decodeStrict, type DecodeStyle } from "../schema/wire-decode";

/** The same shapes as the contract's LOADER_OPTIONS give (64-bit integers as strings, unset scalars absent). */
const REQUEST_STYLE: DecodeStyle = { longs: "string", defaults: false };

export function loadDefinition(tesseract: { protoFiles: readonly string[]; protoIncludeDirs: readonly string[] }): { packageDefinition: protoLoader.PackageDefinition; service: ServiceDefinition } {
  const packageDefinition = loadContract([HEALTH_PROTO, ...tesseract.protoFiles], tesseract.protoIncludeDirs);
  const service = strictRequests(packageDefinition[SERVICE_NAME] as unknown as ServiceDefinition);
  return { packageDefinition, service };
}

let contract: protobuf.Service | undefined;

/** The service with every request decoded strictly (schema/wire-decode.ts) instead of by protobufjs. */
function strictRequests(service: ServiceDefinition): ServiceDefinition {
  contract ??= loadRoot([CONTRACT_PROTO]).lookupService(SERVICE_NAME);
  const methods = contract.methods;
  return Object.fromEntries(
    Object.entries(service).map(([name, method]) => {
      const type = methods[name]?.resolvedRequestType;
      if (!type) throw new Error(`${SERVICE_NAME}/${name} has no request type in the contract`);
      // A response already encoded (JacobianRows' row messages, rows-stream.ts) goes out as it is.
      const serialize = method.responseSerialize;
      const responseSerialize = (value: unknown) => (value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : serialize(value));
      return [name, { ...method, responseSerialize, requestDeserialize: (bytes: Buffer) => decodeStrict(type, bytes, "request", REQUEST_STYLE) }];
    }),
  );
}
