/**
 * Evaluation on other tesseract-grpc servers ("apply replicas") through their Apply RPC. One channel
 * with gRPC's own round_robin load balancing over every address of the target (`dns:///apply:50051`
 * or `ipv4:10.0.0.1:50051,10.0.0.2:50051`); no scheduler of our own. Each evaluation sends the base
 * inputs with the perturbed leaves replaced (copy-on-write), so replicas need no state.
 */
import * as grpc from "@grpc/grpc-js";
import ndarray from "ndarray";
import { Code, TesseractError } from "../errors";
import type { OutputSelector } from "../fd/outputs";
import type { InputLeaf } from "../fd/problem";
import { withLeaf } from "../schema/paths";
import type { AnyMessage, TesseractSchema } from "../schema/schema";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";

type ApplyClient = grpc.Client & {
  Apply(request: { inputs: AnyMessage }, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: { outputs?: AnyMessage }) => void): grpc.ClientUnaryCall;
};

export class ReplicaPool {
  readonly client: ApplyClient;

  constructor(
    readonly target: string,
    /** Apply calls in flight per request. */
    readonly concurrency: number,
    clientConstructor: grpc.ServiceClientConstructor,
    maxMessageBytes: number,
  ) {
    this.client = new clientConstructor(target, grpc.credentials.createInsecure(), {
      "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
    }) as unknown as ApplyClient;
  }

  apply(inputs: AnyMessage, signal?: AbortSignal): Promise<AnyMessage | undefined> {
    return new Promise((resolve, reject) => {
      const call = this.client.Apply({ inputs }, new grpc.Metadata(), {}, (error, response) => {
        signal?.removeEventListener("abort", cancel);
        if (error) reject(new TesseractError(error.code as number as Code, `apply replica (${this.target}): ${error.details}`));
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
    let tree = this.inputs;
    for (const change of perturbation) {
      const leaf = this.leaves[change.leaf];
      const data = leaf.data.slice();
      if ("values" in change) data.set(change.values);
      else data[change.index] = change.value;
      tree = withLeaf(tree, leaf.segments, ndarray(data, leaf.shape));
    }
    this.calls++;
    const outputs = await this.replicas.apply(this.schema.inputs.encodeAny(tree, "inputs"), this.signal);
    return this.selector.select(this.schema.outputs.decodeAny(outputs, "outputs of the apply replica"));
  }
}
