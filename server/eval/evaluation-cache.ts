/**
 * Reuse of f(x): outputs of apply at unperturbed inputs, kept for later requests on the same inputs
 * (an Apply then a forward Jacobian, one-sided stencils, CheckGradients), least recently used first
 * out, bounded in bytes and in entries. Keys are the inputs' content (input-key.ts), so a reused
 * value is one apply gave for exactly those inputs. Two kinds of entry per key:
 * - an Apply's whole outputs, as the encoded message (bytes: never changed once made);
 * - a gradient request's f(x): the requested outputs, by the request's output paths, as FP64 copies.
 * Only deterministic Tesseracts are cached (the authoring API's `deterministic`), and the server can
 * turn it off (`--eval-cache-mb 0`).
 *
 * A bridged Tesseract's runtime can be replaced under the server (a restart, a redeploy with new code
 * at the same address), and its outputs with it. No answer of tesseract-core names the runtime that
 * gave it, so the bridge keeps a connection open to each runtime (runtime-replicas.ts, Replica.
 * witnessed) and takes it closing or opening as a possible replacement: the cache is cleared then,
 * outputs of evaluations begun before a clear are not stored (`generation`), and none are stored
 * while some runtime has no such connection open (`witnessed`: nothing then tells the runtime that
 * answered from one that may answer next). What this cannot see, and is left to the operator
 * (`--eval-cache-mb 0`): a runtime replaced behind a proxy or load balancer that keeps the
 * bridge's connection open.
 */
import { LRUCache } from "lru-cache";
import type { AnyMessage } from "../schema/schema";
import type { OutputInfo } from "./evaluator";

/** Default bound on what the cache holds (values and encoded outputs). */
export const DEFAULT_CACHE_BYTES = 64 << 20;
/** Default bound on entries, whatever their size. */
export const DEFAULT_CACHE_ENTRIES = 1024;
/** What an entry costs beyond its values (keys, objects). */
const ENTRY_OVERHEAD_BYTES = 256;

/** A gradient request's f(x): its outputs (paths, shapes) and their values. */
export interface SelectedOutputs {
  outputs: OutputInfo[];
  values: Float64Array[];
}

type Entry = { apply: AnyMessage } | { selected: SelectedOutputs };

const copyOf = (s: SelectedOutputs): SelectedOutputs => ({ outputs: s.outputs.map((o) => ({ ...o, shape: [...o.shape] })), values: s.values.map((v) => v.slice()) });

export class EvaluationCache {
  private readonly lru: LRUCache<string, Entry>;
  /** Lookups answered, and not, since the cache was made (for tests, metrics and the bench). */
  hits = 0;
  misses = 0;

  /** Counts clears: what an evaluation begun before the last one computed is not stored (setApply, setSelected). */
  private generation = 0;

  constructor(
    maxBytes = DEFAULT_CACHE_BYTES,
    maxEntries = DEFAULT_CACHE_ENTRIES,
    /** Whether outputs computed now are known to be those the Tesseract gives from now on (a bridged runtime's: RemoteApply.witnessed); stored only then. */
    private readonly witnessed: () => boolean = () => true,
  ) {
    this.lru = new LRUCache<string, Entry>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (entry) => ENTRY_OVERHEAD_BYTES + ("apply" in entry ? entry.apply.value.byteLength : entry.selected.values.reduce((n, v) => n + v.byteLength, 0)),
    });
  }

  /** An Apply's outputs message for these inputs. */
  getApply(key: string): AnyMessage | undefined {
    return this.count(this.lru.get(`apply ${key}`) as { apply: AnyMessage } | undefined)?.apply;
  }

  /** The generation an evaluation begins in: passed to setApply or setSelected with its outputs. */
  get now(): number {
    return this.generation;
  }

  /** Keeps `outputs` unless the cache was cleared since `since` (the evaluation's start: `now`), or they cannot be vouched for. */
  setApply(key: string, outputs: AnyMessage, since = this.generation): void {
    if (this.storable(since)) this.lru.set(`apply ${key}`, { apply: outputs });
  }

  /**
   * f(x) for these inputs and output paths, a copy for the caller to keep: a request's own, or
   * picked out of an Apply's outputs by `fromApply` (and kept as such for the next request).
   */
  getSelected(key: string, outputPaths: readonly string[], fromApply: (outputs: AnyMessage) => SelectedOutputs): SelectedOutputs | undefined {
    const entry = this.lru.get(selectedKey(key, outputPaths)) as { selected: SelectedOutputs } | undefined;
    if (entry) return this.count(copyOf(entry.selected));
    const applied = this.lru.get(`apply ${key}`) as { apply: AnyMessage } | undefined;
    if (!applied) return this.count(undefined);
    const selected = fromApply(applied.apply);
    this.setSelected(key, outputPaths, selected);
    return this.count(selected);
  }

  /** Keeps a copy of `selected` (the caller's arrays may be written over later). */
  setSelected(key: string, outputPaths: readonly string[], selected: SelectedOutputs, since = this.generation): void {
    if (this.storable(since)) this.lru.set(selectedKey(key, outputPaths), { selected: copyOf(selected) });
  }

  private storable(since: number): boolean {
    return since === this.generation && this.witnessed();
  }

  /** Entries held now. */
  get size(): number {
    return this.lru.size;
  }

  clear(): void {
    this.generation++;
    this.lru.clear();
  }

  private count<T>(entry: T | undefined): T | undefined {
    if (entry) this.hits++;
    else this.misses++;
    return entry;
  }
}

const selectedKey = (key: string, outputPaths: readonly string[]) => `selected ${key} ${JSON.stringify(outputPaths)}`;
