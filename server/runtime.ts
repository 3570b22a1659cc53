/**
 * A loaded Tesseract: its definition, its schema, and every endpoint as a method over decoded trees
 * (ndarray leaves). The gRPC layer converts to and from the wire; tests and embedders call this.
 */
import ndarray, { type NdArray } from "ndarray";
import { checkGradients, type CheckGradientsRequest, type CheckGradientsResult, type ColumnGroups } from "./checking/check-gradients";
import { Code, invalidArgument, isTesseractError, listed, quote, TesseractError, thrownCause, thrownMessage } from "../common/errors";
import { EvaluationBackends, type EvaluationSettings } from "./eval/backends";
import type { EvaluationCache } from "./eval/evaluation-cache";
import { withTimeout } from "./eval/timeout";
import { CachedBaseEvaluator } from "./eval/cached-base";
import { effectiveAlgorithm, plannedEvaluations, usesBase } from "./fd/rows";
import { reportProgress } from "./eval/progress";
import { checkJacobianSize, ensureOutputs, jacobian, type JacobianEntry } from "./fd/jacobian";
import { planRowBatches } from "./fd/columns";
import { groupedRows } from "./fd/grouped";
import { DetectedPatterns } from "./fd/detection";
import { planSparsity, type SparsityPlan, type SparsitySources } from "./fd/sparsity-plan";
import { jvp } from "./fd/jvp";
import { settleOutputPrecision } from "./fd/output-precision";
import { checkPathKeys, resolveOptions, type RequestOptions, type ResolvedOptions } from "./fd/options";
import { DEFAULT_ABSOLUTE_EPS } from "./fd/steps";
import { inputLeaf, type InputLeaf } from "./eval/input-leaf";
import { InputGuard } from "./eval/input-guard";
import { PoolReadiness } from "./eval/pool-readiness";
import { OutputSelector } from "./eval/outputs";
import { Problem } from "./fd/problem";
import { vjp } from "./fd/vjp";
import { isPattern, matchesPattern, parsePath } from "../common/paths";
import { isPlainObject } from "../common/records";
import { inSlot, underTimeout, type RemoteApply } from "./eval/concurrent";
import { TesseractSchema, type AnyMessage, type MessageSchema } from "./schema/schema";
import type { EnumLiterals } from "./schema/json-messages";
import type { DocumentedSchema, RequiredFields } from "./schema/openapi-proto";
import { DataType, dataTypeOfArray, isNdArray, toFloat64 } from "../common/tensor-codec";
import type { AbstractEvalAnswer, AbstractOutput, AnyTesseract, DomainBounds, SparsityPattern } from "./tesseract";
import { failedIn, LoadedTesseract, type SchemaRoot } from "./loaded-tesseract";
import { dtypeName } from "./schema/returned-outputs";
import { castsSameKind } from "../common/numpy-arrays";

export interface EvaluationStats {
  apply_calls: number;
  wall_seconds: number;
  /** Elements whose step had to leave the rule (e.g. below one ulp), described. */
  adjusted_steps: string[];
  /** Column groups evaluated (n when dense); absent for a JVP. */
  column_groups?: number;
  /** "request", "tesseract", "detected", or "" (dense); see fd/sparsity-plan.ts. */
  sparsity_source?: string;
}

/** A JVP or VJP result, keyed by path; `errors` for the rules that estimate them. */
export interface VectorProduct {
  result: Record<string, NdArray<Float64Array>>;
  errors?: Record<string, NdArray<Float64Array>>;
  /** A JVP's: per input path, how far the direction taken strayed from the tangent (fd/jvp.ts); not on the wire. */
  stray?: Record<string, Float64Array>;
  /** A central or forward JVP's: per output path, the rounding of the outputs each value carries; not on the wire. */
  rounding?: Record<string, Float64Array>;
  stats: EvaluationStats;
}

export type { JacobianEntry };

/** A path with the shape and datatype of what it names. */
export interface PathShape {
  path: string;
  shape: number[];
  datatype: DataType;
}

/** One row of a Jacobian: d(every requested output) / d(one input element), flat FP64 per output. */
export interface JacobianRow {
  inputPath: string;
  /** Flat, row-major index of the element within its input. */
  inputIndex: number;
  values: Float64Array[];
  /** Estimated absolute errors, shaped like `values`, for the rules that give them. */
  errors?: Float64Array[];
  /** A sparse row: per output, the flat output indices `values` hold (undefined: dense). */
  indices?: readonly (Uint32Array | undefined)[];
  /**
   * Where present, a reader that has copied the row out calls it: the row's memory may then be freed
   * at once (server/eval/result-lease.ts); its values must not be read after.
   */
  release?: () => void;
}

/** A Jacobian produced row by row: what a transport needs to stream it. */
export interface JacobianRowStream {
  /** The differentiated inputs, in row order. */
  inputs: PathShape[];
  /** Rows in all: the inputs' total number of elements. */
  totalRows: number;
  /** Apply calls planned; known once the first row is out (or `outputs()` has answered). */
  plannedEvaluations(): number;
  /** Structural nonzeros when the rows are sparse, else 0; known as plannedEvaluations is. */
  nonzeros(): number;
  /** The requested outputs, in the order of each row's values (evaluates f(x) first when no row has yet). */
  outputs(): Promise<PathShape[]>;
  /** The rows; or `batches`, the same rows in the batches they are computed in (consume one of the two). */
  rows: AsyncIterable<JacobianRow>;
  batches: AsyncIterable<readonly JacobianRow[]>;
  /** The request's stats, once the rows are drained. */
  stats(): EvaluationStats;
}

