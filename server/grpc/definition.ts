/**
 * The gRPC service definition of the contract, with every request decoded strictly. (Reflection
 * serves exact descriptors of its own: reflection.ts.)
 */
import type { ServiceDefinition } from "@grpc/grpc-js";
import type * as protobuf from "protobufjs";
import { CONTRACT_PROTO, loadContract, SERVICE_NAME } from "../schema/contract";
import { loadRoot } from "../schema/schema";
import { decodeStrict, type DecodeStyle, type RepeatedCap } from "../schema/wire-decode";
import { Code } from "../../common/errors";
import { FramedMessage } from "./framed-messages";
import { MAX_PATTERN_NONZEROS } from "../fd/sparsity";

/** The same shapes as the contract's LOADER_OPTIONS give (64-bit integers as strings, unset scalars absent). */
const REQUEST_STYLE: DecodeStyle = { longs: "string", defaults: false };

/** A request's sparsity index lists, all patterns together, refused at their length prefixes (30 M packed pairs took 4.5 s to decode before the count was checked, 8 patterns of 3.9 M each 7 s). */
const PATTERN_CAP: RepeatedCap = { max: MAX_PATTERN_NONZEROS, code: Code.RESOURCE_EXHAUSTED, what: "index pairs per request; leave dense blocks out rather than listing every entry", perMessage: true };
const REQUEST_CAPS = new Map([
  ["tesseract.v1.SparsityPattern.output_index", PATTERN_CAP],
  ["tesseract.v1.SparsityPattern.input_index", PATTERN_CAP],
]);

/** The contract's service; each request may hold at most `maxMessages` messages (DecodeLimits.maxMessages). */
export function loadDefinition(maxMessages?: number): { service: ServiceDefinition } {
  return { service: strictRequests(loadContract()[SERVICE_NAME] as unknown as ServiceDefinition, maxMessages) };
}

let contract: protobuf.Service | undefined;

/** The service with every request decoded strictly (schema/wire-decode.ts) instead of by protobufjs. */
function strictRequests(service: ServiceDefinition, maxMessages?: number): ServiceDefinition {
  contract ??= loadRoot([CONTRACT_PROTO]).lookupService(SERVICE_NAME);
  const methods = contract.methods;
  return Object.fromEntries(
    Object.entries(service).map(([name, method]) => {
      const type = methods[name]?.resolvedRequestType;
      if (!type) throw new Error(`${SERVICE_NAME}/${name} has no request type in the contract`);
      // A response already encoded (JacobianRows' row messages, rows-stream.ts): its message part,
      // where grpc-js does not send the frame as it is (framed-messages.ts).
      const serialize = method.responseSerialize;
      const responseSerialize = (value: unknown) => (value instanceof FramedMessage ? value.message : serialize(value));
      return [name, { ...method, responseSerialize, requestDeserialize: (bytes: Buffer) => decodeStrict(type, bytes, "request", REQUEST_STYLE, { maxMessages, repeated: REQUEST_CAPS }) }];
    }),
  );
}
