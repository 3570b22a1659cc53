/**
 * Worker results that their last reader gives back. A batch of evaluations or pairs comes back from
 * a worker in one transferred buffer, which the engine hands on as views: a row per central pair or
 * per forward evaluation. V8 frees such a buffer
 * only once every object that referenced it is collected, and the promises that carried it waited
 * a worker's round trip: old by the time they resolve, they keep the buffer after they are dead,
 * until the next full collection (in-process, one worker, 69 600 rows of 185 KB: 220 full
 * collections, 2.6–3 s of the main thread's 9–10). A reader done with a row releases it: the stream,
 * once the row's messages are written (they carry its values from this buffer: rows-stream.ts). Once
 * every item of a buffer is released, the buffer is detached, so its memory goes at once, whatever
 * still points at it. A row nobody releases is left to the collector.
 * A lease also says whether the worker checked every value finite, so the main thread need not.
 */

/** One leased buffer: its items (stride values each), and which have been released. */
class Lease {
  private readonly released: Uint8Array;
  private left: number;

  constructor(
    private readonly buffer: ArrayBuffer,
    readonly stride: number,
    items: number,
    /** Every value was checked finite where it was computed. */
    readonly checked: boolean,
  ) {
    this.released = new Uint8Array(items);
    this.left = items;
  }

  /** Item `item` is no longer read; the last one detaches the buffer. A second release of an item does nothing. */
  release(item: number): void {
    if (this.released[item]) return;
    this.released[item] = 1;
    if (--this.left === 0) structuredClone(this.buffer, { transfer: [this.buffer] });
  }
}

const leases = new WeakMap<ArrayBuffer, Lease>();

/**
 * Leases `values` (a batch's results, `stride` values per item, `checked`: all finite) if it is the
 * whole of its own buffer: rows made of one item each may then be released (leasedItem).
 */
export function leaseResults(values: Float64Array, stride: number, checked: boolean): void {
  const { buffer } = values;
  if (stride > 0 && values.length > 0 && values.length % stride === 0 && buffer instanceof ArrayBuffer && values.byteLength === buffer.byteLength) {
    leases.set(buffer, new Lease(buffer, stride, values.length / stride, checked));
  }
}

/**
 * For one row whose values (an array per output) are exactly one item of a leased buffer, the
 * outputs one after the other: its release, and whether its values were checked finite. Undefined
 * for any other row (its own memory, or a part of an item: releasing it would free what other
 * rows still read).
 */
export function leasedItem(values: readonly Float64Array[]): { release: () => void; checked: boolean } | undefined {
  const first = values[0];
  const lease = first && leases.get(first.buffer as ArrayBuffer);
  if (!lease) return undefined;
  const start = first.byteOffset / 8;
  if (start % lease.stride !== 0) return undefined;
  let at = first.byteOffset;
  for (const v of values) {
    if (v.buffer !== first.buffer || v.byteOffset !== at) return undefined;
    at += v.byteLength;
  }
  if ((at - first.byteOffset) / 8 !== lease.stride) return undefined;
  const item = start / lease.stride;
  return { release: () => lease.release(item), checked: lease.checked };
}
