/**
 * The fake tesseract-core runtime serving Mesh Stats (no delay) in a process of its own, as a real runtime is:
 * prints its URL on stdout, serves until stdin closes (its parent went away). For bench/bridge.ts.
 */
import { startFakeTesseractCore } from "../test/fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "../test/fixtures/tesseract-core/mesh-stats";

startFakeTesseractCore(meshStats(0)).then((fake) => {
  process.stdout.write(`${fake.url}\n`);
  process.stdin.resume().on("end", () => void fake.close().then(() => process.exit(0)));
});
