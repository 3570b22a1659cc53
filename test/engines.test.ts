/**
 * The package runs on Node 20 (package.json engines): every locked dependency must say it does too,
 * or `npm install` warns EBADENGINE (fastify's light-my-request wanted cookie 2, Node >= 22; the
 * package overrides it with cookie 1.1.1, Node >= 18, whose stringifySetCookie it uses).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.join(__dirname, "../..");
/** The Node 20 release line the package supports (its LTS). */
const NODE_20 = [20, 19, 0];

type Version = number[];

const parse = (v: string): Version => v.replace(/^v/, "").split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : 0)).concat(0, 0, 0).slice(0, 3);
const compare = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
/** How many leading parts a version names (`20.x` and `20` name one). */
const named = (v: string) => v.split(".").filter((p) => /^\d+$/.test(p)).length;

/** One comparator (`>=20`, `^18.18.0`, `14`, `6.*`) against `version`; throws on a form it does not know. */
function satisfies(comparator: string, version: Version): boolean {
  const [, op, v] = /^(>=|<=|>|<|\^|~|=)?\s*(\S+)$/.exec(comparator) ?? [];
  if (v === undefined) throw new Error(`engine comparator ${JSON.stringify(comparator)} not understood`);
  if (v === "*" || v === "x") return true;
  const base = parse(v);
  const c = compare(version, base);
  if (op === ">=") return c >= 0;
  if (op === ">") return c > 0;
  if (op === "<=") return c <= 0;
  if (op === "<") return c < 0;
  if (op === "^") return c >= 0 && version[0] === base[0];
  if (op === "~") return c >= 0 && version[0] === base[0] && version[1] === base[1];
  const parts = named(v); // bare or "=": a prefix match on the parts named
  return base.slice(0, parts).every((p, i) => p === version[i]) && (parts === 3 ? c === 0 : true);
}

/** An npm engines range (`a || b c`) against `version`. */
function admits(range: string, version: Version): boolean {
  return range.split("||").some((alternative) =>
    alternative
      .trim()
      .replace(/(>=|<=|>|<|=|\^|~)\s+/g, "$1")
      .split(/\s+/)
      .every((comparator) => satisfies(comparator, version)),
  );
}

describe("Node 20 engines", () => {
  it("reads npm ranges", () => {
    assert.ok(admits(">=20", NODE_20) && admits("^18.18.0 || ^20.9.0 || >=21.1.0", NODE_20) && admits(">=16 || 14 >=14.17", NODE_20) && admits("6.* || 8.* || >= 10.*", NODE_20));
    assert.ok(!admits(">=22", NODE_20) && !admits("^18 || ^22", NODE_20) && !admits("20.20.0", NODE_20));
  });

  it("every locked dependency admits Node 20, so npm install warns no EBADENGINE", () => {
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { engines?: { node?: string } | string[]; version?: string }> };
    const refusing = Object.entries(lock.packages)
      .filter(([name, p]) => name !== "" && !Array.isArray(p.engines) && p.engines?.node && !admits(p.engines.node, NODE_20))
      .map(([name, p]) => `${name}@${p.version} (node ${(p.engines as { node: string }).node})`);
    assert.deepEqual(refusing, []);
  });
});
