/**
 * The bridge's connections to a tesseract-core runtime: a keep-alive connection the runtime closes
 * as a request goes out on it (gunicorn closes idle ones after 2 s) fails that request with no
 * answer; it is sent once more on a new connection. A plain TCP server speaking just enough HTTP/1.1
 * plays the runtime, so the close can be made to meet the request every time.
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as net from "node:net";
import { Replica, replicaLimits, RuntimeReplicas } from "../server/bridge/runtime-replicas";
import { abortedRequests, applyRequests } from "./fixtures/tesseract-core/bridge-clients";
import { FakeDropConnection, startFakeTesseractCore } from "./fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "./fixtures/tesseract-core/mesh-stats";

/** An apply request's body the fake runtime decodes (its apply below ignores the inputs). */
const BODY = JSON.stringify({ inputs: {} });

/** Answers the first request of each connection (keep-alive); closes the connection on the second, unanswered. */
async function closingServer(): Promise<{ url: URL; connections: () => number; requests: () => number; close: () => Promise<void> }> {
  let connections = 0;
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let seen = 0;
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk.toString("latin1");
      // Requests here are small: headers and a Content-Length body in one or two chunks.
      for (let end = buffered.indexOf("\r\n\r\n"); end >= 0; end = buffered.indexOf("\r\n\r\n")) {
        const length = Number(/content-length: *(\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        requests++;
        if (++seen > 1) return void socket.destroy();
        const body = JSON.stringify({ ok: seen });
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n${body}`);
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    connections: () => connections,
    requests: () => requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

describe("bridge connections to a tesseract-core runtime", () => {
  it("a request on a connection the runtime closes under it goes once more on a new one (a single runtime answered UNAVAILABLE)", async () => {
    const runtime = await closingServer();
    const replica = new Replica(runtime.url);
    try {
      for (let i = 0; i < 3; i++) {
        const answer = await replica.request("POST", "apply", "{}");
        assert.deepEqual([answer.status, JSON.parse(answer.text)], [200, { ok: 1 }], `request ${i}`);
      }
      // Request 2 at least met the first connection closing under it, and went again on a new one.
      assert.ok(runtime.requests() > 3 && runtime.connections() >= 2, `${runtime.requests()} requests on ${runtime.connections()} connections`);
    } finally {
      replica.destroy();
      await runtime.close();
    }
  });

  it("a runtime that closes every connection under the request fails it after the one retry, saying why", async () => {
    const server = net.createServer((socket) => socket.once("data", () => socket.destroy()));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const replica = new Replica(new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`));
    let connections = 0;
    server.on("connection", () => connections++);
    try {
      await assert.rejects(replica.request("POST", "apply", "{}"), (e: { code?: string }) => e.code === "UND_ERR_SOCKET");
      assert.equal(connections, 2);
    } finally {
      replica.destroy();
      server.close();
    }
  });

  it("an evaluation's request still waiting for the pool's connection when its caller gives up is never sent (it went out once the connection was free, its caller long gone)", async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let arrived = 0;
    // The first request is held until `open`; each answer says which request it was.
    const fake = await startFakeTesseractCore({ ...meshStats(), hold: () => (++arrived === 1 ? gate : Promise.resolve()), apply: () => ({ request: arrived }) });
    const replica = new Replica(new URL(fake.url), undefined, replicaLimits(1));
    try {
      const first = replica.request("POST", "apply", BODY, undefined, true);
      await applyRequests(fake, 1);
      const controller = new AbortController();
      const queued = replica.request("POST", "apply", BODY, controller.signal, true);
      controller.abort();
      await assert.rejects(queued, (e: Error) => e === controller.signal.reason && e.name === "AbortError");
      const third = replica.request("POST", "apply", BODY, undefined, true);
      open();
      assert.deepEqual(JSON.parse((await first).text), { request: 1 });
      assert.deepEqual(JSON.parse((await third).text), { request: 2 }, "the request given up on was sent before it");
      assert.equal(fake.applyCalls, 2);
    } finally {
      open();
      replica.destroy();
      await fake.close();
    }
  });

  it("close() ends a request given up on that its runtime holds on the resend's connection of its own (it stayed open)", async () => {
    let arrived = 0;
    // The first request's connection is dropped; its resend is never answered.
    const fake = await startFakeTesseractCore({
      ...meshStats(),
      hold: () => (++arrived === 1 ? Promise.resolve() : new Promise<void>(() => {})),
      apply: () => {
        throw new FakeDropConnection();
      },
    });
    const replicas = await RuntimeReplicas.start([fake.url], { connections: 1 });
    try {
      const controller = new AbortController();
      const call = replicas.all[0].request("POST", "apply", BODY, controller.signal, true);
      await applyRequests(fake, 2);
      controller.abort();
      await assert.rejects(call, (e: Error) => e === controller.signal.reason);
      assert.equal(fake.aborted, 1, "only the dropped one is closed yet: the resend is held");
      assert.equal(replicas.limits.held.count, 1);
      replicas.close();
      await abortedRequests(fake, 2);
      while (replicas.limits.held.count > 0) await new Promise((resolve) => setImmediate(resolve)); // its slot given back as the close reaches it
    } finally {
      replicas.close();
      await fake.close();
    }
  });
});
