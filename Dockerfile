# syntax=docker/dockerfile:1
# The speech server's image: `docker build -t speech-server .` (deploy/docker-compose.yml and
# deploy/k8s/ use it). Two stages: `build` runs the README's install command, `npm ci` (fetch and
# verify the models, build the addon and the TypeScript), then drops the devDependencies; the
# runtime stage copies only what the server reads at run time. test/unit/dockerfile.test.ts checks
# the paths below against the repository and the build's output.

FROM node:20-bookworm AS build
# cmake builds the addon; g++ and make are in this image already, listed so the step says what it needs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ make \
 && rm -rf /var/lib/apt/lists/*
# .npmrc's strict-allow-scripts and package.json's allowScripts need npm >= 11.16. Node 20's own
# npm (10.x) ignores both and would run onnxruntime-node's postinstall, which downloads the CUDA
# provider libraries from NuGet. The development machines' npm:
RUN npm install -g npm@11.19.1
WORKDIR /app
COPY package.json package-lock.json .npmrc CMakeLists.txt tsconfig.json tsconfig.build.json ./
COPY models/ models/
COPY native/ native/
COPY src/ src/
# The models and the ONNX Runtime headers come from the npm registry (npm pack); the npm cache
# mount only spares downloads on a rebuild.
RUN --mount=type=cache,target=/root/.npm npm ci
# Run time needs no devDependency (test/unit/dockerfile.test.ts checks src/ imports none). The
# addon only needs this platform's libonnxruntime.so.1 from onnxruntime-node (its RUNPATH is
# $ORIGIN/../../node_modules/onnxruntime-node/bin/napi-v6/linux/x64); the other platforms'
# binaries (~250 MB) and the fetched ONNX Runtime headers go.
RUN npm prune --omit=dev \
 && rm -rf node_modules/.cache \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 2 -maxdepth 2 -type d \
      ! -path "*/linux/$(node -p process.arch)" -exec rm -rf {} +

FROM node:20-bookworm-slim
WORKDIR /app
# package.json holds "type": "module"; dist/ is the compiled server; build/Release/ the addon;
# models/ the verified model files with manifest.json and model-files.mjs (checked again at
# start-up); src/web/ the live page, read from the project root at start-up (src/static-files.ts).
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/build/Release/speech_native.node build/Release/
COPY --from=build /app/models/ models/
COPY --from=build /app/src/web/ src/web/
# Listen on every interface (the server's default too, stated here so the image does not depend on it).
ENV HOST=0.0.0.0
EXPOSE 8080
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it. The files
# above stay root's: the server only reads them.
USER 1000:1000
# SIGTERM drains: live streams get their final results within DRAIN_SECONDS, then exit 0.
STOPSIGNAL SIGTERM
# What `npm start` runs, without npm in between, so that node is PID 1 and gets SIGTERM itself.
CMD ["node", "dist/src/main.js"]
