// A client that breaks an HTTP/2 rule gets GOAWAY PROTOCOL_ERROR, and its socket must not outlive
// the silent-connection time: nghttp2 stops reading such a connection and Node never closes it.
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as http2 from "node:http2";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { bounded } from "./helpers";
import { describeCalls, ErrorCode, FrameType, H2Connection, h2frame } from "./h2-frames";

const DATA_ON_STREAM_ZERO = h2frame(FrameType.DATA, 0, 0, Buffer.from("x"));

describe("connections that broke HTTP/2's rules", function () {
  this.timeout(10_000);
  let server: RunningServer;
  let port: number;

  before(async () => {
    // Idle connections would be closed after 60 s; the silent-connection time is 300 ms here.
    server = await startServer({ tesseract: "vectoradd", port: 0, logger: silentLogger, warmUpMs: 0, silentConnectionMs: 300 });
    port = Number(server.address.split(":")[1]);
  });
  after(() => server.close(0));

  it("a connection answered GOAWAY PROTOCOL_ERROR, with no call, is closed within the silent-connection time, not held until the idle limit", async () => {
    const connection = await H2Connection.open(port);
    connection.write(DATA_ON_STREAM_ZERO);
    const { goaways } = await bounded(connection.closed, 3000, "the server still holds the broken connection's socket after 3 s");
    assert.deepEqual(goaways.map((g) => g.code), [ErrorCode.PROTOCOL_ERROR]);
  });

  it("so is one that broke the rules with a call waiting on it (the call can never end there)", async () => {
    const connection = await H2Connection.open(port);
    connection.write(describeCalls(1, { headersOnly: true })[0]); // a call whose request never ends
    connection.write(DATA_ON_STREAM_ZERO);
    const { goaways } = await bounded(connection.closed, 3000, "the server still holds the broken connection's socket after 3 s");
    assert.deepEqual(goaways.map((g) => g.code), [ErrorCode.PROTOCOL_ERROR]);
  });

  it("a healthy connection, idle between calls, answers the server's pings and keeps being served", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      let pings = 0;
      session.on("ping", () => pings++);
      // Three of the server's probes answered (by Node's HTTP/2 client itself), then a call.
      while (pings < 3) await bounded(once(session, "ping"), 3000, `only ${pings} pings from the server`);
      const stream = session.request({ ":method": "POST", ":path": "/tesseract.v1.Tesseract/Describe", "content-type": "application/grpc", te: "trailers" });
      stream.end(Buffer.alloc(5));
      stream.resume();
      const [trailers] = (await bounded(once(stream, "trailers"), 3000, "no answer")) as [http2.IncomingHttpHeaders];
      assert.equal(trailers["grpc-status"], "0");
      assert.equal(session.closed || session.destroyed, false);
    } finally {
      session.destroy();
    }
  });
});
