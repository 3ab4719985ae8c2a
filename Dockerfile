# The production image (the default, last target) holds every service and
# the CLI; the command chooses the service:
#   docker run IMAGE webhook-gateway | chatbot-service | qualification-agent
#                  | capi-sender | reports | capi migrate
# The sandbox (stand-ins for Meta, the model, Evolution API, the CRMs and
# Telegram, for local trials) is a separate image, `--target sandbox`, so
# no production container can start it.
#
# The binaries are compiled on the host first (`cargo build --release
# --bins`, on Debian bookworm like the base), so the image holds no
# compiler, no sources and no build cache: only the binaries, CA
# certificates and a non-root user. scripts/docker-build does both steps.
#
# BASE_IMAGE defaults to Debian's official image; on a machine that reaches
# no registry, scripts/debian-base builds a bookworm base from Debian's
# packages (debootstrap + docker import) and scripts/docker-build passes it.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS base

RUN if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin capi

USER 10001:10001
# Inside a container every service listens on 8080 on all interfaces and
# logs JSON; everything else comes from CAPI_* variables (README).
# MIMALLOC_ALLOW_THP=0: the allocator gets no transparent huge pages (it
# asks for them by default, and a host set to "always" gives them anyway):
# with 2 MiB pages a sender's idle RSS was 39 MB instead of 22 and its backlog
# peak ~1.6x (docs/capi-sender.md, "Memory against the window").
ENV CAPI_HTTP__HOST=0.0.0.0 \
    CAPI_HTTP__PORT=8080 \
    CAPI_LOG__FORMAT=json \
    MIMALLOC_ALLOW_THP=0
EXPOSE 8080

FROM base AS sandbox
COPY target/release/sandbox /usr/local/bin/
CMD ["sandbox", "--host", "0.0.0.0", "--port", "8080"]

FROM base AS production
COPY target/release/webhook-gateway target/release/chatbot-service target/release/qualification-agent \
     target/release/capi-sender target/release/reports target/release/capi \
     /usr/local/bin/
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["capi", "healthcheck"]
CMD ["capi", "--help"]