const pathShapes = (outputs: readonly PathShape[]): PathShape[] => outputs.map(({ path, shape, datatype }) => ({ path, shape, datatype }));

/** Common arguments of the gradient endpoints. */
export interface GradientRequest {
  inputs: Record<string, unknown>;
  inputPaths: readonly string[];
  outputPaths: readonly string[];
  options?: RequestOptions | null;
  /** The Jacobian's structure per (output, input) block, for column grouping (Jacobian, JacobianRows, VJP). */
  sparsity?: readonly SparsityPattern[] | null;
  signal?: AbortSignal;
}

/** Field names used in error messages, so they match the RPC being served. */
interface Fields {
  inputs: string;
  outputs: string;
}

const JACOBIAN_FIELDS: Fields = { inputs: "jac_inputs", outputs: "jac_outputs" };
const CHECK_FIELDS: Fields = { inputs: "input_paths", outputs: "output_paths" };

/** A copy of the tree's structure with each ndarray leaf replaced by { shape, datatype }. */
function abstractView(tree: unknown): unknown {
  if (isNdArray(tree)) return { shape: [...tree.shape], datatype: dataTypeOfArray(tree.data as never) };
  if (Array.isArray(tree)) return tree.map(abstractView);
  if (isPlainObject(tree)) {
    // Maps (objects without a prototype) too: their tensors reached abstractEval as ndarrays.
    const entries = Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, abstractView(v)]));
    return Object.getPrototypeOf(tree) === null ? Object.assign(Object.create(null), entries) : entries;
  }
  return tree;
}

/**
 * Whether a Tesseract whose apply runs elsewhere can evaluate now (its runtimes answer their health
 * checks); the transports' health follows it.
 */
export interface Readiness {
  readonly ready: boolean;
  /** Why it is not ready, for logs and health answers. */
  describe(): string;
  /** Calls `listener` on every change; returns a function that stops it. */
  onChange(listener: (ready: boolean) => void): () => void;
}

/** A schema made elsewhere (a tesseract-core runtime's /openapi.json), with the .proto files reflection serves. */
export interface PreparedSchema extends SchemaRoot {
  /** Apply that runs elsewhere and may run many times at once (evaluations then never use worker threads). */
  remoteApply?: RemoteApply;
  /** Per enum (full name), the Tesseract's own Literal value for each value number (none for 0): how its JSON gives them. */
  enumLiterals?: EnumLiterals;
  /** Per message, the fields a tesseract-core Tesseract's model requires, and those of them that may be null (Optional[X] without a default: unset, their JSON is null). */
  requiredFields?: RequiredFields;
  nullFields?: RequiredFields;
  /** What a tesseract-core runtime's document says beyond protobuf (defaults, array shapes), for the REST API's /openapi.json. */
  documented?: DocumentedSchema;
  readiness?: Readiness;
  /** Requests sent to the runtimes elsewhere so far, resends included (the metrics compare them with evaluations). */
  requestsSent?: () => number;
  /** Requests given up on by their callers that hold their slots while the runtimes elsewhere compute them, now. */
  requestsHeld?: () => number;
  /** AbstractEval with the runtime's whole answer (a tesseract-core /abstract_eval: non-array outputs too), for REST callers. */
  abstractEvalAnswer?: (inputs: unknown, signal?: AbortSignal) => Promise<AbstractEvalAnswer>;
  /** Why an endpoint the definition lacks is not available (for UNIMPLEMENTED), by RPC name. */
  unimplemented?: Partial<Record<"AbstractEval", string>>;
  /** Releases what the schema holds (temporary files, pollers), when the runtime closes. */
  release?: () => void;
}

export class TesseractRuntime extends LoadedTesseract {
  /** How evaluations run (inline unless `useEvaluation` says otherwise). */
  private backends = new EvaluationBackends(this);

  /** Set for a Tesseract whose apply runs elsewhere (see EvaluationTarget). */
  readonly remoteApply?: RemoteApply;

  /** The Tesseract's own enum values for its JSON (a tesseract-core Tesseract's Literals); empty otherwise. */
  readonly enumLiterals: EnumLiterals = {};

  /** The required fields, and those that may be null, per message (PreparedSchema); empty otherwise. */
  readonly requiredFields: RequiredFields = {};
  readonly nullFields: RequiredFields = {};
  /** A tesseract-core runtime's defaults and array shapes, as its document gives them (PreparedSchema). */
  readonly documented?: DocumentedSchema;
  /** Requests sent to a tesseract-core runtime so far, resends included (PreparedSchema). */
  readonly requestsSent?: () => number;
  /** Requests given up on that hold their slots on a tesseract-core runtime now (PreparedSchema). */
  readonly requestsHeld?: () => number;

