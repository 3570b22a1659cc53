/**
 * The ceiling for parallel speed-up: bare worker threads doing fixed CPU work (heat's apply, called
 * in a loop), no engine, no messages per evaluation. Run as a worker thread by bench/parallel.ts.
 */
import { parentPort, workerData } from "node:worker_threads";
import { loadTesseract } from "../index";
import { sampleHeatInputs } from "../server/tesseracts/samples";

const { n, steps, iterations } = workerData as { n: number; steps: number; iterations: number };
const runtime = loadTesseract("heat");
const inputs = sampleHeatInputs(n, steps);
parentPort!.once("message", () => {
  for (let i = 0; i < iterations; i++) runtime.definition.apply(inputs);
  parentPort!.postMessage("done");
});
parentPort!.postMessage("ready");
