# syntax=docker/dockerfile:1
#
# The openpay image: one static-ish binary on a slim Debian, run as a
# non-root user. Build:   docker build -t openpay .
# Run (on the EC2 host):  docker compose up --build   (see docker-compose.yml)
#
# No credentials are baked in or passed at build time. At run time the AWS
# SDK's default chain finds them; on EC2 that is the instance role through
# IMDSv2, which terraform allows one extra hop for (http_put_response_hop_limit
# = 2) so a container behind the Docker bridge can reach it.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- build -------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

# ssh2 links libssh2 against OpenSSL: headers and pkg-config to build it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, in their own layer: this layer is rebuilt only when
# Cargo.toml or Cargo.lock change, not on every source edit. The manifest is
# built against stub sources; [[bench]]/[[test]]/[[example]] tables are
# dropped for this step only (cargo refuses a manifest whose declared target
# files are missing, and `cargo build` does not build them anyway). The
# workspace's scanner crate (crates/records) is stubbed the same way.
COPY Cargo.toml Cargo.lock ./
COPY crates/records/Cargo.toml crates/records/
RUN mkdir -p src crates/records/src \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && : > crates/records/src/lib.rs \
 && awk '/^\[\[(bench|test|example)\]\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' \
      Cargo.toml > Cargo.deps.toml \
 && mv Cargo.deps.toml Cargo.toml \
 && cargo build --release --locked \
 && rm -rf src crates/records/src

# Then the sources. COPY keeps the files' old mtimes, older than the stub
# build above: touch them so cargo rebuilds openpay instead of shipping the
# stub binary.
COPY . .
RUN touch src/main.rs src/lib.rs crates/records/src/lib.rs \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/openpay /out/openpay

# --- runtime -----------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

ARG OPENPAY_VERSION=0.1.0
LABEL org.opencontainers.image.title="openpay" \
      org.opencontainers.image.description="Ingest CMS Open Payments into an S3 raw zone, once the host and the AWS account are provably ready" \
      org.opencontainers.image.version="${OPENPAY_VERSION}" \
      org.opencontainers.image.source="https://github.com/openpay/openpay" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# CA certificates for HTTPS to CMS and AWS; libssl3 for ssh2 (doctor --host).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid/gid (so Kubernetes' runAsNonRoot can verify it) and a
# work dir it owns: an empty named volume mounted on /var/lib/openpay/data
# starts with this ownership, so downloads and resumes survive restarts.
RUN groupadd --system --gid 10001 openpay \
 && useradd --system --uid 10001 --gid openpay --home-dir /var/lib/openpay \
      --shell /usr/sbin/nologin openpay \
 && install -d -o openpay -g openpay /var/lib/openpay /var/lib/openpay/data

COPY --from=builder /out/openpay /usr/local/bin/openpay

USER 10001:10001
WORKDIR /var/lib/openpay

ENTRYPOINT ["openpay"]
# Default: check this container's readiness (AWS identity and IAM through the
# instance role). docker-compose.yml runs the ingestion itself.
CMD ["doctor"]
