/**
 * Prometheus metrics on their own HTTP port: calls by RPC and status code, durations, evaluations
 * (exactly the apply calls made), gradient jobs, and Node's process metrics.
 */
import { strict as assert } from "node:assert";
import { request } from "node:http";
import { once } from "node:events";
import * as net from "node:net";
import { TesseractClient } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { Algorithm } from "../index";
import { meshInputs } from "./helpers";

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, type: String(res.headers["content-type"]), body }));
    })
      .on("error", reject)
      .end();
  });
}

/** The value of one sample line, e.g. `name{a="b"} 3`; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("Prometheus metrics", () => {
  let server: RunningServer;
  let client: TesseractClient<MeshInputs, MeshOutputs>;
  before(async () => {
    server = await startServer({ tesseract: "meshstats", port: 0, workers: 0, metricsPort: 0, logger: silentLogger });
    client = new TesseractClient<MeshInputs, MeshOutputs>(server.address, { inputs: MeshInputs, outputs: MeshOutputs });
  });
  after(async () => {
    client.close();
    await server.close(0);
  });

  it("counts calls by RPC and code, evaluations exactly, and serves process metrics", async () => {
    assert.ok(server.metricsPort && server.metricsPort > 0);
    const N = 5;
    await client.apply(meshInputs(N));
    const { stats } = await client.jacobian({ inputs: meshInputs(N), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], options: { algorithm: Algorithm.ALGORITHM_CENTRAL } });
    assert.equal(stats.apply_calls, 2 * N, "meshstats' declared structure: N column groups");
    await assert.rejects(client.apply({ ...meshInputs(N), mesh: { ...meshInputs(N).mesh, n_points: 4 } }));

    const { status, type, body } = await get(server.metricsPort!, "/metrics");
    assert.equal(status, 200);
    assert.match(type, /^text\/plain/);
    // Describe (made once by the SDK for the type URLs) counts too.
    assert.equal(sample(body, 'tesseract_grpc_calls_total{rpc="Apply",code="OK"}'), 1);
    assert.equal(sample(body, 'tesseract_grpc_calls_total{rpc="Apply",code="INVALID_ARGUMENT"}'), 1);
    assert.equal(sample(body, 'tesseract_grpc_calls_total{rpc="Jacobian",code="OK"}'), 1);
    assert.equal(sample(body, 'tesseract_grpc_call_duration_seconds_count{rpc="Apply"}'), 2);
    assert.equal(sample(body, 'tesseract_grpc_call_duration_seconds_bucket{le="+Inf",rpc="Jacobian"}'), 1);
    // The refused Apply never reached apply: 1 + 10 evaluations.
    assert.equal(sample(body, "tesseract_grpc_evaluations_total"), 1 + 2 * N);
    assert.equal(sample(body, "tesseract_grpc_jobs_running"), 0);
    assert.equal(sample(body, "tesseract_grpc_jobs_waiting"), 0);
    assert.ok((sample(body, "process_resident_memory_bytes") ?? 0) > 0, "process metrics are there");

    // A second scrape adds only what happened since: an Apply of other inputs evaluates, one of the
    // same inputs again is answered from the evaluation cache.
    await client.apply(meshInputs(N + 1));
    await client.apply(meshInputs(N));
    const again = (await get(server.metricsPort!, "/metrics")).body;
    assert.equal(sample(again, "tesseract_grpc_evaluations_total"), 2 + 2 * N);
  });

  it("a connection left with an unfinished request does not hold the server's close (Node stops timing it once closing begins: the shutdown waited for good)", async () => {
    const other = await startServer({ tesseract: "vectoradd", port: 0, workers: 0, metricsPort: 0, warmUpMs: 0, logger: silentLogger });
    const socket = net.connect(other.metricsPort!, "127.0.0.1");
    socket.on("error", () => {});
    await once(socket, "connect");
    socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n");
    const closed = new Promise((resolve) => socket.on("close", resolve));
    await other.close(0);
    await closed;
  });

  it("answers 404 elsewhere", async () => {
    const { status, body } = await get(server.metricsPort!, "/");
    assert.equal(status, 404);
    assert.match(body, /metrics are at GET \/metrics/);
  });
});
