# syntax=docker/dockerfile:1
# The cromflag image: the host binary, the manifest and the components it names.
#
#   docker build -t cromflag .
#   docker run -d -p 8000:8000 -p 1883:1883 -v cromflag-data:/data cromflag
#
# Or the whole stack (Prometheus, Grafana, optional Mosquitto and GridDB):
# compose.yaml, and docs/container.md.
#
# Access: the image listens on 0.0.0.0 (CROMFLAG_LISTEN, CROMFLAG_MQTT_BROKER),
# which is beyond loopback, so tokens are required (the `access` variable in
# spin.toml is `auto`; SPIN_VARIABLE_ACCESS=open turns tokens off, with a warning).
#   - device tokens:  docker compose exec -T cromflag cromflag devices add <id>
#     (the token is the last line; the CLI reaches the running host through
#     /data/control.json, so it works while the host runs);
#   - reader tokens (Grafana, Prometheus' scrape of /metrics, applications):
#                     docker compose exec -T cromflag cromflag readers add <name>
#   - the admin token (/admin/..., component uploads, POST /admin/reports/run):
#     choose one and pass it as SPIN_VARIABLE_ADMIN_TOKEN (empty: those routes are off).
# GET /healthz and /readyz answer without a token.

# --- Build: the host and, through host/build.rs, the wasm32-wasip2 components
# and the built-in page (npm ci + esbuild in ui/). Builder and runtime are the
# same Debian release (bookworm), so the binary finds the glibc it was linked with.
FROM rust:1.95-bookworm AS builder
# Node.js and npm bundle the page (without npm the build leaves the page out and
# `/` answers 503). Bookworm's Node 18 runs esbuild; npm warns that
# playwright-core (the browser test's, not the build's) wants Node 20.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
# host/build.rs would add it too; here it is cached in its own layer.
RUN rustup target add wasm32-wasip2
WORKDIR /src
# The whole workspace: every member's manifest is needed to resolve it, and
# build.rs builds components/* against wit/ (see .dockerignore for what stays out).
COPY Cargo.toml Cargo.lock spin.toml ./
COPY wit wit
COPY crates crates
COPY components components
COPY host host
COPY tests tests
COPY ui ui
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked -p cromflag

# --- Runtime.
FROM debian:bookworm-slim
# ca-certificates: GridDB Cloud and mqtts:// brokers (WebPKI roots are built in,
# a custom CA file is read from disk); curl: the HEALTHCHECK.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin cromflag \
    && mkdir -p /data \
    && chown cromflag:cromflag /data
COPY --from=builder /src/target/release/cromflag /usr/local/bin/cromflag
# spin.toml names its components relative to itself:
# target/components/wasm32-wasip2/component/<name>.wasm. Both live in /app, the
# working directory, where `cromflag up` looks for spin.toml (CROMFLAG_MANIFEST).
# Owned by root: the host only reads them (uploads go to /data/uploads).
WORKDIR /app
COPY spin.toml /app/spin.toml
COPY --from=builder /src/target/components/wasm32-wasip2/component/*.wasm /app/target/components/wasm32-wasip2/component/

# The embedded store, the compile cache, uploads and the CLI's control file.
ENV CROMFLAG_DATA_DIR=/data \
    CROMFLAG_LISTEN=0.0.0.0:8000 \
    CROMFLAG_MQTT_BROKER=0.0.0.0:1883
VOLUME /data
# HTTP (the API, the page, /metrics, /healthz) and the MQTT device endpoint.
EXPOSE 8000 1883
USER cromflag
# The first start compiles every component (cached in /data/cache afterwards)
# before the HTTP listener opens: hence the start period. The port follows
# CROMFLAG_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${CROMFLAG_LISTEN##*:}/healthz" || exit 1
ENTRYPOINT ["cromflag"]
CMD ["up"]
