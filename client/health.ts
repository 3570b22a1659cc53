/** grpc.health.v1 Health/Check, on the Tesseract client's own channel. */
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { unaryCall, type CallOptions, type UnaryMethod } from "./call";

/** grpc.health.v1.HealthCheckResponse.ServingStatus, as a name. */
export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface HealthClient extends grpc.Client {
  Check: UnaryMethod<{ service: string }, { status: ServingStatus }>;
}

const HealthClientCtor = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, "grpc.health.v1.Health");

/**
 * A Health client sharing `channel` (closing the Tesseract client closes it): its credentials (TLS,
 * mutual TLS) are the channel's, the ones given here are unused. `interceptors` add the bearer token
 * (for a server that wants it on health checks too).
 */
export function healthClient(channel: ReturnType<grpc.Client["getChannel"]>, interceptors: grpc.Interceptor[] = []): HealthClient {
  return new HealthClientCtor("unused:0", grpc.credentials.createInsecure(), { channelOverride: channel, interceptors }) as unknown as HealthClient;
}

/** Serving status of `service` ("" = the whole server at `address`); an unknown service rejects with NOT_FOUND. */
export async function checkHealth(client: HealthClient, address: string, service: string, options?: CallOptions): Promise<ServingStatus> {
  const response = await unaryCall(client.Check.bind(client), { service }, options, address);
  return response.status;
}
