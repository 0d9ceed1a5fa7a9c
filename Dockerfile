# syntax=docker/dockerfile:1
# Build: compile TypeScript with the dev dependencies.
# Node 20: the runtime the project targets and every test here runs on.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies and the compiled output only, as a non-root user.
FROM node:20-bookworm-slim
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
# V8: a 4 MiB young generation (semi-space), where the objects around each streamed chunk still
# die in cheap scavenges (with 1 MiB they were promoted, and every 256 MiB cache miss cost
# ~0.6 CPU-s of full collections; 2, 4 and 8 MiB cost the same CPU per miss within the noise,
# and 4 instead of 8 lowered the peak RSS under 16 concurrent misses by ~10 MiB); and the
# collector on the main thread only: its four helper threads competed with the event loop, the
# hash worker and the clients for the cores, and took 0.3-0.6 CPU-s per miss. Measured in
# test/bench/proxy.ts on 2 cores: 1.2-1.45 CPU-s per miss with helpers, 0.67-0.86 without.
# glibc's malloc with fixed thresholds: by default it raises the mmap threshold after freeing
# a large buffer, and 1 MiB read slabs (src/registry/proxy/slab-connector.ts) would then come
# from the main heap and fragment it; fixed, every slab is its own mapping and goes back whole.
# Not 32 KiB (issue 16): start-up's passing 32-256 KiB allocations leave 2-4 MiB of holes in
# the heap at rest that a lower threshold would hand back (registry at rest 62.4 vs 64.3 MiB),
# and a cold pull-through was no dearer, but a skopeo push of 3x100 MiB took 8.0-10.9 s instead
# of 3.1-3.6 (85k page faults instead of 11k): the upload path's buffers in that range each
# became a mapping of their own (test/bench/_malloc-env-ab.ts has the pull side).
# WebAssembly stays on V8's baseline compiler: the only wasm is undici's HTTP parser, and the
# optimizing recompile of it during the first large upstream response took ~25 MiB for a moment
# (a mirror's peak RSS over its first cache miss: 137-143 MiB with it, 112-115 without; CPU per
# miss the same within the noise: a blob body is one span to the parser).
# At rest (issue 16): one malloc arena. Each thread that mallocs gets its own arena, and the V8
# and libuv worker threads left freed but resident memory in theirs after start-up (registry at
# rest 70.8-73.5 MiB -> 70.7-71.7 with two). With two, the second held 2.7-3.0 MiB of which
# 0.01-0.02 was in use at rest (malloc_stats); with one, the main thread reuses that memory:
# 63.9 instead of 65.75 MiB at rest (medians of 4 alternating starts) and 83.7 instead of 85.8
# after five cold 64 MiB pulls, with no more CPU per pull (0.26 vs 0.32 CPU-s, 4 pulls each),
# and a skopeo push of 3x100 MiB the same: 2.5-3.6 s and 1.4-2.1 CPU-s with one, 2.1-3.4 s and
# 1.5-1.9 with two (6 alternating pushes each, _malloc-env-push-ab.ts): the threads' few large
# mallocs (compiler zones, hash buffers) rarely meet on the lock. Not MALLOC_TOP_PAD_=0 with
# MALLOC_TRIM_THRESHOLD_=32768: 1.7 MiB less at rest, but 4-5x the brk/mmap calls and ~1.6x
# the CPU per cold pull. Not --v8-pool-size=1 or 2: no less at rest.
# Not --no-concurrent-recompilation, though with it the registry rested at 66-67 MiB: it moves
# TurboFan onto the event loop, and a cold 256 MiB pull-through then spent 0.86 instead of 0.66
# CPU-s on the main thread and took 1.75 instead of 1.49 s (test/bench/_cold-ab.ts, 7
# alternating pairs). Not --optimize-for-size: 1-2 MiB less at rest, but it holds the young
# generation at 1 MiB whatever --max-semi-space-size says (the cost described above: 2.3x the
# CPU on a churn test).
ENV MALLOC_TRIM_THRESHOLD_=131072 MALLOC_MMAP_THRESHOLD_=262144 MALLOC_ARENA_MAX=1
ENTRYPOINT ["node", "--max-semi-space-size=4", "--single-threaded-gc", "--no-wasm-dynamic-tiering", "--no-wasm-tier-up", "/app/bin/layover.js"]
CMD ["serve", "--config", "/etc/layover/config.yaml"]
