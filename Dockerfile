# Mulligan image: mulligan-sidecar (entrypoint), mulligan-agent and the
# iptables init script (mulligan-iptables). Debian 12, multi-stage: the build
# stage has only what configuring and compiling the two binaries needs
# (-DMULLIGAN_TESTS=OFF: no GoogleTest, Google Benchmark or python3); the
# runtime stage has only the libraries they link (scripts/image --smoke checks
# every one with ldd inside the image) and iptables for the init container.
#
# Build with scripts/image (podman or docker; it makes the debian:12 base with
# debootstrap where none can be pulled), or: docker build -t mulligan .
# .dockerignore keeps local build trees out of the context.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libevent-dev liburing-dev libnghttp2-dev node-llhttp libboost-dev libtomlplusplus-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMULLIGAN_TESTS=OFF \
    && cmake --build /build --target mulligan-sidecar mulligan-agent \
    && strip /build/bin/mulligan-sidecar /build/bin/mulligan-agent

FROM debian:12-slim
# Exactly the libraries the binaries link (the smoke test checks both ways):
# libevent core + extra (evhttp, evdns: the admin server), liburing, nghttp2
# (the sidecar), toml++ (the agent); iptables for the init container.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-core-2.1-7 libevent-extra-2.1-7 liburing2 libnghttp2-14 libtomlplusplus3 \
      iptables \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/mulligan-sidecar /build/bin/mulligan-agent /usr/local/bin/
COPY scripts/iptables /usr/local/bin/mulligan-iptables
# The sidecar runs as 1337 (the uid the iptables rules exempt), the agent as
# 1338 (scripts/inject sets runAsUser for each); the init container as root.
USER 1337:1337
EXPOSE 15000 15001
ENTRYPOINT ["/usr/local/bin/mulligan-sidecar"]
