/**
 * Whether apply wrote to its inputs. Perturb-and-restore evaluates every point on one input tree and
 * puts back only the elements it changed, so an apply that writes elsewhere in its inputs moves every
 * later evaluation's point, and the quotients answer for other inputs than the caller's
 * (tesseract-core copies the inputs for each evaluation). A snapshot of every tensor's storage,
 * compared when the work is done (and by a worker after each batch): the answer is then refused,
 * naming the element, rather than wrong.
 */
import { TesseractError, Code } from "../../common/errors";
import { isNdArray, type TypedArray } from "../../common/tensor-codec";

interface Guarded {
  path: string;
  data: TypedArray;
  /** A copy of `data` as the request came. */
  before: TypedArray;
}

const bytesOf = (data: TypedArray) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

export class InputGuard {
  private readonly leaves: Guarded[] = [];

  constructor(inputs: unknown) {
    this.collect(inputs, "");
  }

  private collect(value: unknown, path: string): void {
    if (typeof value !== "object" || value === null) return;
    if (isNdArray(value)) {
      const data = value.data as TypedArray;
      if (ArrayBuffer.isView(data)) this.leaves.push({ path, data, before: data.slice() });
      return;
    }
    if (Array.isArray(value)) value.forEach((v, i) => this.collect(v, `${path}.[${i}]`));
    else for (const [key, v] of Object.entries(value)) this.collect(v, path ? `${path}.${key}` : key);
  }

  /** INTERNAL naming the first element apply changed, if any. */
  check(): void {
    for (const { path, data, before } of this.leaves) {
      // Bytes, not values: NaN equals itself, and -0 differs from 0.
      const [now, then] = [bytesOf(data), bytesOf(before)];
      if (now.equals(then)) continue;
      let byte = 0;
      while (now[byte] === then[byte]) byte++;
      const element = Math.floor(byte / data.BYTES_PER_ELEMENT);
      throw new TesseractError(
        Code.INTERNAL,
        `apply wrote to its inputs: ${path} element ${element} went from ${before[element]} to ${data[element]} during the request, so later evaluations were not at the caller's inputs; an apply must not change its inputs (copy what it modifies)`,
      );
    }
  }
}
