#!/bin/sh
# On the many-core machine, from the clone's root with .device/ beside it (bench/remote/pack.sh):
# unpacks Node and the build, then runs the checks that need many cores, each with a time limit, and
# copies their tables and JSON into $OUT (default ./remote-results):
#   - the dense heat stream under the default --workers auto against grpc-js alone (ratio, both RSS);
#   - the pool bench: inline, 4, 8 and 15 threads and auto on meshstats, fresh servers' first calls.
set -u
OUT=${OUT:-remote-results}
mkdir -p "$OUT" /tmp/tesseract-grpc-node
xz -dc .device/node.xz >/tmp/tesseract-grpc-node/node && chmod +x /tmp/tesseract-grpc-node/node
PATH=/tmp/tesseract-grpc-node:$PATH
export PATH
tar -xJf .device/node_modules.tar.xz && tar -xJf .device/dist.tar.xz
echo "cores: $(nproc), node $(node --version)" | tee "$OUT/machine.txt"
BENCH_STREAM_WORKERS=auto BENCH_STREAM_CASES=grpc,grpc-raw timeout 240 node dist/bench/stream.js >"$OUT/stream.txt" 2>&1
BENCH_POOL_WORKERS=${BENCH_POOL_WORKERS:-4,8,15} BENCH_POOL_COLD_STARTS=${BENCH_POOL_COLD_STARTS:-3} timeout 280 node dist/bench/pool.js >"$OUT/pool.txt" 2>&1
cp bench/results/stream.json bench/results/pool.json "$OUT/" 2>/dev/null
tail -n 4 "$OUT/stream.txt" "$OUT/pool.txt"
