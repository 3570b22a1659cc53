/** Strict UTF-8: text that does not decode is refused, never read with replacement characters. */

/** The bytes as text; undefined where they are not UTF-8. */
export function strictUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Where bytes known not to be UTF-8 fail: `decoding fails at byte 154 (0xff)`. */
export function utf8Failure(bytes: Uint8Array): string {
  const at = firstInvalidUtf8(bytes);
  return `decoding fails at byte ${at} (0x${bytes[at].toString(16).padStart(2, "0")})`;
}

/** The offset of the byte where UTF-8 decoding first fails (the bytes are known to fail). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  // A streaming decode throws once an invalid sequence lies wholly within the prefix: monotonic in its length.
  const throwsWithin = (length: number) => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, length), { stream: true });
      return false;
    } catch {
      return true;
    }
  };
  let [lo, hi] = [0, bytes.length];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (throwsWithin(mid + 1)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
