# syntax=docker/dockerfile:1
# tesseract-grpc server image. Build and run:  docker compose up --build
# (or: docker build -t tesseract-grpc . && docker run --init -p 50051:50051 tesseract-grpc)

# ---- build: install from the lockfile, generate code from proto/, compile to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
# The build context is filtered by .dockerignore (no node_modules/, dist/, generated/, .git/).
COPY . .
# `npm ci` runs the `prepare` script (buf generate + tsc); buf comes as a binary inside an npm
# package, so no protoc and no download. Then drop the compiled tests and benchmarks and the dev
# dependencies for the runtime stage.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund \
 && rm -rf dist/test dist/bench \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: compiled code, the contract's .proto files, production dependencies ----
FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    TESSERACT_GRPC_HOST=0.0.0.0
# Owned by root, readable by all: the server never writes to its own files.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules/ ./node_modules/
COPY --from=build /app/proto/ ./proto/
COPY --from=build /app/dist/ ./dist/
USER node
EXPOSE 50051
# Standard gRPC health checking (grpc.health.v1.Health), through the CLI's own client command:
# exits 0 only when the server answers SERVING. No grpc_health_probe binary needed.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "dist/cli/cli.js", "health", "--address", "127.0.0.1:50051"]
# Node flags for serving: server/launch-flags.ts says why.
ENTRYPOINT ["node", "--initial-old-space-size=64", "dist/cli/cli.js"]
CMD ["serve", "meshstats", "--port", "50051"]
