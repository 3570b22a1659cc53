/**
 * `jacobian --stream` on the command line: a progress bar on stderr, and the rows as NDJSON on stdout
 * (one line per message: the header, each row, the stats), written as they arrive and never
 * faster than stdout drains, so memory stays bounded by one message whatever the Jacobian's size.
 */
import { once } from "node:events";
import type { Writable } from "node:stream";
import ndarray from "ndarray";
import { Format as BarFormat, SingleBar, type GenericFormatter } from "cli-progress";
import { dataTypeName } from "../common/tensor-codec";
import type { EvaluationStats, JacobianHeader } from "../generated/tesseract/v1/tesseract";
import { arrayToJson, type Format } from "./json-form";
import { RowsProgress, StreamCheck, type JacobianRowsEvent } from "./rows";

/**
 * Passes the stream through, drawing rows done, evaluations/s and ETA on stderr: on a terminal, or
 * anywhere with `force` (a line every few seconds, and the last one).
 */
export async function* withProgress(events: AsyncIterable<JacobianRowsEvent>, force = false): AsyncGenerator<JacobianRowsEvent> {
  if (!process.stderr.isTTY && !force) return yield* events;
  // Before the first row there is no rate to tell an ETA from (it read "ETA 0s").
  const line = (params: { value: number }) => `rows {value}/{total} | {rate} evals/s | ETA ${params.value === 0 ? "…" : "{eta_formatted}"}`;
  const format: GenericFormatter = (options, params, payload) => BarFormat.Formatter({ ...options, format: line(params) }, params, payload);
  const bar = new SingleBar({ stream: process.stderr, format, etaBuffer: 50, noTTYOutput: force });
  let perRow = 0;
  const progress = new RowsProgress();
  const started = performance.now();
  try {
    for await (const event of events) {
      const rows = progress.rows;
      progress.count(event);
      if (event.header) {
        perRow = Number(event.header.planned_evaluations) / Math.max(1, Number(event.header.total_rows));
        bar.start(Number(event.header.total_rows), 0, { rate: 0 });
      } else if (progress.rows > rows) {
        bar.increment(1, { rate: Math.round((progress.rows * perRow) / ((performance.now() - started) / 1000)) });
      }
      yield event;
    }
  } finally {
    bar.stop();
  }
}

/** The header with datatypes by name. */
function headerJson(header: JacobianHeader): unknown {
  const shapes = (list: JacobianHeader["inputs"]) => list.map((p) => ({ path: p.path, shape: p.shape, datatype: dataTypeName(p.datatype) }));
  return { ...header, inputs: shapes(header.inputs), outputs: shapes(header.outputs) };
}

/** One event as its NDJSON line; values as lists (`json`) or base64 array objects (`json+base64`). */
function eventJson(event: JacobianRowsEvent, format: Format): unknown {
  if (event.header) return { header: headerJson(event.header) };
  if (event.stats) return { stats: event.stats };
  const values = (v: Float64Array) => arrayToJson(ndarray(v, [v.length]), format);
  const { input_path, input_index, slices } = event.row!;
  return {
    row: {
      input_path,
      input_index,
      slices: slices.map((s) => ({ output_path: s.output_path, offset: s.offset, ...(s.indices?.length ? { indices: s.indices } : {}), values: values(s.values), ...(s.error_estimate ? { error_estimate: values(s.error_estimate) } : {}) })),
    },
  };
}

/**
 * Writes every event as a line of `out`, waiting for it to drain; resolves with the stats. Each event
 * is checked as the SDK's assemblers check it (rows.ts's StreamCheck) before its line is written: a
 * stream that breaks the contract (a value twice, a row missing or resumed, no stats) ends in
 * DATA_LOSS naming what, and a non-zero exit, after the lines before it (it was passed on whole, exit 0).
 */
export async function writeRowsNdjson(events: AsyncIterable<JacobianRowsEvent>, format: Format, out: Writable = process.stdout): Promise<EvaluationStats> {
  const check = new StreamCheck();
  for await (const event of events) {
    check.event(event, () => {});
    if (!out.write(`${JSON.stringify(eventJson(event, format))}\n`)) await once(out, "drain");
  }
  return check.end().stats;
}
