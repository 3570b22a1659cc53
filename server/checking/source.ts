/**
 * What the check needs of a loaded Tesseract (GradientSource: the runtime satisfies it), and its
 * evaluations through it, counted against max_evals.
 *
 * FD columns are FD JVPs along unit tangents e_j (the source's jvp) rather than the engine's row
 * producer: a JVP along a single element is that element's column by the engine's rule (fd/jvp.ts,
 * one-sided near a domain bound), and it costs the sampled elements only (the row producer walks
 * every element of a path, 2n evaluations). It goes through the same public
 * method as the JacobianVectorProduct RPC, so paths, options, evaluation backends and cancellation
 * behave as in every other RPC.
 *
 * Evaluations run one after another: they share the request's input tree, which evaluations perturb
 * in place (perturb-and-restore), so two at once would see each other's steps.
 */
import ndarray, { type NdArray } from "ndarray";
import { Code, TesseractError } from "../../common/errors";
import { Algorithm } from "../tesseract";
import type { RequestOptions, ResolvedOptions } from "../fd/options";
import type { TesseractSchema } from "../schema/schema";
import type { AnalyticDefinition } from "./analytic";
import type { Leaf } from "./leaves";
import type { Column } from "../fd/column";

export interface JvpRequest {
  inputs: Record<string, unknown>;
  inputPaths: readonly string[];
  outputPaths: readonly string[];
  options?: RequestOptions | null;
  tangent: Record<string, NdArray<any>>;
  signal?: AbortSignal;
  /** Central and forward results carry the outputs' rounding (`rounding`). */
  withRounding?: boolean;
}

/** One column of a Jacobian as CheckGradients compares it: dense per output path. */
export interface CheckedColumn {
  /** Index into the request's input paths (each a concrete path: one leaf). */
  leaf: number;
  /** Flat row-major index of the element within its input. */
  index: number;
  values: Record<string, Float64Array>;
  /** Each value's error estimate (Richardson, adaptive), else undefined. */
  errors?: Record<string, Float64Array>;
  /** The rounding of the outputs each value carries (central, forward), else undefined. */
  rounding?: Record<string, Float64Array>;
}

/** A request's column groups, for CheckGradients (TesseractRuntime.columnGroups). */
export interface ColumnGroups {
  /** Every column, in groups of columns evaluated together (leaf: index into the request's input paths); undefined: nothing to group by. */
  groups?: readonly Column[][];
  /** The columns `groups` leaves out: the structure gives them no nonzero, so their finite differences are known, zero, without an evaluation. */
  zeroColumns: readonly Column[];
  /** EvaluationStats.sparsity_source: where the structure came from. */
  source: string;
  /** Apply calls the request has made so far (planning may evaluate f(x) to learn the output shapes). */
  calls(): number;
  /** The most apply calls the columns of `count` groups may take (f(x) and the noise probe included where the rule needs them). */
  cost(count: number): number;
  /** The columns of `chosen` (some of `groups`), by the request's rule, each group's at one evaluation (pair). */
  columns(chosen: readonly Column[][]): AsyncGenerator<CheckedColumn>;
}

/** What columnGroups takes: the request's inputs, options and signal, concrete input and output paths. */
export type ColumnsRequest = Omit<JvpRequest, "tangent" | "withRounding">;

/** A Tesseract as the check sees it: definition, schema, option precedence, apply and FD JVPs. */
export interface GradientSource {
  readonly definition: AnalyticDefinition;
  readonly schema: TesseractSchema;
  /** Options after precedence: request > Tesseract defaults > engine defaults. */
  options(inputs: Record<string, unknown>, request?: RequestOptions | null): ResolvedOptions;
  /** apply at the request's inputs (or its outputs from the evaluation cache), with the apply calls made: 0 or 1. */
  baseOutputs(inputs: Record<string, unknown>, signal?: AbortSignal): Promise<{ outputs: unknown; applyCalls: number }>;
  /** An FD JVP: results keyed by output path, and the apply calls it made. */
  jvp(req: JvpRequest): Promise<{
    result: Record<string, NdArray<Float64Array>>;
    errors?: Record<string, NdArray<Float64Array>>;
    stray?: Record<string, Float64Array>;
    rounding?: Record<string, Float64Array>;
    stats: { apply_calls: number };
  }>;
  /** The Jacobian's column groups under its structure, where the Tesseract declares one (TesseractRuntime.columnGroups). */
  columnGroups?(req: ColumnsRequest): Promise<ColumnGroups>;
}

/** An FD column as the check compares it: values per output path, and how far each may be off by the engine's own account. */
export interface FdColumn {
  leaf: number;
  index: number;
  values: Record<string, Float64Array>;
  uncertain: Record<string, Float64Array>;
}

/**
 * The outputs' rounding counts at this many times the half ulp of storing them: a function computed
 * in FP32 is off by about an ulp of its values (exp's correct derivative failed at 8.6e-4 relative,
 * all of it FP32 rounding over a step of 1e-4). More lets wrong gradients pass: with outputs near
 * 100 and a derivative near 3, 4 times passed one 8 % off that the differences resolved to 0.09 %.
 */
const ROUNDING_MARGIN = 2;

/** Per output path, what each FD value may be off by: its error estimate, or ROUNDING_MARGIN times the rounding it carries (zeros when told neither). */
function uncertainty(values: Record<string, Float64Array>, errors?: Record<string, Float64Array>, rounding?: Record<string, Float64Array>): Record<string, Float64Array> {
  return Object.fromEntries(
    Object.entries(values).map(([path, v]) => {
      const [error, r] = [errors?.[path], rounding?.[path]];
      return [path, Float64Array.from(v, (_, i) => (error ? error[i] : 0) + (r ? ROUNDING_MARGIN * r[i] : 0))];
    }),
  );
}

