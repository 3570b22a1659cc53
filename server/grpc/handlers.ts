/**
 * The Tesseract service's handlers: wire messages in, runtime calls, wire messages out. Each call gets
 * a request id, an AbortSignal driven by the call's 'cancelled' event (client cancel or deadline),
 * one log line, and errors mapped to statuses in one place (status.ts).
 */
import { randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import type { NdArray } from "ndarray";
import { requireAnalyticJacobian } from "../check-gradients";
import { Code, TesseractError } from "../errors";
import type { RequestOptions } from "../fd/options";
import type { Logger } from "../log";
import type { GradientRequest, TesseractRuntime } from "../runtime";
import type { AnyMessage } from "../schema/schema";
import { decodeTensor, fp64Tensor, type TensorMessage } from "../tensor/codec";
import { jacobianRowsMessages, writeAll } from "./rows-stream";
import { asServiceError, toStatus } from "./status";

export interface HandlerConfig {
  /** JacobianRows message budget in bytes. */
  streamChunkBytes: number;
  /** Largest message sent or received. */
  maxMessageBytes: number;
}

/** Room left in a unary Jacobian response for everything but the FP64 values. */
const RESPONSE_SLACK_BYTES = 64 * 1024;

interface GradientMessage {
  inputs?: AnyMessage;
  options?: RequestOptions;
}

type Call = { metadata: grpc.Metadata; on(event: "cancelled", listener: () => void): unknown };

/** Per-call bookkeeping shared by unary and streaming handlers. */
function track(call: Call, rpc: string, log: Logger) {
  const requestId = String(call.metadata.get("x-request-id")[0] ?? randomUUID());
  const controller = new AbortController();
  let finished = false;
  // grpc-js also emits 'cancelled' after a normal end: only a call still running is aborted.
  call.on("cancelled", () => {
    if (!finished) controller.abort(new TesseractError(Code.CANCELLED, "the call was cancelled or its deadline passed"));
  });
  const started = performance.now();
  return {
    signal: controller.signal,
    finish(error?: unknown) {
      finished = true;
      const ms = +(performance.now() - started).toFixed(2);
      if (error === undefined) {
        log.info({ rpc, request_id: requestId, code: 0, ms }, "call");
        return undefined;
      }
      const status = toStatus(error, controller.signal, log, requestId);
      log.info({ rpc, request_id: requestId, code: status.code, ms, details: status.details }, "call");
      return asServiceError(status);
    },
  };
}

function unary<Req, Res>(rpc: string, log: Logger, handle: (request: Req, signal: AbortSignal) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const t = track(call, rpc, log);
    handle(call.request, t.signal).then(
      (response) => {
        t.finish();
        callback(null, response);
      },
      (error) => callback(t.finish(error) as grpc.ServiceError),
    );
  };
}

function decodeVectors(field: string, vectors: Record<string, TensorMessage> | undefined): Record<string, NdArray<any>> {
  return Object.fromEntries(Object.entries(vectors ?? {}).map(([key, t]) => [key, decodeTensor(t, `${field}.{${key}}`)]));
}

function encodeVectors(result: Record<string, NdArray<Float64Array>>) {
  return Object.fromEntries(Object.entries(result).map(([key, a]) => [key, fp64Tensor(a.data, a.shape)]));
}

export function createHandlers(runtime: TesseractRuntime, config: HandlerConfig, log: Logger): grpc.UntypedServiceImplementation {
  const gradient = (req: GradientMessage, inputPaths: string[] | undefined, outputPaths: string[] | undefined, signal: AbortSignal): GradientRequest => ({
    inputs: runtime.decodeInputs(req.inputs),
    inputPaths: inputPaths ?? [],
    outputPaths: outputPaths ?? [],
    options: req.options,
    signal,
  });
  type JacobianMessage = GradientMessage & { jac_inputs?: string[]; jac_outputs?: string[] };

  return {
    Apply: unary("Apply", log, async (req: { inputs?: AnyMessage }) => {
      const outputs = await runtime.apply(runtime.decodeInputs(req.inputs));
      return { outputs: runtime.encodeOutputs(outputs) };
    }),

    Jacobian: unary("Jacobian", log, async (req: JacobianMessage, signal) => {
      const maxBytes = config.maxMessageBytes - RESPONSE_SLACK_BYTES;
      const { entries, stats } = await runtime.jacobian({ ...gradient(req, req.jac_inputs, req.jac_outputs, signal), maxBytes });
      return {
        entries: entries.map((e) => ({
          output_path: e.outputPath,
          input_path: e.inputPath,
          value: fp64Tensor(e.values, e.shape),
          error_estimate: e.errors && fp64Tensor(e.errors, e.shape),
        })),
        stats,
      };
    }),

    JacobianRows: (call: grpc.ServerWritableStream<JacobianMessage, unknown>) => {
      const t = track(call, "JacobianRows", log);
      const run = async () => {
        const req = gradient(call.request, call.request.jac_inputs, call.request.jac_outputs, t.signal);
        await writeAll(call, jacobianRowsMessages(runtime, req, config.streamChunkBytes), t.signal);
      };
      run().then(
        () => {
          t.finish();
          call.end();
        },
        (error) => call.emit("error", t.finish(error)),
      );
    },

    JacobianVectorProduct: unary("JacobianVectorProduct", log, async (req: GradientMessage & { jvp_inputs?: string[]; jvp_outputs?: string[]; tangent_vector?: Record<string, TensorMessage> }, signal) => {
      const tangent = decodeVectors("tangent_vector", req.tangent_vector);
      const { result, errors, stats } = await runtime.jvp({ ...gradient(req, req.jvp_inputs, req.jvp_outputs, signal), tangent });
      return { result: encodeVectors(result), error_estimate: errors && encodeVectors(errors), stats };
    }),

    VectorJacobianProduct: unary("VectorJacobianProduct", log, async (req: GradientMessage & { vjp_inputs?: string[]; vjp_outputs?: string[]; cotangent_vector?: Record<string, TensorMessage> }, signal) => {
      const cotangent = decodeVectors("cotangent_vector", req.cotangent_vector);
      const { result, errors, stats } = await runtime.vjp({ ...gradient(req, req.vjp_inputs, req.vjp_outputs, signal), cotangent });
      return { result: encodeVectors(result), error_estimate: errors && encodeVectors(errors), stats };
    }),

    AbstractEval: unary("AbstractEval", log, async (req: { inputs?: AnyMessage }) => {
      return { outputs: runtime.abstractEval(runtime.decodeAbstractInputs(req.inputs)) };
    }),

    Describe: unary("Describe", log, async () => runtime.describe()),

    CheckGradients: unary("CheckGradients", log, async (req: GradientMessage & { input_paths?: string[]; output_paths?: string[]; endpoints?: string[]; rtol?: number; atol?: number; max_evals?: number; seed?: string }, signal) => {
      requireAnalyticJacobian(runtime); // UNIMPLEMENTED whatever the inputs
      const { passed, checks } = await runtime.checkGradients({
        inputs: runtime.decodeInputs(req.inputs),
        inputPaths: req.input_paths ?? [],
        outputPaths: req.output_paths ?? [],
        endpoints: req.endpoints ?? [],
        rtol: req.rtol,
        atol: req.atol,
        maxEvals: req.max_evals,
        seed: req.seed,
        options: req.options,
        signal,
      });
      return { passed, checks };
    }),
  };
}