  /**
   * Whether the Tesseract can be evaluated, which health follows: a tesseract-core runtime's answers
   * /health (PreparedSchema); a local one's worker pool, where every evaluation runs there, can run it.
   */
  readonly readiness: Readiness;

  /** Not ready once a pool that runs every evaluation cannot run the Tesseract (EvaluationBackends). */
  readonly poolReadiness = new PoolReadiness();

  private readonly prepared?: PreparedSchema;

  /** A runtime over a ready schema (`prepared.root`) instead of the definition's .proto files. */
  static fromRoot(definition: AnyTesseract, prepared: PreparedSchema): TesseractRuntime {
    return new TesseractRuntime(definition, "", undefined, prepared);
  }

  /**
   * `moduleDir` anchors the definition's relative .proto paths. `source` (a bundled name or module
   * path) lets worker threads load the same Tesseract.
   */
  constructor(definition: AnyTesseract, moduleDir: string, source?: string, prepared?: PreparedSchema) {
    super(definition, moduleDir, source, prepared);
    if (prepared) {
      this.prepared = prepared;
      this.remoteApply = prepared.remoteApply;
      this.enumLiterals = prepared.enumLiterals ?? {};
      this.requiredFields = prepared.requiredFields ?? {};
      this.nullFields = prepared.nullFields ?? {};
      this.documented = prepared.documented;
      this.requestsSent = prepared.requestsSent;
      this.requestsHeld = prepared.requestsHeld;
      this.readiness = prepared.readiness ?? this.poolReadiness;
      return;
    }
    this.readiness = this.poolReadiness;
    this.checkDeclarations();
  }

  /**
   * The author's declarations that do not depend on the inputs, refused at load rather than in every
   * request: each `bounds` key names differentiable inputs (a misspelt one, ignored, left its domain
   * undeclared) and is an open interval, lower < upper (an inverted one told every caller their
   * inputs were outside it); fixed finite-difference defaults are valid options.
   */
  private checkDeclarations(): void {
    const refuse = (message: string) => new Error(`${this.definition.name}: ${message}`);
    for (const [key, bounds] of Object.entries(this.definition.bounds ?? {})) {
      try {
        this.schema.inputs.checkDifferentiable([key], "bounds", "input");
      } catch (e) {
        throw refuse(thrownMessage(e));
      }
      const { lower, upper } = bounds ?? {};
      for (const [name, value] of [["lower", lower], ["upper", upper]] as const) {
        if (value !== undefined && (typeof value !== "number" || Number.isNaN(value))) throw refuse(`bounds.${key}.${name} is ${quote(String(value))}: expected a number`);
      }
      if (lower !== undefined && upper !== undefined && !(lower < upper)) throw refuse(`bounds.${key} is (${lower}, ${upper}): expected lower < upper`);
    }
    const fd = this.definition.finiteDifferences;
    const fixed = Object.fromEntries(Object.entries(fd ?? {}).filter(([, v]) => typeof v !== "function"));
    try {
      resolveOptions(undefined, fixed, {});
    } catch (e) {
      throw refuse(thrownMessage(e));
    }
  }

  /** Chooses inline, worker-thread or replica evaluation for the requests to come. */
  async useEvaluation(settings: EvaluationSettings): Promise<void> {
    const previous = this.backends;
    this.backends = new EvaluationBackends(this, settings);
    this.poolReadiness.renewed();
    await previous.close();
  }

  /** Releases worker threads, replica channels, and what a prepared schema holds. */
  async close(): Promise<void> {
    await this.backends.close();
    this.prepared?.release?.();
  }

  /** Structures learned from dense Jacobians, for SPARSITY_MODE_DETECT (bounded). */
  readonly detectedSparsity = new DetectedPatterns();

  /** The Apply RPC, wire to wire: in a worker thread when the server has a pool, else here. */
  async applyMessage(any: AnyMessage | null | undefined, signal?: AbortSignal): Promise<AnyMessage> {
    return this.backends.applyMessage(any, signal);
  }

  /** One apply call: here, or on the runtime elsewhere that serves this Tesseract (a tesseract-core runtime's). */
  protected override async evaluate(inputs: Record<string, unknown>, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    const remote = this.remoteApply;
    if (!remote) return super.evaluate(inputs, timeoutMs);
    return inSlot(remote, signal, () => underTimeout(remote, timeoutMs, signal, " (Apply)", (aborting, timeout) => remote.apply(inputs, aborting, timeout)));
  }

  /**
   * apply at the unperturbed inputs of a request, or its outputs from the evaluation cache when an
   * earlier request evaluated them: the outputs tree, and the apply calls made (0 or 1).
   */
  baseOutputs(inputs: Record<string, unknown>, signal?: AbortSignal): Promise<{ outputs: unknown; applyCalls: number }> {
    return this.backends.applyTree(inputs, signal);
  }

  /** The evaluation cache (undefined when the server or the Tesseract turned it off). */
  get evaluationCache(): EvaluationCache | undefined {
    return this.backends.cache;
  }

  /** Settles once a worker pool the evaluations started is ready (start-up, tests), with whether there is one. */
  poolStarted(): Promise<boolean> {
    return this.backends.poolStarted();
  }

