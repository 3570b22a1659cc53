/**
 * A Tesseract loaded to evaluate: its definition and schema, inputs decoded and validated, apply run
 * here, outputs encoded. It is what a worker thread needs (eval/worker.ts). TesseractRuntime
 * (runtime.ts) adds the endpoints, the evaluators and Tesseracts whose apply runs elsewhere; kept
 * apart, a worker thread loads none of those modules (a thread started 30 ms sooner, a megabyte
 * less each).
 */
import * as path from "node:path";
import type * as protobuf from "protobufjs";
import { Code, isTesseractError, TesseractError, thrownCause, thrownMessage } from "../common/errors";
import { DEFAULT_LIMITS, type DecodeLimits } from "../common/tensor-codec";
import { withTimeout } from "./eval/timeout";
import { isThenable, settledOutputs } from "./eval/settled-outputs";
import { loadRoot, TesseractSchema, type AnyMessage } from "./schema/schema";
import { castReturnedOutputs } from "./schema/returned-outputs";
import type { AnyTesseract } from "./tesseract";

/** A schema made elsewhere instead of from the definition's .proto files (runtime.ts, PreparedSchema). */
export interface SchemaRoot {
  root: protobuf.Root;
  /** Absolute paths of .proto files declaring the same types, for the gRPC service definition and reflection. */
  protoFiles: string[];
  protoIncludeDirs?: string[];
}

export class LoadedTesseract {
  readonly schema: TesseractSchema;

  /** Absolute paths of the Tesseract's .proto files and extra import folders. */
  readonly protoFiles: string[];
  readonly protoIncludeDirs: string[];

  /** Tensor limits for everything decoded from requests (`--max-tensor-elements`, `--max-tensor-bytes`). */
  decodeLimits: DecodeLimits = DEFAULT_LIMITS;

  /** Apply calls made so far in this thread or on its behalf, by every endpoint (for metrics). */
  evaluations = 0;

  /**
   * `moduleDir` anchors the definition's relative .proto paths. `source` (a bundled name or module
   * path) lets worker threads load the same Tesseract.
   */
  constructor(
    readonly definition: AnyTesseract,
    moduleDir: string,
    readonly source?: string,
    made?: SchemaRoot,
  ) {
    if (made) {
      this.protoFiles = made.protoFiles;
      this.protoIncludeDirs = made.protoIncludeDirs ?? [];
      this.schema = new TesseractSchema(made.root, definition.inputType, definition.outputType);
      return;
    }
    const resolve = (p: string) => path.resolve(moduleDir, p);
    this.protoFiles = definition.protoFiles.map(resolve);
    this.protoIncludeDirs = [moduleDir, ...(definition.protoIncludeDirs ?? []).map(resolve)];
    this.schema = new TesseractSchema(loadRoot(this.protoFiles, this.protoIncludeDirs), definition.inputType, definition.outputType);
  }

  /**
   * Any -> tree, then the Tesseract's own validation. A validate that throws something else than a
   * TesseractError is answered as a throwing apply is (UNKNOWN with its message), not as a bug here.
   */
  decodeInputs(any: AnyMessage | null | undefined, field = "inputs", limits = this.decodeLimits): Record<string, unknown> {
    return this.validated(this.schema.inputs.decodeAny(any, field, { limits }));
  }

  /** `inputs` once the Tesseract's own validation accepts them. */
  protected validated(inputs: Record<string, unknown>): Record<string, unknown> {
    try {
      this.definition.validate?.(inputs);
    } catch (e) {
      if (isTesseractError(e)) throw e;
      throw failedIn("validate", e);
    }
    return inputs;
  }

  /** apply's outputs as an Any; reading them may run the Tesseract's code (a getter), whose throw is its failure, as apply's own. */
  encodeOutputs(outputs: unknown): AnyMessage {
    try {
      return this.schema.outputs.encodeAny(outputs);
    } catch (e) {
      if (isTesseractError(e)) throw e;
      throw failedIn("apply", e);
    }
  }

  /**
   * Runs apply once; a failure that is not a TesseractError becomes UNKNOWN with its message.
   * `timeoutMs` gives up on an asynchronous apply that takes longer; `signal` aborts a remote one.
   */
  async apply(inputs: Record<string, unknown>, timeoutMs = 0, signal?: AbortSignal): Promise<unknown> {
    this.evaluations++;
    try {
      return await this.evaluate(inputs, timeoutMs, signal);
    } catch (e) {
      if (isTesseractError(e)) throw e;
      throw failedIn("apply", e);
    }
  }

  /**
   * One apply call: the definition's, here, its outputs checked against the schema and in the
   * datatypes their fields declare (returned-outputs.ts): what Apply answers, over gRPC and REST, and
   * what CheckGradients compares.
   */
  protected async evaluate(inputs: Record<string, unknown>, timeoutMs: number, _signal?: AbortSignal): Promise<unknown> {
    const outputs = await withTimeout(
      Promise.resolve().then(() => {
        const result = this.definition.apply(inputs);
        return isThenable(result) ? settledOutputs(result) : result;
      }),
      timeoutMs,
    );
    this.schema.outputs.checkDeclared(outputs);
    return castReturnedOutputs(this.schema.outputs.type, outputs);
  }
}

/** What a Tesseract's own code threw, as UNKNOWN: its fault, not the caller's or the server's. */
export function failedIn(what: string, e: unknown): TesseractError {
  return new TesseractError(Code.UNKNOWN, `${what} failed: ${thrownMessage(e)}`, { cause: thrownCause(e) });
}
