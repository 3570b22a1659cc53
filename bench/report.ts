/** Benchmarks print a table and keep the numbers, with the machine they ran on, as JSON. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export function report(name: string, results: Record<string, unknown>[]): void {
  console.table(results);
  const dir = path.join(__dirname, "../../bench/results");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  const machine = { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, date: new Date().toISOString() };
  fs.writeFileSync(file, JSON.stringify({ machine, results }, null, 2));
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