  /** Whether a worker pool the evaluations started is ready now (the warm-up). */
  poolReady(): boolean {
    return this.backends.poolReady;
  }

  /** While the warm-up runs (EvaluationBackends.warmingUp). */
  set warmingUp(on: boolean) {
    this.backends.warmingUp = on;
  }

  /** After the warm-up: its measured costs are not the served requests' (EvaluationBackends.forgetMeasurements). */
  forgetMeasurements(): void {
    this.backends.forgetMeasurements();
  }

  /** What `auto` goes by now (EvaluationBackends.autoMeasurements). */
  get autoMeasurements(): { shapes: number; correction: number } {
    return this.backends.autoMeasurements;
  }

  /**
   * Any -> tree in which tensors may be abstract ({ shape, datatype } without data). Inputs without an
   * abstract tensor are what Apply decodes, and are validated as Apply's are: AbstractEval answered
   * shapes for inputs Apply refuses (a negative diffusivity, 5 points in 4 rows).
   */
  decodeAbstractInputs(any: AnyMessage | null | undefined, field = "inputs"): Record<string, unknown> {
    let abstract = false;
    const tree = this.schema.inputs.decodeAny(any, field, { abstract: true, limits: this.decodeLimits, onAbstract: () => (abstract = true) });
    return abstract ? tree : this.validated(tree);
  }

  /** Output shapes and datatypes from the inputs' (AbstractEval); `signal` aborts an abstractEval that runs elsewhere. */
  async abstractEval(inputs: Record<string, unknown>, signal?: AbortSignal): Promise<AbstractOutput[]> {
    return (await this.abstractEvalAnswer(inputs, signal)).outputs;
  }

  /** abstractEval's outputs, and where a runtime elsewhere answered its whole output model, that answer (PreparedSchema.abstractEvalAnswer). */
  async abstractEvalAnswer(inputs: Record<string, unknown>, signal?: AbortSignal): Promise<AbstractEvalAnswer> {
    if (!this.definition.abstractEval) {
      const why = this.prepared?.unimplemented?.AbstractEval ?? `Tesseract "${this.definition.name}" does not define abstractEval, so AbstractEval is not available`;
      throw new TesseractError(Code.UNIMPLEMENTED, why);
    }
    const evaluate = this.prepared?.abstractEvalAnswer ?? (async (view: unknown, s?: AbortSignal) => ({ outputs: await this.definition.abstractEval!(view, s) }));
    const answer = await withTimeout(
      Promise.resolve()
        .then(() => evaluate(abstractView(inputs), signal))
        .catch((e: unknown) => {
          if (isTesseractError(e)) throw e;
          throw failedIn("abstractEval", e);
        }),
      this.backends.timeoutMs,
      "abstractEval",
    );
    return { ...answer, outputs: checkedAbstractOutputs(answer.outputs, this.schema.outputs) };
  }

  /** DescribeResponse. Defaults computed from the inputs are reported as unset. */
  describe() {
    const d = this.definition;
    const fixed = <V>(v: V | ((inputs: never) => unknown) | undefined) => (typeof v === "function" ? undefined : v);
    return {
      name: d.name,
      version: d.version,
      description: d.description,
      input_type: this.schema.inputs.fullName,
      output_type: this.schema.outputs.fullName,
      differentiable_inputs: this.schema.inputs.differentiablePatternNames(),
      differentiable_outputs: this.schema.outputs.differentiablePatternNames(),
      defaults: {
        algorithm: fixed(d.finiteDifferences?.algorithm) ?? 0,
        // An eps computed from the inputs is unset too (0), not the engine's, which it replaces.
        eps: typeof d.finiteDifferences?.eps === "function" ? 0 : (d.finiteDifferences?.eps ?? DEFAULT_ABSOLUTE_EPS),
        num_samples: fixed(d.finiteDifferences?.numSamples),
      },
      endpoints: this.endpoints(),
    };
  }

  /** The RPCs this Tesseract serves. */
  endpoints(): string[] {
    const all = ["Apply", "Jacobian", "JacobianRows", "JacobianVectorProduct", "VectorJacobianProduct", "AbstractEval", "Describe"];
    const served = all.filter((e) => e !== "AbstractEval" || this.definition.abstractEval);
    // Gradient checking compares analytic gradients with finite differences: only with the former.
    if (this.definition.gradients?.jacobian) served.push("CheckGradients");
    return served;
  }

  /** Options after precedence: request > Tesseract defaults > engine defaults. */
  options(inputs: Record<string, unknown>, request?: RequestOptions | null): ResolvedOptions {
    return resolveOptions(request, this.definition.finiteDifferences, inputs);
  }

