/**
 * The address a `tesseract-grpc serve` child process listens on, from its "listening on HOST:PORT"
 * line. A child that exits first (a flag it refuses, say) fails with the end of what it wrote to
 * stderr, where a bench waiting for the line hung. Spawn the child with stdout piped; stderr piped
 * too to see why (it is drained for as long as the child runs), or ignored. The child ends with
 * the bench, however the bench ends (servers started before one that failed were left running).
 */
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const KEPT_STDERR_CHARS = 2000;

const children = new Set<ChildProcess>();
process.once("exit", () => children.forEach((child) => child.kill("SIGKILL")));

export function listeningAddress(child: ChildProcess): Promise<string> {
  children.add(child);
  child.once("exit", () => children.delete(child));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-KEPT_STDERR_CHARS)));
  return new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const exited = (code: number | null, signal: NodeJS.Signals | null) => reject(new Error(`the server exited (${signal ?? code}) before listening: ${stderr.trim() || "(nothing on stderr)"}`));
    child.once("exit", exited);
    lines.on("line", (line) => {
      const address = /listening on (\S+)/.exec(line)?.[1];
      if (!address) return;
      child.off("exit", exited);
      lines.close();
      child.stdout!.resume(); // closing readline paused it: a server writing more would block on a full pipe
      resolve(address);
    });
  });
}
