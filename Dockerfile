# forecast-connector: compiles the TypeScript in a build stage, then runs the compiled JavaScript with production
# dependencies only, as an unprivileged user, under tini.
#
#   docker build -t forecast-connector .
#   docker run --env-file connector.env -p 9464:9464 forecast-connector          (check-config: append it)
#
# Configuration comes only from FC_* environment variables at run time: nothing secret is baked in, and the
# build context is an allow-list (.dockerignore) so no .env or .npmrc can slip into a layer.

# The official Node.js 24 LTS image on Debian bookworm, slim variant, pinned by its multi-platform index digest
# (node:24-bookworm-slim = node:24.21.0-bookworm-slim, built 2026-09-09, as recorded by docker-library/repo-info).
# Every stage uses that same image (test/unit/dockerContext.test.ts checks it). To update: docker buildx imagetools
# inspect node:24-bookworm-slim, and replace the digest in each FROM and in the base.digest label.

# ---- production dependencies only; no package install scripts run ----
FROM node:24-bookworm-slim@sha256:2fe369e969550cde8e867afc3fe370b260140cab4a23d467074295b42163d553 AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- compile: dev dependencies for tsc, then `npm run build` (tsconfig.build.json -> dist/, schemas -> dist/schemas) ----
FROM node:24-bookworm-slim@sha256:2fe369e969550cde8e867afc3fe370b260140cab4a23d467074295b42163d553 AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
RUN npm run build

# ---- runtime ----
FROM node:24-bookworm-slim@sha256:2fe369e969550cde8e867afc3fe370b260140cab4a23d467074295b42163d553
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="forecast-connector" \
      org.opencontainers.image.description="Kafka connector that micro-batches store feature events into Azure ML batch endpoint jobs and publishes each prediction as Avro" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="node:24-bookworm-slim" \
      org.opencontainers.image.base.digest="sha256:2fe369e969550cde8e867afc3fe370b260140cab4a23d467074295b42163d553"
# tini as PID 1: it forwards SIGTERM to node and reaps zombies. Node as PID 1 would ignore SIGTERM until the
# connector has installed its handler (src/cli.ts does so once started), so a pod stopped during start-up
# would wait out its whole grace period.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the runtime user; the connector writes nothing to disk.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The base image's "node" user, by number so Kubernetes can verify runAsNonRoot.
USER 1000:1000
# /metrics, /healthz, /readyz (FC_HTTP_PORT). No HEALTHCHECK: Kubernetes probes those endpoints (helm/).
EXPOSE 9464
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/cli.js"]
CMD ["run"]