  /** Resolves paths and options and sets up an inline evaluator over the base inputs, for the RPC `rpc`. */
  private setup(req: GradientRequest, fields: Fields, rpc: string) {
    const leaves = this.schema.inputs.resolveDifferentiable(req.inputs, req.inputPaths, fields.inputs, "input").map((l) => inputLeaf(l, fields.inputs));
    const selector = new OutputSelector(this.schema.outputs, req.outputPaths, fields.outputs, this.remoteApply !== undefined);
    const options = this.options(req.inputs, req.options);
    checkPathKeys(options, leaves, `in ${fields.inputs}`);
    const planned = plannedEvaluations(leaves.reduce((n, l) => n + l.size, 0), options);
    const evaluator = this.backends.evaluatorFor({ inputs: req.inputs, leaves, selector, outputPaths: req.outputPaths, outputsField: fields.outputs, plannedEvaluations: planned, rpc, signal: req.signal });
    const problem = new Problem(leaves, evaluator, req.signal, this.leafBounds(leaves));
    reportProgress(req.signal, () => ({ evaluations: problem.calls, planned: problem.plannedEvaluations ?? planned }));
    this.inputGuards.set(problem, new InputGuard(req.inputs));
    // f(x) from the evaluation cache is one evaluation fewer than planned, whether the rule or the plan needs it.
    const cachedBase = evaluator instanceof CachedBaseEvaluator && evaluator.baseKnown();
    return { leaves, options, evaluator, problem, cachedBase, started: performance.now() };
  }

  /**
   * A Jacobian's or VJP's plan: the outputs' precision settled first (their default relative steps
   * may depend on it), then the structure its columns are grouped by (fd/sparsity-plan.ts). The
   * evaluator is told the apply calls the request will make (`auto` tells its pace once they are back).
   */
  private async plan(problem: Problem, options: ResolvedOptions, req: GradientRequest, cachedBase: boolean, predicted = this.predictedSource(req)): Promise<SparsityPlan> {
    const evaluatedBase = await settleOutputPrecision(problem, options, predicted);
    const plan = await planSparsity(problem, options, this.sparsitySources(req, predicted));
    plan.baseForShapes ||= evaluatedBase;
    problem.replanned(plannedCalls(plan, options, problem.size, cachedBase));
    return plan;
  }

  /** Where a request's Jacobian structure may come from (fd/sparsity-plan.ts). */
  private sparsitySources(req: GradientRequest, predicted: SparsitySources["predictedOutputs"]): SparsitySources {
    const { definition } = this;
    return {
      request: req.sparsity,
      declared: definition.sparsity && (() => declaredSparsity(definition, this.schema, req.inputs)),
      predictedOutputs: predicted,
      detected: { cache: this.detectedSparsity, outputPaths: req.outputPaths },
    };
  }

  /**
   * abstractEval's prediction of the requested outputs, where the Tesseract has one: asked once per
   * request, whoever needs it first (the size check, the outputs' precision, the plan; a bridged
   * runtime's is a round trip).
   */
  private predictedSource(req: GradientRequest): (() => Promise<AbstractOutput[]>) | undefined {
    if (!this.definition.abstractEval) return undefined;
    let predicted: Promise<AbstractOutput[]> | undefined;
    return () => (predicted ??= this.predictedOutputs(req.inputs, req.outputPaths, req.signal));
  }

  /** The requested outputs as abstractEval predicts them (any order), or undefined. */
  private async predictedOutputs(inputs: Record<string, unknown>, outputPaths: readonly string[], signal?: AbortSignal): Promise<AbstractOutput[]> {
    const predicted = await this.abstractEval(inputs, signal);
    const patterns = outputPaths.map(parsePath);
    return predicted.filter((o) => patterns.some((p) => matchesPattern(parsePath(o.path), p)));
  }

  /** The declared domain of each leaf: the first `bounds` key (path or pattern) that matches it. */
  private leafBounds(leaves: readonly InputLeaf[]): (DomainBounds | undefined)[] {
    const declared = Object.entries(this.definition.bounds ?? {}).map(([key, b]) => [parsePath(key), b] as const);
    return leaves.map((leaf) => declared.find(([pattern]) => matchesPattern(leaf.segments, pattern))?.[1]);
  }

  /** Each request's snapshot of its inputs, checked when its work is done (stats): apply must not have written to them. */
  private readonly inputGuards = new WeakMap<Problem, InputGuard>();

  private stats(problem: Problem, started: number, adjusted = problem.adjustedSteps(), plan?: SparsityPlan): EvaluationStats {
    this.inputGuards.get(problem)?.check();
    // One object shape whether or not a plan was made (a spread gave each answer a shape of its own).
    return {
      apply_calls: problem.calls,
      wall_seconds: (performance.now() - started) / 1000,
      adjusted_steps: adjusted,
      column_groups: plan?.columnGroups,
      sparsity_source: plan?.source,
    };
  }

  /**
   * `maxBytes` bounds the result. With abstractEval it is checked before any evaluation; without,
   * as soon as the first evaluation has told the output shapes.
   */
  async jacobian(req: GradientRequest & { maxBytes?: number }): Promise<{ entries: JacobianEntry[]; stats: EvaluationStats }> {
    const { problem, options, leaves, cachedBase, started } = this.setup(req, JACOBIAN_FIELDS, "Jacobian");
    // A Tesseract whose abstractEval runs elsewhere is checked after its first evaluation instead (no extra round trip).
    const predicted = this.predictedSource(req);
    if (req.maxBytes !== undefined && predicted && !this.remoteApply) {
      // An abstractEval that fails leaves the check to the first evaluation, as planning leaves it (apply
      // will say what is wrong): it failed the unary Jacobian alone, where JacobianRows went on.
      const shapes = await predicted().catch(() => undefined);
      if (shapes) checkJacobianSize(shapes.map((o) => o.shape), leaves.map((l) => l.size), req.maxBytes);
    }
    const plan = await this.plan(problem, options, req, cachedBase, predicted);
    const entries = await jacobian(problem, options, req.maxBytes, plan);
    return { entries, stats: this.stats(problem, started, undefined, plan) };
  }

