# All sparkgang binaries in one small, non-root image.
#   docker build -t ghcr.io/sparkgang/sparkgang:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
        -p sparkgang-admission -p sparkgang-extender -p sparkgang-certs \
 && mkdir /out \
 && cp target/release/sparkgang-admission target/release/sparkgang-extender \
       target/release/sparkgang-certs /out/

# Distroless: glibc and CA certificates, no shell, runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sparkgang-extender"]
