/** Transport defaults that the server and the SDK share, decided here once. */

/** Largest message sent or received: 64 MiB (gRPC's own 4 MiB receive limit is too small for Jacobians). */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 << 20;

/** HTTP/2 receive window of every connection, both ends: bench/stream.ts measured 4–16 MiB as the knee. */
export const FLOW_CONTROL_WINDOW_BYTES = 16 << 20;

/**
 * The longest a Node timer runs, and so the furthest deadline grpc-js can time: 2^31 - 1 ms, about
 * 24.8 days (a longer timer fires at once). Deadlines beyond it are taken as none, server and SDK.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * HTTP/2 streams one connection may hold open at once (SETTINGS_MAX_CONCURRENT_STREAMS; grpc-js
 * offers 2^32 - 1): the 100 that RFC 9113 recommends at least. Every stream a client opens in one
 * write is handled before the next read, other connections waiting: 1000 Describe calls written at
 * once held the event loop ~0.5 s, 100 hold it ~50 ms (bench/rapid-reset.ts); and each unended stream
 * holds about 8 kB. Clients queue what is beyond it (grpc-js waits for the server's settings first).
 */
export const MAX_CONCURRENT_STREAMS = 100;
