# forecast-connector: build the TypeScript once, run the compiled JavaScript as an unprivileged user.
# docker build -t forecast-connector . && docker run --env-file connector.env -p 9464:9464 forecast-connector

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
RUN npm run build

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The official image's "node" user, by number so Kubernetes can verify runAsNonRoot.
USER 1000:1000
# /metrics, /healthz, /readyz (FC_HTTP_PORT)
EXPOSE 9464
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["run"]
