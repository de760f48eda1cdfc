# helmrelease-autopilot: one image for the webhook and the reconcilers. Node 24 runs the TypeScript sources
# directly (type stripping), so there is no build step: one stage installs the production dependencies,
# the final stage copies them and the sources, and runs as a numeric non-root user on a read-only root
# filesystem (the process writes nothing outside /tmp, an emptyDir in manifests/).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the production dependencies need none.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# HOME: os.homedir() (the ~/.kube/config lookup) throws for a uid without a passwd entry when HOME is unset.
# V8 flags: a small young generation and a bounded old space keep RSS near what is live (measured:
# 10,000 releases/ConfigMaps/Secrets, 313 MB RSS with the defaults, 178 MB with these; bench/results/).
# Raise --max-old-space-size with the container's memory limit for much larger clusters.
# NODE_COMPILE_CACHE: a module Node reads from it needs no type stripping; one that is not there makes Node load
# its WebAssembly TypeScript parser, which stays in memory (~25 MB of RSS). The cache is filled below.
# MALLOC_ARENA_MAX=2: glibc keeps what a burst of large responses (LIST pages) freed in per-thread arenas and
# rarely gives it back; two arenas measured 137 MB instead of 160 MB after a start at 10,000 releases
# (bench/results/triggers-2026-12-02-01-05-16.md against -00-50-32.md).
ENV NODE_ENV=production HOME=/tmp NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=256" \
    NODE_COMPILE_CACHE=/app/.cache/node-compile MALLOC_ARENA_MAX=2
WORKDIR /app
# Owned by root and not writable by the runtime user.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY cmd ./cmd
COPY src ./src
COPY webhook ./webhook
COPY controller ./controller
# The compile cache, filled as the runtime user (Node keeps one directory per uid): --help loads every module
# of a start, the loop the ones loaded on demand (self-signed mode; entry points, which run when imported, excepted). Then it is root's and read-only, like the
# code; a process that cannot add to it only reads it.
RUN mkdir -p .cache/node-compile && chown 65532:65532 .cache/node-compile
USER 65532:65532
RUN node cmd/helmrelease-autopilot/main.ts --help >/dev/null \
 && find cmd src webhook controller -name '*.ts' ! -name '*.test.ts' ! -name main.ts ! -name cli.ts | sed 's|^|./|' \
    | xargs node --input-type=module -e 'for (const f of process.argv.slice(1)) await import(f)'
USER 0:0
RUN chown -R 0:0 .cache && chmod -R a+rX,a-w .cache
# Numeric, so the kubelet can verify runAsNonRoot without a passwd entry; matches manifests/ runAsUser.
USER 65532:65532
EXPOSE 9443 8081 8080
ENTRYPOINT ["node", "cmd/helmrelease-autopilot/main.ts"]
