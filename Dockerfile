# mfagate's image: the Debian package that deploy/build-deb.sh builds (the one the package test
# installs), installed on Debian slim. From the repository root: docker build -t mfagate:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev dpkg-dev \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-deb --version 3.8.0 --locked
WORKDIR /src
COPY . .
RUN deploy/build-deb.sh && cp target/debian/mfagate_*.deb /mfagate.deb

FROM debian:bookworm-slim
COPY --from=build /mfagate.deb /tmp/mfagate.deb
# A fixed uid, so Kubernetes' runAsNonRoot can check it; the package keeps an existing user.
RUN groupadd --system --gid 10001 mfagate \
 && useradd --system --uid 10001 --gid mfagate --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin mfagate \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      /tmp/mfagate.deb ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* /tmp/mfagate.deb
COPY deploy/docker/mfagate.toml /etc/mfagate/mfagate.toml
USER 10001:10001
EXPOSE 8080 9090
VOLUME /var/log/mfagate
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/bin/mfagate"]
CMD ["run", "--config", "/etc/mfagate/mfagate.toml"]
