/**
 * Bearer-token authentication for every service of the server, as a grpc-js server interceptor: a
 * call must carry `authorization: Bearer <token>` with one of the configured tokens, or it is
 * answered UNAUTHENTICATED before any handler runs. That covers the Tesseract service and reflection
 * (the schema is information too); health checks are exempt unless `authHealth` is set, so load
 * balancers and container probes need no secret.
 */
import * as grpc from "@grpc/grpc-js";
import type { BearerTokens } from "../../common/bearer-tokens";

export const UNAUTHENTICATED_DETAILS = "a valid bearer token is required (metadata authorization: Bearer <token>)";

const HEALTH_SERVICE = "/grpc.health.v1.Health/";

/** Refuses calls without a valid token; `onRefused` is told the method path (for logs and metrics). */
export function bearerTokenInterceptor(tokens: BearerTokens, options: { authHealth?: boolean; onRefused?: (path: string) => void } = {}): grpc.ServerInterceptor {
  return (method, call) => {
    if (!options.authHealth && method.path.startsWith(HEALTH_SERVICE)) return new grpc.ServerInterceptingCall(call);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (tokens.accepts(String(metadata.get("authorization")[0] ?? ""))) return next(metadata);
        options.onRefused?.(method.path);
        call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: UNAUTHENTICATED_DETAILS });
      })
      .build();
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
