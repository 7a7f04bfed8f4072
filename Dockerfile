# Mulligan image: mulligan-sidecar (entrypoint), mulligan-agent and the
# iptables init script. Debian-based, multi-stage: build with the same
# packages scripts/test uses, run on a slim base with only the runtime libraries.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config libevent-dev liburing-dev libnghttp2-dev node-llhttp \
      libboost-dev libtomlplusplus-dev libgtest-dev libgmock-dev libbenchmark-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build --target mulligan-sidecar mulligan-agent

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libevent-pthreads-2.1-7 liburing2 libnghttp2-14 libtomlplusplus3 iptables \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/bin/mulligan-sidecar /src/build/bin/mulligan-agent /usr/local/bin/
COPY scripts/iptables /usr/local/bin/mulligan-iptables
# The sidecar runs as 1337 (the uid the iptables rules exempt), the agent as 1338.
USER 1337
EXPOSE 15000 15001
ENTRYPOINT ["/usr/local/bin/mulligan-sidecar"]
