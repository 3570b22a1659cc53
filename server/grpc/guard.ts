/**
 * What stands between the bytes a caller sends and every service of the server (the Tesseract's,
 * health, reflection):
 * - request deserializers never throw (grpc-js would answer INTERNAL "Error deserializing request"
 *   and log nothing): a failure becomes an `UndecodableRequest`, which the interceptor answers with
 *   INVALID_ARGUMENT and its reason, logged like any other call;
 * - a unary or server-streaming call must carry exactly one request message: none (an empty body,
 *   or a frame cut short), a second one or part of one (bytes after the message, which grpc-js
 *   dropped) is INVALID_ARGUMENT, where grpc-js says UNIMPLEMENTED; a call its client reset before
 *   its request was complete is counted CANCELLED;
 * - every status a handler sends is made safe to encode and short (boundedDetails),
 *   whatever the request contained.
 */
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { protoPath as HEALTH_PROTO } from "grpc-health-check";
import * as protobuf from "protobufjs";
import { boundedDetails, clip, Code, isTesseractError } from "../../common/errors";
import { PROTO_DIR } from "../proto-dir";
import { loadRoot } from "../schema/schema";
import { decodeStrict } from "../schema/wire-decode";


const REFLECTION_PROTOS = path.join(PROTO_DIR, "grpc/reflection");

/** Health's and reflection's request types, checked as strictly as the Tesseract's own before their libraries decode them. */
let libraryRoot: protobuf.Root | undefined;

function libraryRequestType(methodPath: string): protobuf.Type | undefined {
  libraryRoot ??= loadRoot([HEALTH_PROTO, path.join(REFLECTION_PROTOS, "v1/reflection.proto"), path.join(REFLECTION_PROTOS, "v1alpha/reflection.proto")]);
  const [, service, method] = methodPath.split("/");
  const found = libraryRoot.lookup(service);
  return found instanceof protobuf.Service ? (found.methods[method]?.resolvedRequestType ?? undefined) : undefined;
}

/** What a deserializer returns instead of throwing. */
export class UndecodableRequest {
  constructor(
    readonly reason: string,
    /** INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for a request past a limit. */
    readonly code: grpc.status = grpc.status.INVALID_ARGUMENT,
  ) {}
}

function neverThrows<T>(deserialize: grpc.deserialize<T>): grpc.deserialize<T | UndecodableRequest> {
  return (bytes) => {
    try {
      return deserialize(bytes);
    } catch (e) {
      if (isTesseractError(e)) return new UndecodableRequest(e.message, e.code === Code.RESOURCE_EXHAUSTED ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT);
      return new UndecodableRequest(`the request is not a valid protobuf message: ${clip(e instanceof Error ? e.message : String(e))}`);
    }
  };
}

/**
 * Makes the request deserializers of every service added to `server` never throw; health's and
 * reflection's requests are first decoded strictly (the Tesseract service's deserializers are
 * strict already: definition.ts).
 */
export function guardDeserializers(server: grpc.Server): grpc.Server {
  const register = server.register.bind(server);
  server.register = ((name, handler, serialize, deserialize, type) => {
    const strictType = libraryRequestType(name);
    const checked: typeof deserialize = strictType
      ? (bytes) => {
          decodeStrict(strictType, bytes, "request", { longs: "string", defaults: false });
          return deserialize(bytes);
        }
      : deserialize;
    return register(name, handler, serialize, neverThrows(checked) as typeof deserialize, type);
  }) as grpc.Server["register"];
  return server;
}

/** How long a request cut short waits for its client's reset, which says it was cancelled (the INVALID_ARGUMENT is sent after it). */
const RESET_WAIT_MS = 20;

/** Told of each request refused here: method path, status and the request's metadata. */
export type OnRefused = (path: string, status: { code: grpc.status; details: string }, metadata?: grpc.Metadata) => void;

/** Answers undecodable requests and wrong message counts, and bounds every outgoing status message. */
export function guardInterceptor(onRefused?: OnRefused): grpc.ServerInterceptor {
  return (method, call) => {
    // The first interceptor is handed grpc-js's own call (server.ts lists this one first): its HTTP/2
    // stream, and its frame decoder, whose state is not NO_DATA (0) while it holds part of a frame.
    const inner = call as { stream?: { rstCode?: number; once?(e: "close", f: () => void): void; off?(e: "close", f: () => void): void }; decoder?: { readState?: number } };
    let metadata: grpc.Metadata | undefined;
    let refused = false;
    let messages = 0;
    const refuse = (reason: string, code = grpc.status.INVALID_ARGUMENT) => {
      refused = true;
      const status = { code, details: boundedDetails(reason) };
      onRefused?.(method.path, status, metadata);
      call.sendStatus(status);
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((received, next) => {
        metadata = received;
        next(received);
      })
      .withOnReceiveMessage((message, next) => {
        if (refused) return;
        if (message instanceof UndecodableRequest) return refuse(message.reason, message.code);
        if (++messages > 1 && !method.requestStream) return refuse(`${method.path} takes exactly one request message; the call sent a second`);
        next(message);
      })
      .withOnReceiveHalfClose((next) => {
        if (refused) return;
        const cutShort = messages === 0 ? "ended without a complete one" : inner.decoder?.readState ? "ended inside a second one's frame" : undefined;
        if (!cutShort || method.requestStream) return next();
        // A client that cancels may end its stream and reset it just after (Node's close() does): the
        // reset, if it comes at once, makes it CANCELLED, not a request cut short.
        let decided = false;
        const decide = () => {
          if (decided) return;
          decided = true;
          clearTimeout(timer);
          inner.stream?.off?.("close", decide);
          if (!inner.stream?.rstCode) return refuse(`${method.path} takes exactly one request message; the call ${cutShort}`);
          refused = true;
          onRefused?.(method.path, { code: grpc.status.CANCELLED, details: "the client cancelled the call before its request was complete" }, metadata);
        };
        const timer = setTimeout(decide, RESET_WAIT_MS);
        inner.stream?.once?.("close", decide);
      })
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => next({ ...status, details: boundedDetails(status.details ?? "") }))
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
