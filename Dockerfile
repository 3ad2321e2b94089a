# syntax=docker/dockerfile:1
# tokenstream: gRPC token streaming over a native GGUF engine.
#
# Two stages: `build` compiles the C++ addon (g++, cmake) and the TypeScript;
# the runtime image has only Node, the production node_modules, the compiled
# output and the addon, and runs as the unprivileged `node` user. Nothing is
# downloaded at build time besides Debian packages and the npm packages pinned
# in package-lock.json (Node-API headers come from the node-api-headers package).
#
#   docker build -t tokenstream .
#   docker run --rm -p 50051:50051 -p 9464:9464 tokenstream
#   docker run --rm -p 50051:50051 -v "$PWD/models:/models:ro" \
#     -e TOKENSTREAM_MODEL=mymodel=/models/my.gguf tokenstream

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first (a layer that survives source edits). --ignore-scripts: the
# package's own install/prepare scripts need the sources, which come next.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY native ./native
COPY proto ./proto
COPY server ./server
COPY client ./client
COPY scripts ./scripts
COPY bin ./bin
COPY models ./models
# Addon (cmake-js, portable -O3 build: SIMD paths are chosen at run time) + tsc.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    TOKENSTREAM_HOST=0.0.0.0 \
    TOKENSTREAM_PORT=50051 \
    TOKENSTREAM_METRICS_PORT=9464
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/native/build/Release/tokenstream.node ./native/build/Release/tokenstream.node
# Reflection serves the compiled descriptor set.
COPY --from=build /app/server/src/generated/descriptor.binpb ./server/src/generated/descriptor.binpb
# The bundled tiny default model; mount real models at /models.
COPY --from=build /app/models ./models
RUN mkdir -p /models && chown node:node /models
VOLUME ["/models"]
USER node
EXPOSE 50051 9464
# gRPC health (grpc.health.v1.Health/Check on ""): SERVING once the models are loaded.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "bin/tokenstream.js", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["node", "bin/tokenstream.js"]
CMD ["serve"]
