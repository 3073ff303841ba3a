# The streetsync relay (docs/operations.md). Untested here: the project machine has no container
# runtime. Build: docker build -t streetsync-relay .
#
# Stage 1: build the relay binary only.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p streetsync-relay --bin streetsync-relay \
 && install -D target/release/streetsync-relay /out/streetsync-relay

# Stage 2: a small runtime image, an unprivileged user, a health check.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/streetsync-relay --create-home streetsync
COPY --from=build /out/streetsync-relay /usr/local/bin/streetsync-relay
USER streetsync
WORKDIR /var/lib/streetsync-relay
# SQLite by default (mount a volume here); set STREETSYNC_DATABASE_URL for PostgreSQL.
ENV STREETSYNC_RELAY_BIND=0.0.0.0:7878 \
    STREETSYNC_RELAY_DATA=/var/lib/streetsync-relay \
    STREETSYNC_RELAY_METRICS_LISTEN=0.0.0.0:9100
VOLUME ["/var/lib/streetsync-relay"]
EXPOSE 7878 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9100/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/streetsync-relay"]
