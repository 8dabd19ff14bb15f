# pullcache's container image: `docker build -t pullcache .`, then
#   docker run -d -p 5000:5000 -v pullcache-data:/var/lib/pullcache pullcache
# The config is /etc/pullcache/config.yaml (config/examples/container.yaml: config/default.yaml with
# the cache on the volume); mount your own there, or pass `serve --config FILE` after the image name.
# README.md ("Deploying") has the rest: compose, Kubernetes, client set-up.

# Any Node.js >= 20.19 image with npm and /bin/sh; both stages use it.
ARG NODE_IMAGE=node:22-slim

# Build stage: every dependency (TypeScript and esbuild among them), then dist/cli.js (one bundle).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts scripts/bundle-options.ts scripts/http2-stub.ts ./scripts/
COPY src ./src
RUN npm run build

# Production dependencies only, in their own stage so npm's download cache stays out of the image.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    PULLCACHE_CONFIG=/etc/pullcache/config.yaml
WORKDIR /app
# package.json says the code is ESM; config/default.yaml is the CLI's embedded default.
COPY package.json ./
COPY config/default.yaml ./config/default.yaml
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config/examples/container.yaml /etc/pullcache/config.yaml
# The code and config stay root's, read-only to the server; only the cache is the user's.
RUN mkdir -p /var/lib/pullcache && chown 1000:1000 /var/lib/pullcache
# The base image's `node` user, by number: Kubernetes' runAsNonRoot can verify a numeric user only.
USER 1000:1000
VOLUME /var/lib/pullcache
EXPOSE 5000
# Slim images have no curl; node's fetch does the same. Liveness only: /readyz checks the storage.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:5000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The node flags are those of dist/cli.js's shebang (lower idle and peak memory; src/cli.ts says why).
# Exec form: node is PID 1 and gets SIGTERM itself (graceful shutdown within limits.shutdownGrace);
# it starts no child processes, so it needs no init (`docker run --init` adds one if you prefer).
ENTRYPOINT ["node", "--max-semi-space-size=1", "--liftoff-only", "--no-sparkplug", "/app/dist/cli.js"]
CMD ["serve"]
