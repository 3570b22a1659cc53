/**
 * How deep a decoded message or JSON value may nest: protobuf's default recursion limit, kept by every
 * reader here — the gRPC decoder, the REST API's bodies, a tesseract-core runtime's answers and the
 * CLI's payloads — so that nothing recursing over a value (conversions, validation) can overflow the
 * stack on a value someone else nested 100 000 deep.
 */
export const MAX_DEPTH = 100;

/** Whether a parsed JSON value has arrays or objects nested more than `limit` deep (found without recursion). */
export function nestedDeeper(value: unknown, limit = MAX_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== "object" || item === null) continue;
    if (depth > limit) return true;
    // Only containers are pushed: a long array of numbers costs a loop, not a stack entry each.
    for (const child of Array.isArray(item) ? item : Object.values(item)) if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}
