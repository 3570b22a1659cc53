/**
 * grpc-health-check's Health service, hardened where the library trusts the caller's service name:
 * - Check's NOT_FOUND names it quoted and clipped like any other caller text (the library echoed it
 *   raw: a 100 000-character name filled the status up to its cap, unquoted);
 * - Watch on a service this server does not serve answers SERVICE_UNKNOWN and holds the stream, as
 *   the protocol says, without the library's watcher: the library keeps every name it was asked to
 *   watch for good, and 600 watches of 1 MiB names ran a server out of memory. The served names are
 *   fixed at start, so an unknown one never becomes known. A name longer than MAX_SERVICE_NAME is
 *   INVALID_ARGUMENT: a held stream keeps its request, and 900 watches of 1 MB names held 630 MB.
 */
import * as grpc from "@grpc/grpc-js";
import type { HealthImplementation } from "grpc-health-check";
import { quote } from "../../common/errors";

/** Longer than any service name (a fully qualified protobuf service name). */
export const MAX_SERVICE_NAME = 1024;

type Check = grpc.handleUnaryCall<{ service: string }, unknown>;
type Watch = grpc.handleServerStreamingCall<{ service: string }, { status: string }>;

/** Adds `health` to `server`; `served`: the service names it reports on. */
export function addHealth(server: grpc.Server, health: HealthImplementation, served: readonly string[]): void {
  const known = new Set(served);
  const hardened = {
    addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) {
      const check = implementation.check as Check;
      const watch = implementation.watch as Watch;
      const quotedCheck: Check = (call, callback) =>
        check(call, (error, value) =>
          error?.code === grpc.status.NOT_FOUND ? callback({ ...error, details: `Health status unknown for service ${quote(call.request.service)}` }) : callback(error, value),
        );
      const boundedWatch: Watch = (call) => {
        const { service } = call.request;
        if (known.has(service)) return watch(call);
        if (service.length <= MAX_SERVICE_NAME) return void call.write({ status: "SERVICE_UNKNOWN" });
        call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: `service is ${service.length} characters long, more than any service name (at most ${MAX_SERVICE_NAME}): ${quote(service)}` });
      };
      server.addService(service, { ...implementation, check: quotedCheck, watch: boundedWatch });
    },
  };
  health.addToServer(hardened as unknown as grpc.Server);
}
