/**
 * The package runs on Node 20 (package.json engines): every locked dependency must say it does too,
 * or `npm install` warns EBADENGINE (fastify's light-my-request 6.8 wants cookie 2, Node >= 22: the
 * package depends on light-my-request 6.6.0, cookie 1, itself, which fastify's ^6.0.0 shares), and
 * without `overrides`, which npm applies in the root project only: an app installing the tarball
 * resolved cookie 2 and warned.
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

  it("pins versions by dependencies, not overrides (an app installing the package would not get them)", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { overrides?: unknown; dependencies: Record<string, string> };
    assert.equal(pkg.overrides, undefined);
    assert.equal(pkg.dependencies["light-my-request"], "6.6.0");
  });

  it("every locked dependency admits Node 20, so npm install warns no EBADENGINE", () => {
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { engines?: { node?: string } | string[]; version?: string }> };
    const refusing = Object.entries(lock.packages)
      .filter(([name, p]) => name !== "" && !Array.isArray(p.engines) && p.engines?.node && !admits(p.engines.node, NODE_20))
      .map(([name, p]) => `${name}@${p.version} (node ${(p.engines as { node: string }).node})`);
    assert.deepEqual(refusing, []);
  });
});
