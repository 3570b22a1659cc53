/**
 * The Node flags the server is launched with: by the image (Dockerfile ENTRYPOINT), by `npm start`,
 * and by the benches for every server they measure. (A CLI cannot give them to its own process:
 * they configure V8's heap as it starts, and NODE_OPTIONS does not take them.)
 *
 * --initial-old-space-size: V8 sizes the old generation's next collection from what the last one
 * left, and a server's live heap is small (15 MB) while it streams buffers through it at hundreds
 * of MB/s, so V8 ran a full collection every 40 ms. Measured (npm run bench:stream, n = 8 000, two
 * cores, four alternating runs each): grpc-js alone 0.42 → 0.55 GB/s, the engine under two
 * workers 0.21 → 0.26 GB/s; peak RSS unchanged. The SDK client in a process of its own spends a
 * quarter less CPU per meshstats Jacobian with it.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--initial-old-space-size=64"];