  /** The Jacobian row by row, as produced (JacobianRows); `stats()` once the rows are drained. */
  jacobianRows(req: GradientRequest): JacobianRowStream {
    const { problem, options, leaves, cachedBase, started } = this.setup(req, JACOBIAN_FIELDS, "JacobianRows");
    problem.paced = this.backends.pacesStreams;
    let planning: Promise<SparsityPlan> | undefined;
    let plan: SparsityPlan | undefined;
    const planned = async () => (plan ??= await (planning ??= this.plan(problem, options, req, cachedBase)));
    const outputs = async () => (await planned(), pathShapes(await ensureOutputs(problem)));
    const guard = this.inputGuards.get(problem)!;
    const batches = (async function* () {
      for await (const batch of planRowBatches(problem, options, await planned())) {
        // Before any row of the batch leaves: rows made after apply wrote to its inputs are not sent.
        guard.check();
        yield batch.map((row) => {
          // A structure with no nonzero at all (every block zero) streams dense rows: nonzeros = 0 means dense.
          const { values, errors, indices } = plan!.nonzeros > 0 || !row.indices ? row : densified(row, problem.outputs!);
          return { inputPath: leaves[row.leaf].path, inputIndex: row.index, values, errors, indices, release: row.release };
        });
      }
    })();
    return {
      inputs: leaves.map((l) => ({ path: l.path, shape: l.shape, datatype: l.fp32 ? DataType.DATA_TYPE_FP32 : DataType.DATA_TYPE_FP64 })),
      totalRows: problem.size,
      plannedEvaluations: () => plannedCalls(plan!, options, problem.size, cachedBase),
      nonzeros: () => plan!.nonzeros,
      outputs,
      batches,
      rows: (async function* () {
        for await (const batch of batches) yield* batch;
      })(),
      stats: () => this.stats(problem, started, undefined, plan),
    };
  }

  /** `tangent` is keyed by input path, each shaped like its input. Result keyed by output path. */
  async jvp(req: GradientRequest & { tangent: Record<string, NdArray<any>>; withRounding?: boolean }): Promise<VectorProduct> {
    const { problem, leaves, options, started } = this.setup(req, { inputs: "jvp_inputs", outputs: "jvp_outputs" }, "JacobianVectorProduct");
    const tangent = matchVectors("tangent_vector", req.tangent, leaves, "jvp_inputs");
    await settleOutputPrecision(problem, options, this.predictedSource(req));
    const { values, errors, stray, rounding } = await jvp(problem, tangent, options, req.withRounding);
    const keyed = (arrays: Float64Array[]) => Object.fromEntries(problem.outputs!.map((o, i) => [o.path, ndarray(arrays[i], o.shape)]));
    return {
      result: keyed(values),
      errors: errors && keyed(errors),
      stray: stray && Object.fromEntries(leaves.map((leaf, l) => [leaf.path, stray[l]])),
      rounding: rounding && Object.fromEntries(problem.outputs!.map((o, i) => [o.path, rounding[i]])),
      stats: this.stats(problem, started),
    };
  }

  /** `cotangent` is keyed by output path, each shaped like its output. Result keyed by input path. */
  async vjp(req: GradientRequest & { cotangent: Record<string, NdArray<any>> }): Promise<VectorProduct> {
    const field = "cotangent_vector";
    const { problem, leaves, options, evaluator, cachedBase, started } = this.setup(req, { inputs: "vjp_inputs", outputs: "vjp_outputs" }, "VectorJacobianProduct");
    const cotangent = Object.entries(req.cotangent).map(([key, array]) => ({ path: key, shape: [...array.shape], values: finiteValues(field, key, toFloat64(array)) }));
    const paths = new Set(req.outputPaths);
    const patternFree = req.outputPaths.every((p) => !isPattern(parsePath(p)));
    if (patternFree) {
      // Key mistakes are caught before evaluating; shapes are checked once the outputs are known.
      for (const c of cotangent) if (!paths.has(c.path)) throw invalidArgument(`${field} has key ${quote(c.path)}, which is not in vjp_outputs (${listed(req.outputPaths)})`);
      for (const p of paths) if (!Object.hasOwn(req.cotangent, p)) throw invalidArgument(`${field} is missing output ${quote(p)}`);
    }
    const plan = await this.plan(problem, options, req, cachedBase);
    const { values, errors, adjustedSteps } = await vjp(problem, evaluator, cotangent, options, field, req.signal, plan);
    const keyed = (arrays: Float64Array[]) => Object.fromEntries(leaves.map((leaf, i) => [leaf.path, ndarray(arrays[i], leaf.shape)]));
    return { result: keyed(values), errors: errors && keyed(errors), stats: this.stats(problem, started, adjustedSteps, plan) };
  }

