/**
 * Readers of container files for the static tests (no Docker engine runs in CI): Dockerfiles as
 * stages of instructions, .dockerignore rules, Compose services, with Docker's and Compose's rules.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";

// ---- Dockerfile ----

export interface Instruction {
  keyword: string; // upper case
  args: string; // continuations joined
}
export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = "";
  const logical: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*#/.test(raw)) continue; // comments (and parser directives), also inside continuations
    const continued = /\\\s*$/.test(raw);
    pending += (pending ? " " : "") + raw.replace(/\\\s*$/, "").trim();
    if (continued) continue;
    if (pending.trim()) logical.push(pending.trim());
    pending = "";
  }
  if (pending.trim()) logical.push(pending.trim());
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/s.exec(line)!;
    const instruction = { keyword: match[1].toUpperCase(), args: match[2].trim() };
    if (instruction.keyword === "FROM") {
      const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      const as = words.findIndex((w) => w.toUpperCase() === "AS");
      stages.push({ image: words[0], name: as >= 0 ? words[as + 1] : undefined, instructions: [] });
    } else {
      assert.ok(stages.length > 0, `Dockerfile: ${instruction.keyword} before the first FROM`);
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return stages;
}

/** Exec form (a JSON array) as is; shell form as `/bin/sh -c ...`. */
export function argv(args: string): string[] {
  if (args.startsWith("[")) return JSON.parse(args) as string[];
  return ["/bin/sh", "-c", args];
}

/** Leading `--name=value` options, and what follows them. */
export function options(args: string): { opts: Map<string, string>; rest: string } {
  const opts = new Map<string, string>();
  let rest = args;
  for (let m: RegExpExecArray | null; (m = /^--([a-z-]+)=(\S+)\s+/.exec(rest)); ) {
    opts.set(m[1], m[2]);
    rest = rest.slice(m[0].length);
  }
  return { opts, rest };
}

/** `K=V K2="V 2"` (or the legacy `K V`) to a map. */
export function envVars(args: string): Map<string, string> {
  const vars = new Map<string, string>();
  if (!/^[^\s=]+=/.test(args)) {
    const [key, ...value] = args.split(/\s+/);
    vars.set(key, value.join(" "));
    return vars;
  }
  for (const m of args.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    vars.set(m[1], m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2]);
  }
  return vars;
}

export function last(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).pop();
}

/** A Go duration ("10s", "1m30s", "500ms") in seconds; Docker and Compose both use them. */
export function seconds(duration: string): number {
  const units: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  assert.match(duration, /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/, `not a duration: ${duration}`);
  let total = 0;
  for (const m of duration.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * units[m[2]];
  return total;
}

/** Health-check timings that neither flap nor take minutes to notice a dead server. */
export function assertSaneTimings(where: string, t: { interval?: string; timeout?: string; retries?: number; startPeriod?: string }): void {
  assert.ok(t.interval !== undefined, `${where}: interval is not set`);
  assert.ok(t.timeout !== undefined, `${where}: timeout is not set`);
  assert.ok(t.retries !== undefined, `${where}: retries is not set`);
  const interval = seconds(t.interval);
  const timeout = seconds(t.timeout);
  assert.ok(interval >= 1 && interval <= 300, `${where}: interval ${t.interval} outside 1s..5m`);
  assert.ok(timeout > 0 && timeout <= interval, `${where}: timeout ${t.timeout} not in (0, interval]`);
  assert.ok(Number.isInteger(t.retries) && t.retries >= 1 && t.retries <= 10, `${where}: retries ${t.retries} not in 1..10`);
  if (t.startPeriod !== undefined) assert.ok(seconds(t.startPeriod) >= 0, `${where}: bad start period`);
}

/** A .dockerignore matcher: Docker's rules (root-anchored globs, `**`, `!` exceptions, last match wins). */
export function dockerignore(text: string): (rel: string) => boolean {
  const toRegExp = (glob: string): RegExp => {
    let re = "";
    for (let i = 0; i < glob.length; i++) {
      const c = glob[i];
      if (c === "*" && glob[i + 1] === "*") {
        i++;
        if (glob[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else re += ".*";
      } else if (c === "*") re += "[^/]*";
      else if (c === "?") re += "[^/]";
      else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp(`^${re}$`);
  };
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const glob = path.posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, "");
      return { negate, re: toRegExp(glob) };
    });
  return (rel) => {
    const parts = path.posix.normalize(rel).split("/");
    let excluded = false;
    for (const rule of rules) {
      // A pattern excludes a path when it matches the path or one of its parent folders.
      for (let i = 1; i <= parts.length; i++) {
        if (rule.re.test(parts.slice(0, i).join("/"))) {
          excluded = !rule.negate;
          break;
        }
      }
    }
    return excluded;
  };
}

// ---- docker-compose.yml ----

export interface ComposeService {
  build?: string | { context?: string; dockerfile?: string };
  image?: string;
  profiles?: string[];
  container_name?: string;
  deploy?: { replicas?: number };
  depends_on?: string[] | Record<string, { condition?: string }>;
  command?: string | string[];
  ports?: (string | number | { target?: number | string; published?: number | string })[];
  restart?: string;
  healthcheck?: {
    test?: string | string[];
    interval?: string;
    timeout?: string;
    retries?: number;
    start_period?: string;
    disable?: boolean;
  };
}

/** A healthcheck `test` as the argv it runs (`CMD` form; `CMD-SHELL` and strings split on blanks). */
export function healthArgv(test: string | string[] | undefined): string[] {
  assert.ok(test !== undefined, "healthcheck has no test");
  if (typeof test === "string") return test.trim().split(/\s+/);
  const [kind, ...rest] = test;
  if (kind === "CMD") return rest;
  assert.equal(kind, "CMD-SHELL", `healthcheck test kind ${kind}`);
  return rest.join(" ").trim().split(/\s+/);
}

/** `"[ip:]host:container[/proto]"` or `{ target, published }` to [host, container] ports. */
export function portPair(entry: string | number | { target?: number | string; published?: number | string }): [string, string] {
  if (typeof entry === "object") return [String(entry.published ?? ""), String(entry.target ?? "")];
  const parts = String(entry).replace(/\/(tcp|udp)$/, "").split(":");
  const container = parts[parts.length - 1];
  return [parts.length >= 2 ? parts[parts.length - 2] : "", container];
}

/** A service's command as argv (a string splits on blanks, as Compose does for simple commands). */
export function commandArgv(command: string | string[] | undefined): string[] {
  if (command === undefined) return [];
  return typeof command === "string" ? command.trim().split(/\s+/) : command;
}

/** The value of `--flag value` or `--flag=value` in an argv, or undefined. */
export function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i].startsWith(`${flag}=`)) return args[i].slice(flag.length + 1);
  }
  return undefined;
}
