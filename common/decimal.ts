/**
 * Numbers written as decimal text — JSON's numbers and their like ("1e-5", "-.5", "3.") — read
 * strictly: Number() also takes "0x10", "0b1", " 1e-3 ", "Infinity" and "", which no one means as
 * a step or a seed. Shared by the CLI's flags and the REST API's query parameters.
 */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The number `text` writes in decimal, or undefined when it is not written so. */
export function decimalNumber(text: string): number | undefined {
  return DECIMAL.test(text) ? Number(text) : undefined;
}
