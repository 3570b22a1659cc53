/**
 * Evaluation on other tesseract-grpc servers ("apply replicas") through their Apply RPC. One channel
 * with gRPC's own round_robin load balancing over every address of the target (`dns:///apply:50051`
 * or `ipv4:10.0.0.1:50051,10.0.0.2:50051`); no scheduler of our own. Each evaluation sends the base
 * inputs with the perturbed leaves replaced (copy-on-write), so replicas need no state, and Apply is
 * idempotent: a call that fails with UNAVAILABLE (a replica that went away or is shutting down) is
 * retried by gRPC's own retry policy, and round_robin sends it to a replica that is still up.
 */
import * as grpc from "@grpc/grpc-js";
import { Code, TesseractError } from "../../common/errors";
import type { OutputSelector } from "./outputs";
import type { InputLeaf } from "./input-leaf";
import { perturbedTree } from "./concurrent";
import { loadContract } from "../schema/contract";
import type { AnyMessage, TesseractSchema } from "../schema/schema";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { evalTimeoutError } from "./timeout";
import { dropIpServerNameWarning } from "../../common/ip-server-name";

type ApplyClient = grpc.Client & {
  Apply(request: { inputs: AnyMessage }, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: { outputs?: AnyMessage }) => void): grpc.ClientUnaryCall;
};


/** Apply calls sent for one evaluation that keeps ending UNAVAILABLE, each with gRPC's own retries. */
const REPLICA_RESENDS = 3;

/** Attempts per Apply call, the first included (grpc-js caps it at 5). */
export const REPLICA_ATTEMPTS = 5;

/** The channel's service config: round_robin over every address, Apply retried on UNAVAILABLE. */
function serviceConfig() {
  return {
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig: [
      {
        name: [{ service: "tesseract.v1.Tesseract", method: "Apply" }],
        retryPolicy: { maxAttempts: REPLICA_ATTEMPTS, initialBackoff: "0.05s", maxBackoff: "1s", backoffMultiplier: 2, retryableStatusCodes: ["UNAVAILABLE"] },
      },
    ],
  };
}

export interface ReplicaOptions {
  /** Apply calls in flight per request. */
  concurrency: number;
  maxMessageBytes: number;
  /** Per-evaluation timeout in ms (0: none), sent as each Apply call's deadline. */
  evalTimeoutMs?: number;
  /** Channel credentials (TLS, mutual TLS) for replicas that serve them; default plaintext. */
  credentials?: grpc.ChannelCredentials;
  /** A bearer token sent with every Apply call, for replicas that require one. */
  token?: string;
}

export class ReplicaPool {
  readonly client: ApplyClient;
  readonly concurrency: number;
  private readonly evalTimeoutMs: number;
  private readonly token?: string;

  constructor(
    readonly target: string,
    clientConstructor: grpc.ServiceClientConstructor,
    { concurrency, maxMessageBytes, evalTimeoutMs = 0, credentials = grpc.credentials.createInsecure(), token }: ReplicaOptions,
  ) {
    this.concurrency = concurrency;
    this.evalTimeoutMs = evalTimeoutMs;
    this.token = token;
    if (credentials._isSecure()) dropIpServerNameWarning();
    this.client = new clientConstructor(target, credentials, {
      "grpc.service_config": JSON.stringify(serviceConfig()),
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      // A retry resends the request, so gRPC keeps it until the answer: room for the largest, for every call in flight.
      "grpc.per_rpc_retry_buffer_size": maxMessageBytes,
      "grpc.retry_buffer_size": maxMessageBytes * Math.max(1, concurrency),
    }) as unknown as ApplyClient;
  }

  /**
   * One Apply, resent (apply is idempotent) when it ends UNAVAILABLE even after gRPC's own retries:
   * gRPC does not retry a call once it has committed to an attempt (response headers seen), so a
   * replica that dies mid-answer would otherwise fail the whole request.
   */
  async apply(inputs: AnyMessage, signal?: AbortSignal): Promise<AnyMessage | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.applyOnce(inputs, signal);
      } catch (e) {
        const unavailable = e instanceof TesseractError && e.code === Code.UNAVAILABLE;
        if (!unavailable || attempt >= REPLICA_RESENDS || signal?.aborted) throw e;
      }
    }
  }

  private applyOnce(inputs: AnyMessage, signal?: AbortSignal): Promise<AnyMessage | undefined> {
    const options: grpc.CallOptions = this.evalTimeoutMs > 0 ? { deadline: Date.now() + this.evalTimeoutMs } : {};
    return new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (this.token) metadata.set("authorization", `Bearer ${this.token}`);
      const call = this.client.Apply({ inputs }, metadata, options, (error, response) => {
        signal?.removeEventListener("abort", cancel);
        if (error?.code === grpc.status.DEADLINE_EXCEEDED && this.evalTimeoutMs > 0) reject(evalTimeoutError(this.evalTimeoutMs, ` on the apply replicas (${this.target})`));
        else if (error) reject(new TesseractError(error.code as number as Code, `apply replica (${this.target}): ${error.details}`));
        else resolve(response.outputs);
      });
      const cancel = () => call.cancel();
      signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  close(): void {
    this.client.close();
  }
}

export class ReplicaEvaluator implements Evaluator {
  calls = 0;

  constructor(
    private readonly replicas: ReplicaPool,
    private readonly schema: TesseractSchema,
    private readonly inputs: Record<string, unknown>,
    private readonly leaves: readonly InputLeaf[],
    private readonly selector: OutputSelector,
    private readonly signal?: AbortSignal,
  ) {}

  get outputs(): OutputInfo[] | undefined {
    return this.selector.outputs;
  }

  get concurrency(): number {
    return this.replicas.concurrency;
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const tree = perturbedTree(this.inputs, this.leaves, perturbation);
    this.calls++;
    const outputs = await this.replicas.apply(this.schema.inputs.encodeAny(tree, "inputs"), this.signal);
    return this.selector.select(this.schema.outputs.decodeAny(outputs, "outputs of the apply replica"));
  }
}

/** A client of other servers' Tesseract service: the contract alone (inputs travel as Any). */
export function replicaClient(): grpc.ServiceClientConstructor {
  const loaded = grpc.loadPackageDefinition(loadContract()) as unknown as { tesseract: { v1: { Tesseract: grpc.ServiceClientConstructor } } };
  return loaded.tesseract.v1.Tesseract;
}
