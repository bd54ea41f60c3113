# pan123-webdav container image.
#
#   docker build -t pan123-webdav .
#   docker run -d -p 8080:8080 -v $PWD/config:/config:ro -v pan123-state:/state pan123-webdav
#
# The config is read from /config/config.toml. Inside a container it must listen on all
# interfaces and keep its state on the volume:
#   [server]
#   listen = "0.0.0.0:8080"
#   state_dir = "/state"

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Without default features: the emulator behind `demo` stays out of the production binary.
RUN cargo build --release --locked -p pan123-webdav --no-default-features \
    && install -D -m 0755 target/release/pan123-webdav /out/pan123-webdav \
    && install -d -o 65532 -g 65532 /out/state

# distroless/cc: glibc and libgcc only, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/pan123-webdav /usr/local/bin/pan123-webdav
# Persisted tokens, the upload spool and queue, dead properties.
COPY --from=build --chown=65532:65532 /out/state /state
VOLUME ["/state"]
EXPOSE 8080
USER 65532:65532
# No curl in distroless: the binary checks its own /-/healthz.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/pan123-webdav", "healthcheck", "--url", "http://127.0.0.1:8080/-/healthz"]
ENTRYPOINT ["/usr/local/bin/pan123-webdav"]
CMD ["serve", "-c", "/config/config.toml"]
