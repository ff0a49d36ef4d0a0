# The service image used by docker-compose.yml (Node 20; chDB's native library comes from npm).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# `cdp clickhouse-gateway` (a development tool) is compiled with the CLI that dispatches to it
COPY tools/clickhouse-gateway ./tools/clickhouse-gateway
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY avro ./avro
COPY config ./config
USER node
EXPOSE 8080
CMD ["node", "bin/cdp.js", "serve"]