  /**
   * The request's Jacobian as column groups (fd/sparsity-plan.ts: the request's pattern or the
   * Tesseract's declaration), so that CheckGradients' finite-difference columns cost what a grouped
   * Jacobian's do. Undefined where there is nothing to group by, where grouping saves nothing, and
   * under SPARSITY_MODE_DETECT (a structure is verified whole there, not by some of its groups).
   */
  async columnGroups(req: GradientRequest): Promise<ColumnGroups> {
    const { problem, options, cachedBase } = this.setup(req, CHECK_FIELDS, "CheckGradients");
    const plan = await this.plan(problem, options, req, cachedBase);
    const { structure } = plan;
    const groups = structure && !plan.verify && !plan.record && plan.columnGroups < problem.size ? plan.groups : undefined;
    // A lone column near a domain bound takes a one-sided stencil, which needs f(x): the central rule's count leaves it out.
    const central = effectiveAlgorithm(problem.size, options) === "central";
    const base = () => (central && problem.bounds.some((b) => b !== undefined) && !problem.madeBase ? 1 : 0);
    const keyed = (arrays: readonly Float64Array[] | undefined, indices: readonly (Uint32Array | undefined)[] | undefined) =>
      arrays && Object.fromEntries(problem.outputs!.map((o, k) => [o.path, densified({ values: [arrays[k]], indices: [indices?.[k]] }, [o]).values[0]]));
    return {
      groups,
      zeroColumns: groups ? plan.zeroColumns : [],
      source: groups ? plan.source : "",
      calls: () => problem.calls,
      cost: (count) => plannedEvaluations(count, options) + base(),
      columns: async function* (chosen) {
        for await (const batch of groupedRows(problem, options, structure!, chosen, true)) {
          for (const row of batch) {
            yield { leaf: row.leaf, index: row.index, values: keyed(row.values, row.indices)!, errors: keyed(row.errors, row.indices), rounding: keyed(row.rounding, row.indices) };
            row.release?.();
          }
        }
      },
    };
  }

  /** The analytic gradients against finite differences on sampled rows (checking/check-gradients.ts). */
  checkGradients(req: CheckGradientsRequest): Promise<CheckGradientsResult> {
    return checkGradients(this, req);
  }
}

/** A sparse row as dense values (zeros off its indices). */
function densified(row: { values: Float64Array[]; errors?: Float64Array[]; indices?: readonly (Uint32Array | undefined)[] }, outputs: readonly { shape: number[] }[]) {
  const dense = (arrays: Float64Array[]) =>
    arrays.map((a, o) => {
      const at = row.indices?.[o];
      if (!at) return a;
      const out = new Float64Array(outputs[o].shape.reduce((x, y) => x * y, 1));
      at.forEach((i, k) => (out[i] = a[k]));
      return out;
    });
  return { values: dense(row.values), errors: row.errors && dense(row.errors), indices: undefined };
}

/**
 * The Tesseract's sparsity declaration at these inputs; none when it declares no pattern (an empty
 * list: detection may then learn one). A failure other than a TesseractError, or something else
 * than a list, is its author's (INTERNAL).
 */
function declaredSparsity(definition: AnyTesseract, schema: TesseractSchema, inputs: Record<string, unknown>): readonly SparsityPattern[] | undefined {
  let patterns: unknown;
  try {
    patterns = definition.sparsity?.(inputs) ?? undefined;
  } catch (e) {
    if (isTesseractError(e)) throw e;
    throw new TesseractError(Code.INTERNAL, `the Tesseract's sparsity declaration failed: ${thrownMessage(e)}`, { cause: thrownCause(e) });
  }
  if (patterns !== undefined && !Array.isArray(patterns)) {
    throw new TesseractError(Code.INTERNAL, `the Tesseract's sparsity declaration returned ${patterns === null ? "null" : typeof patterns}: expected a list of {output_path, input_path, output_index, input_index} patterns`);
  }
  // Paths that are no differentiable path at all are misspelt (a block not requested is simply skipped).
  (patterns as SparsityPattern[] | undefined)?.forEach((p, k) => {
    try {
      checkDeclaredPattern(p);
      schema.outputs.checkDifferentiable([p.output_path], `output_path`, "output");
      schema.inputs.checkDifferentiable([p.input_path], `input_path`, "input");
    } catch (e) {
      throw new TesseractError(Code.INTERNAL, `the Tesseract's sparsity declaration[${k}]: ${thrownMessage(e)}`);
    }
  });
  return patterns?.length ? (patterns as SparsityPattern[]) : undefined;
}

/**
 * A declared pattern's shape: concrete paths (a pattern path, `named.{}`, was skipped: dense) and both
 * index lists (one left out or misspelt, `outputIndex`, declared a zero block: a Jacobian of zeros,
 * answered OK). Only an empty list declares a block of zeros.
 */
