/**
 * grpc-health-check's Health service, with its NOT_FOUND naming the caller's service quoted and
 * clipped like any other caller text: the library echoes the name raw (a 100 000-character name
 * filled the status up to its cap, unquoted).
 */
import * as grpc from "@grpc/grpc-js";
import type { HealthImplementation } from "grpc-health-check";
import { quote } from "../../common/errors";

type Check = grpc.handleUnaryCall<{ service: string }, unknown>;

export function addHealth(server: grpc.Server, health: HealthImplementation): void {
  const quoting = {
    addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) {
      const check = implementation.check as Check;
      const quotedCheck: Check = (call, callback) =>
        check(call, (error, value) =>
          error?.code === grpc.status.NOT_FOUND ? callback({ ...error, details: `Health status unknown for service ${quote(call.request.service)}` }) : callback(error, value),
        );
      server.addService(service, { ...implementation, check: quotedCheck });
    },
  };
  health.addToServer(quoting as unknown as grpc.Server);
}
