# syntax=docker/dockerfile:1
# Build: compile TypeScript with the dev dependencies.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies and the compiled output only, as a non-root user.
FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The web UI's static files sit next to the compiled UI module (src/ui/plugin.ts looks there).
COPY src/ui/static ./dist/ui/static
# Numeric, so that the kubelet can verify runAsNonRoot; 1000 is the image's `node` user.
USER 1000:1000
EXPOSE 5000 8443
VOLUME ["/var/lib/layover"]
# An 8 MiB young generation: the objects around each streamed chunk die there, in cheap
# scavenges. With 1 MiB they were promoted and every 256 MiB cache miss cost ~0.6 CPU-s of full
# collections on the GC threads (measured: 1.3-1.8 CPU-s per miss, 0.6-0.7 with 8); peak RSS
# did not move, as it is set by the socket buffers awaiting collection. test/bench runs the same flag.
# glibc's malloc with fixed thresholds: by default it raises them after freeing large buffers
# and then keeps freed socket buffers; fixed, RSS at rest after cache misses fell from ~160 to
# ~125 MiB and its peak under 16 concurrent misses from ~180 to ~155 MiB, at the same speed.
ENV MALLOC_TRIM_THRESHOLD_=131072 MALLOC_MMAP_THRESHOLD_=262144
ENTRYPOINT ["node", "--max-semi-space-size=8", "/app/bin/layover.js"]
CMD ["serve", "--config", "/etc/layover/config.yaml"]
