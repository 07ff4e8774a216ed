# clogs as a container: `docker build -t clogs .`, then see compose.yaml.
# The HTTP endpoint listens on 0.0.0.0 inside the container, so clogs requires
# a token for its web page and /tail: `-e CLOGS_HTTP_AUTH_TOKEN=<16+ chars>`.
#
# node runs as PID 1 directly (no shell wrapper, no init): clogs installs
# SIGTERM/SIGINT handlers, so `docker stop` makes it stop its inputs, flush,
# close its sinks and exit 0 within about two seconds; what Elasticsearch did
# not take stays in the disk queue under /var/lib/clogs. clogs starts no child
# processes, so there are no zombies for an init to reap.

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY bench ./bench
COPY web ./web
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/web ./dist/web
COPY config ./config
RUN mkdir -p /var/lib/clogs && chown node:node /var/lib/clogs
VOLUME /var/lib/clogs
USER node
EXPOSE 24224/tcp 24224/udp 24280/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/clogs.cjs"]
CMD ["collect", "--forward", "0.0.0.0:24224", "--http", "0.0.0.0:24280", "--state", "/var/lib/clogs/state", "--file", "/var/lib/clogs/data"]
