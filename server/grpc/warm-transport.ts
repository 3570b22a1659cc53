/**
 * The transport's share of the warm-up (the engine's is server/warmup.ts): a few calls, with the
 * Tesseract's example inputs, to a private copy of the server — the same service definition, handlers
 * and runtime, on 127.0.0.1, plaintext, without tokens, logging or metrics — so that the per-call code
 * (guards, strict request decoding, handlers, response encoding, HTTP/2) is compiled before the first
 * real call. Bounded by what is left of the warm-up's time; an error ends it quietly (the engine's
 * warm-up reports errors of the example inputs).
 */
import * as grpc from "@grpc/grpc-js";
import { Algorithm } from "../tesseract";
import type { TesseractRuntime } from "../runtime";
import { silentLogger } from "../log";
import { CallRegistry, DEFAULT_LIMITS } from "./calls";
import { createHandlers, type HandlerConfig } from "./handlers";

/** Rounds of an Apply and a Jacobian. */
const ROUNDS = 3;

type Unary = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null) => void) => void;

export async function warmTransport(
  runtime: TesseractRuntime,
  service: grpc.ServiceDefinition,
  paths: { inputPaths: string[]; outputPaths: string[] },
  makeServer: (calls: CallRegistry) => grpc.Server,
  config: HandlerConfig,
  budgetMs: number,
): Promise<void> {
  const example = runtime.definition.exampleInputs;
  if (!example || !(budgetMs > 0) || paths.inputPaths.length === 0 || paths.outputPaths.length === 0) return;
  const deadline = Date.now() + budgetMs;
  const evaluations = runtime.evaluations; // restored: metrics count requests' evaluations only
  const calls = new CallRegistry(silentLogger, DEFAULT_LIMITS);
  const server = makeServer(calls);
  server.addService(service, createHandlers(runtime, config, calls, service));
  let client: grpc.Client | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const Client = grpc.makeGenericClientConstructor(service, "Tesseract");
    client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": config.maxMessageBytes,
      "grpc.max_send_message_length": config.maxMessageBytes,
    });
    const call = (method: string, request: unknown) =>
      new Promise<void>((resolve, reject) => ((client as unknown as Record<string, Unary>)[method].call(client, request, { deadline }, (e) => (e ? reject(e) : resolve()))));
    const inputs = runtime.schema.inputs.encodeAny(example(), "inputs");
    const jacobian = { inputs, jac_inputs: paths.inputPaths, jac_outputs: paths.outputPaths, options: { algorithm: Algorithm.ALGORITHM_CENTRAL } };
    for (let round = 0; round < ROUNDS && Date.now() < deadline; round++) {
      await call("Apply", { inputs });
      await call("Jacobian", jacobian);
    }
  } catch {
    // Out of time, or example inputs the engine's warm-up already reported: nothing more to do.
  } finally {
    client?.close();
    server.forceShutdown();
    runtime.evaluations = evaluations;
    runtime.evaluationCache?.clear();
  }
}
