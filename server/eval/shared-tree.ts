/**
 * Input trees that cross into worker threads without copying their arrays: every ndarray leaf is
 * copied once per job into a SharedArrayBuffer, and posting the tree to a worker then clones only
 * its small skeleton. Workers read the shared arrays and never write them.
 */
import ndarray from "ndarray";
import { arrayClass, elementCount, encodeTensor, isNdArray, type TypedArray } from "../../common/tensor-codec";

const SHARED = "__sharedTensor";
/** A decoded map (an object without a prototype, so that any key is data): structured clone gives it one, and its tensors were left unshared. */
const MAP = "__sharedMap";

interface SharedLeaf {
  [SHARED]: true;
  datatype: number;
  shape: number[];
  data: Uint8Array;
}

function mapTree(tree: unknown, leaf: (value: unknown) => unknown): unknown {
  const mapped = leaf(tree);
  if (mapped !== tree) return mapped;
  if (Array.isArray(tree)) return tree.map((v) => mapTree(v, leaf));
  if (tree !== null && typeof tree === "object") {
    const prototype = Object.getPrototypeOf(tree);
    const entries = () => Object.entries(tree).map(([k, v]): [string, unknown] => [k, mapTree(v, leaf)]);
    if (prototype === Object.prototype) return Object.fromEntries(entries());
    // A map crosses as its entries, marked, and comes back without a prototype.
    if (prototype === null) return { [MAP]: entries() };
  }
  return tree;
}

/** A copy of `tree` whose ndarrays live in shared memory (row-major bytes plus shape and datatype). */
export function shareTree(tree: unknown): unknown {
  return mapTree(tree, (value) => {
    if (!isNdArray(value)) return value;
    const wire = encodeTensor(value);
    const data = new Uint8Array(new SharedArrayBuffer(wire.data.byteLength));
    data.set(wire.data);
    return { [SHARED]: true, datatype: wire.datatype, shape: wire.shape, data } satisfies SharedLeaf;
  });
}

/** The tree again, with ndarrays viewing the shared memory (no copy) and maps without a prototype. */
export function reviveTree(tree: unknown): unknown {
  return mapTree(tree, (value) => {
    if (value !== null && typeof value === "object" && MAP in value) {
      return Object.assign(Object.create(null), Object.fromEntries((value[MAP] as [string, unknown][]).map(([k, v]) => [k, reviveTree(v)])));
    }
    if (value === null || typeof value !== "object" || !(SHARED in value)) return value;
    const leaf = value as SharedLeaf;
    const count = elementCount(leaf.shape);
    const Array = arrayClass(leaf.datatype) as unknown as new (buffer: ArrayBufferLike, offset: number, length: number) => TypedArray;
    return ndarray(new Array(leaf.data.buffer, leaf.data.byteOffset, count), leaf.shape);
  });
}
