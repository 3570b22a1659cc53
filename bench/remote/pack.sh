#!/bin/sh
# Packs what the many-core checks need onto a machine that has no Node.js, npm or network (x86-64
# Linux): this node binary, the built dist/ and the production dependencies, compressed into
# .device/ (git-ignored), for bench/remote/run.sh there. Run from anywhere in the clone.
set -eu
cd "$(dirname "$0")/../.."
npm run build >/dev/null
rm -rf .device && mkdir -p .device/stage
cp package.json package-lock.json .device/stage/
(cd .device/stage && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
tar -C .device/stage -cJf .device/node_modules.tar.xz node_modules
tar -cJf .device/dist.tar.xz dist
xz -c "$(command -v node)" >.device/node.xz
rm -rf .device/stage
du -ch .device/* | tail -n 4