function checkDeclaredPattern(p: unknown): void {
  if (!isPlainObject(p)) throw new Error(`${p === null ? "null" : typeof p}: expected {output_path, input_path, output_index, input_index}`);
  for (const key of ["output_path", "input_path"] as const) {
    if (typeof p[key] !== "string") throw new Error(`${key} is ${typeof p[key]}: expected a path`);
    if (isPattern(parsePath(p[key] as string))) throw new Error(`${key} "${p[key] as string}" is a pattern; a declaration names concrete paths`);
  }
  for (const key of ["output_index", "input_index"] as const) {
    const list = p[key];
    if (!Array.isArray(list) && !(ArrayBuffer.isView(list) && !(list instanceof DataView))) {
      const keys = Object.keys(p).filter((k) => !["output_path", "input_path", "output_index", "input_index"].includes(k));
      throw new Error(`${key} is ${list === null ? "null" : typeof list}: expected a list of flat indices (an empty one declares a block of zeros)${keys.length ? `; it has ${keys.join(", ")}, which is no field of a pattern` : ""}`);
    }
  }
}

/** What abstractEval answered, as the contract has it: a list of {path, shape, datatype}; else its author's mistake, named. */
function checkedAbstractOutputs(answer: unknown, outputs: MessageSchema): AbstractOutput[] {
  const fault = (what: string) => new TesseractError(Code.INTERNAL, `abstractEval returned ${what}: expected a list of {path, shape, datatype}, one per output tensor`);
  if (!Array.isArray(answer)) throw fault(answer === null ? "null" : typeof answer);
  answer.forEach((o: Partial<AbstractOutput> | null, k) => {
    if (o === null || typeof o !== "object" || typeof o.path !== "string") throw fault(`an entry without a path string at [${k}]`);
    // A path that names no output tensor was answered as it was (AbstractEval OK with "zzz"; REST's 422 blamed the caller for "q.{open").
    if (!outputs.namesTensor(o.path)) throw fault(`the path ${quote(o.path)} at [${k}], which names no tensor of ${outputs.fullName}`);
    if (!Array.isArray(o.shape) || !o.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw fault(`${o.path} with shape ${JSON.stringify(o.shape) ?? String(o.shape)}`);
    if (!Number.isInteger(o.datatype) || (o.datatype as number) < 0 || DataType[o.datatype as number] === undefined) throw fault(`${o.path} with datatype ${String(o.datatype)}`);
  });
  return (answer as AbstractOutput[]).map((o) => declaredAbstractOutput(o, outputs));
}

/**
 * An abstractEval entry with the datatype Apply answers: the output's declared one where abstractEval
 * tells another that apply's arrays are cast from (returned-outputs.ts); one they are not cast from is
 * refused as Apply would refuse the arrays.
 */
function declaredAbstractOutput(o: AbstractOutput, outputs: MessageSchema): AbstractOutput {
  const declared = outputs.declaredDatatypeAt(parsePath(o.path));
  if (declared === undefined || o.datatype === declared) return o;
  if (o.datatype !== DataType.DATA_TYPE_UNSPECIFIED && !castsSameKind(o.datatype, declared)) {
    throw new TesseractError(Code.INTERNAL, `abstractEval returned ${o.path} as ${dtypeName(o.datatype)}, declared ${dtypeName(declared)}: numpy's same_kind casting, which tesseract-core applies to outputs, does not cast ${dtypeName(o.datatype)} to ${dtypeName(declared)}`);
  }
  return { ...o, datatype: declared };
}

/**
 * Tangents in leaf order: exactly one per differentiated input, same shape, as FP64. An integer or
 * bool tangent is cast, as tesseract-core casts (same_kind): [1, 0, 0] is a direction like any other.
 */
function matchVectors(field: string, vectors: Record<string, NdArray<any>>, leaves: { path: string; shape: number[] }[], pathsField: string): Float64Array[] {
  for (const key of Object.keys(vectors)) {
    if (!leaves.some((l) => l.path === key)) {
      throw invalidArgument(`${field} has key ${quote(key)}, which is not in ${pathsField} (${listed(leaves.map((l) => l.path))})`);
    }
  }
  return leaves.map((leaf) => {
    const v = Object.hasOwn(vectors, leaf.path) ? vectors[leaf.path] : undefined;
    if (!v) throw invalidArgument(`${field} is missing input ${quote(leaf.path)} (shape [${leaf.shape.join(", ")}])`);
    if (v.shape.length !== leaf.shape.length || v.shape.some((d, i) => d !== leaf.shape[i])) {
      throw invalidArgument(`${field}.{${leaf.path}} has shape [${v.shape.join(", ")}], expected [${leaf.shape.join(", ")}] like the input`);
    }
    return finiteValues(field, leaf.path, toFloat64(v));
  });
}

/** A tangent or cotangent with NaN or Inf has no product to compute: refused, naming the element. */
function finiteValues(field: string, key: string, values: Float64Array): Float64Array {
  const i = values.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw invalidArgument(`${field}.{${key}} has ${values[i]} at flat index ${i}; expected finite numbers`);
  return values;
}

/** Apply calls a request will make by its plan, less f(x) where the evaluation cache holds it (whether the rule or the plan needs it). */
function plannedCalls(plan: SparsityPlan, options: ResolvedOptions, columns: number, cachedBase: boolean): number {
  return plan.plannedEvaluations(options) - (!plan.fellBack && cachedBase && (usesBase(columns, options) || plan.baseForShapes || plan.onlyZeroColumns) ? 1 : 0);
}
