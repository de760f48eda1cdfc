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
ENV NODE_ENV=production HOME=/tmp NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=256"
WORKDIR /app
# Owned by root and not writable by the runtime user.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY cmd ./cmd
COPY src ./src
COPY webhook ./webhook
COPY controller ./controller
# Numeric, so the kubelet can verify runAsNonRoot without a passwd entry; matches manifests/ runAsUser.
USER 65532:65532
EXPOSE 9443 8081 8080
ENTRYPOINT ["node", "cmd/helmrelease-autopilot/main.ts"]
