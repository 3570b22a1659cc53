/** Counts in messages, with the noun that agrees with them. */

/** `n` and `one` or `many` as `n` takes: "1 row", "0 rows", "3 rows"; an irregular plural given ("1 entry", "2 entries"). */
export function plural(n: number | bigint, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 || n === 1n ? one : many}`;
}
