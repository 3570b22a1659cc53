/**
 * Prometheus metrics (prom-client) on an optional HTTP port: calls by RPC and status code, call
 * durations, apply evaluations, gradient jobs running and waiting, and Node's process metrics (RSS,
 * heap, event-loop lag). Each server has its own registry, so several servers in one process do not
 * mix their numbers.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { TesseractRuntime } from "../runtime";
import type { CallRegistry } from "./calls";

/** gRPC code numbers to the names Prometheus users filter on. */
const CODE_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly calls: Counter<"rpc" | "code">;
  private readonly durations: Histogram<"rpc">;

  constructor(runtime: TesseractRuntime, calls: CallRegistry) {
    const registers = [this.registry];
    this.calls = new Counter({ name: "tesseract_grpc_calls_total", help: "Calls answered, by RPC and gRPC status code.", labelNames: ["rpc", "code"], registers });
    this.durations = new Histogram({
      name: "tesseract_grpc_call_duration_seconds",
      help: "Time from a call's arrival to its answer, by RPC.",
      labelNames: ["rpc"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300],
      registers,
    });
    let counted = 0;
    new Counter({
      name: "tesseract_grpc_evaluations_total",
      help: "Apply evaluations, by the Apply RPC and by the finite-difference engine.",
      registers,
      collect() {
        // The runtime counts (cheaply, per evaluation); the counter catches up at each scrape.
        this.inc(runtime.evaluations - counted);
        counted = runtime.evaluations;
      },
    });
    const { requestsSent } = runtime;
    if (requestsSent) {
      let sent = 0;
      new Counter({
        name: "tesseract_grpc_runtime_requests_total",
        help: "POSTs sent to the tesseract-core runtimes, resends included (more than the evaluations: a runtime was busy, or closed a connection under a request).",
        registers,
        collect() {
          this.inc(requestsSent() - sent);
          sent = requestsSent();
        },
      });
    }
    const { requestsHeld } = runtime;
    if (requestsHeld) {
      new Gauge({
        name: "tesseract_grpc_runtime_requests_held",
        help: "Requests to the tesseract-core runtimes whose callers gave up, still holding their slots (of --concurrency per runtime) until the runtime answers or --given-up-hold-ms passes.",
        registers,
        collect() {
          this.set(requestsHeld());
        },
      });
    }
    new Gauge({
      name: "tesseract_grpc_jobs_running",
      help: "Gradient jobs running now.",
      registers,
      collect() {
        this.set(calls.jobsRunning);
      },
    });
    new Gauge({
      name: "tesseract_grpc_jobs_waiting",
      help: "Gradient jobs waiting for a slot.",
      registers,
      collect() {
        this.set(calls.jobsWaiting);
      },
    });
    collectDefaultMetrics({ register: this.registry });
    calls.onCallEnd = (rpc, code, seconds) => {
      this.calls.inc({ rpc, code: CODE_NAMES[code] ?? String(code) });
      this.durations.observe({ rpc }, seconds);
    };
  }

  /** Serves GET /metrics on host:port (0 picks a free port). */
  async listen(host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
    const server = http.createServer((req, res) => {
      if (req.method !== "GET" || req.url?.split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at GET /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(`${e.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, resolve);
    });
    return {
      port: (server.address() as AddressInfo).port,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Every request here is answered at once: what is left is a client's unfinished request,
          // which Node stops timing once closing begins (one left open kept the shutdown waiting for good).
          server.closeAllConnections();
        }),
    };
  }
}