/** How long the check runs between turns given to I/O. */
const YIELD_EVERY_MS = 1;

/** The request's FD options for one input path: the per-path maps cut down to its own entry. */
function optionsFor(options: RequestOptions | null | undefined, leaf: Leaf): RequestOptions | null | undefined {
  if (!options) return options;
  const pick = (map: Record<string, number> | null | undefined) => (map && leaf.path in map ? { [leaf.path]: map[leaf.path] } : {});
  return { ...options, eps_by_path: pick(options.eps_by_path), typical_magnitude: pick(options.typical_magnitude) };
}

/**
 * A request's evaluations, counted. `perRow`, what one FD column or JVP costs, starts at the
 * engine's own count and is raised should an FD JVP cost more.
 */
export class Evaluations {
  used = 0;
  private lastYield = performance.now();

  constructor(
    private readonly source: GradientSource,
    private readonly req: { inputs: Record<string, unknown>; options?: RequestOptions | null; signal?: AbortSignal },
    public perRow: number,
    readonly maxEvals: number,
  ) {}

  /** Whether one more FD column or JVP fits in max_evals. */
  fits(calls = this.perRow): boolean {
    return this.used + calls <= this.maxEvals;
  }

  /** How many of `wanted` FD columns the budget left allows, as planned. */
  rowsLeft(wanted: number): number {
    return Math.min(wanted, Math.floor((this.maxEvals - this.used) / this.perRow));
  }

  /** The outputs at the unperturbed inputs: one apply, or none when the evaluation cache has them. */
  async apply(): Promise<unknown> {
    this.aborted();
    const { outputs, applyCalls } = await this.source.baseOutputs(this.req.inputs, this.req.signal);
    this.used += applyCalls;
    return outputs;
  }

  /**
   * One FD JVP of `outputPaths` along `tangent` on one leaf: results keyed by output path, how far
   * the direction taken strayed from the tangent, per element (zeros when not told), and how far
   * each value may be off by the engine's own account, per output path (its error estimate, or
   * ROUNDING_MARGIN times the outputs' rounding it carries; zeros when not told).
   */
  async jvp(leaf: Leaf, tangent: Float64Array, outputPaths: readonly string[], algorithm?: Algorithm): Promise<{ result: Record<string, NdArray<Float64Array>>; stray: Float64Array; uncertain: Record<string, Float64Array> }> {
    // Each JVP is a request of its own, too short to give I/O a turn: the check gives one between
    // them (hundreds of cheap JVPs held health checks for a second).
    await this.turn();
    this.aborted();
    const { inputs, signal } = this.req;
    const { result, errors, stray, rounding, stats } = await this.source.jvp({
      inputs,
      inputPaths: [leaf.path],
      outputPaths,
      options: algorithm === undefined ? optionsFor(this.req.options, leaf) : { ...optionsFor(this.req.options, leaf), algorithm },
      tangent: { [leaf.path]: ndarray(tangent, leaf.shape) },
      signal,
      withRounding: true,
    });
    const calls = Number(stats.apply_calls);
    this.used += calls;
    // A confirmation (another algorithm) is not what the next rows cost.
    if (algorithm === undefined) this.perRow = Math.max(this.perRow, calls);
    const values = Object.fromEntries(Object.entries(result).map(([path, v]) => [path, v.data]));
    const uncertain = uncertainty(values, errors && Object.fromEntries(Object.entries(errors).map(([path, e]) => [path, e.data])), rounding);
    return { result, stray: stray?.[leaf.path] ?? new Float64Array(leaf.size), uncertain };
  }

  /**
   * The Jacobian's column groups for these leaves and outputs, planning's apply calls counted;
   * undefined where the source has none to group by, or the budget has no room for planning (it may
   * evaluate f(x)) and one group.
   */
  async columnGroups(leaves: readonly Leaf[], outputPaths: readonly string[]): Promise<ColumnGroups | undefined> {
    if (!this.source.columnGroups || !this.fits(1 + this.perRow)) return undefined;
    this.aborted();
    const { inputs, options, signal } = this.req;
    const grouped = await this.source.columnGroups({ inputs, inputPaths: leaves.map((l) => l.path), outputPaths, options, signal });
    this.used += grouped.calls();
    return grouped.groups ? grouped : undefined;
  }

  /** How many groups' columns the budget left allows (ColumnGroups.cost), at most `wanted`. */
  groupsLeft(grouped: ColumnGroups, wanted: number): number {
    let count = 0;
    while (count < wanted && this.used + grouped.cost(count + 1) <= this.maxEvals) count++;
    return count;
  }

  /** The columns of `chosen` groups, their apply calls counted as they are made. */
  async *groupedColumns(grouped: ColumnGroups, chosen: readonly Column[][]): AsyncGenerator<FdColumn> {
    this.aborted();
    const [used, before] = [this.used, grouped.calls()];
    for await (const column of grouped.columns(chosen)) {
      this.used = used + grouped.calls() - before;
      await this.turn(); // comparing a group's many columns runs long, as the JVPs do
      yield { leaf: column.leaf, index: column.index, values: column.values, uncertain: uncertainty(column.values, column.errors, column.rounding) };
    }
    this.used = used + grouped.calls() - before;
  }

  /** A turn for I/O, every YIELD_EVERY_MS. */
  private async turn(): Promise<void> {
    if (performance.now() - this.lastYield > YIELD_EVERY_MS) {
      await new Promise<void>(setImmediate);
      this.lastYield = performance.now();
    }
  }

  private aborted(): void {
    const signal = this.req.signal;
    if (signal?.aborted) throw signal.reason ?? new TesseractError(Code.CANCELLED, "the call was cancelled");
  }
}
