# syntax=docker/dockerfile:1
# The operator image: a release build on Debian 12, run from distroless (glibc, CA
# certificates, no shell) as the numeric non-root user 65532.
#   docker build -t sendconnector-operator:0.1.0 .

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build reads: the manifest, the lock file, the sources of the workspace's crates
# and the simulator seed that `local` embeds.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY simulator/seed.yaml ./simulator/seed.yaml
RUN cargo build --release --locked --bin sendconnector-operator \
    && cp target/release/sendconnector-operator /sendconnector-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="sendconnector-operator" \
      org.opencontainers.image.description="Kubernetes operator for OVHcloud Exchange send connectors" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /sendconnector-operator /sendconnector-operator
USER 65532:65532
# Metrics and health (/healthz, /readyz) on --listen, 0.0.0.0:8080 by default.
EXPOSE 8080
ENTRYPOINT ["/sendconnector-operator"]
CMD ["run"]
