# Sourced by scripts/*: installs the Debian packages Mulligan needs, only the
# ones that are missing, so a warm machine pays nothing.
# Usage: mulligan_install_deps PACKAGE...
mulligan_install_deps() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# What building and testing needs.
MULLIGAN_BUILD_DEPS=(
  build-essential cmake ninja-build pkg-config
  libevent-dev liburing-dev libnghttp2-dev node-llhttp libboost-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  curl python3 python3-yaml procps
  iptables iproute2 util-linux   # pod-sim end-to-end tests (ip netns, setpriv)
  prometheus                     # promtool checks the /metrics exposition
  python3-grpcio                 # gRPC client and server in the gRPC integration tests
  nghttp2-client                 # nghttp and h2load in the HTTP/2 integration tests and scripts/bench
  python3-h2                     # frame-level HTTP/2 tests (PING, GOAWAY, RST_STREAM)
  chromium                       # the admin page is loaded in a headless browser
  wrk                            # saturates the data plane while the admin must still answer
  openssl python3-jsonpatch      # the injection webhook test: its certificates, and an independent JSONPatch
  python3-jsonschema             # docs_test validates policies against docs/policy.schema.json
)

# npm packages the tests use, installed into MULLIGAN_NPM_PREFIX (not
# globally): taplo, the TOML toolkit behind VS Code's Even Better TOML,
# validates the example policies against docs/policy.schema.json as an
# editor would. connect-es (@connectrpc/connect, -node, and @bufbuild/protobuf
# under them) is the real Connect client and server of the Connect tests
# (tests/integration/connect/). Pinned, so a new release cannot change a
# test's verdict.
MULLIGAN_NPM_PREFIX=${MULLIGAN_NPM_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/mulligan/npm}
MULLIGAN_NPM_TOOLS=(@taplo/cli@0.7.0 @connectrpc/connect@2.3.0 @connectrpc/connect-node@2.3.0 @bufbuild/protobuf@2.17.0)

# Installs MULLIGAN_NPM_TOOLS into MULLIGAN_NPM_PREFIX when missing (npm from
# Debian if there is none). Returns non-zero when npm cannot install them.
mulligan_install_npm_tools() {
  [ -x "$MULLIGAN_NPM_PREFIX/node_modules/.bin/taplo" ] &&
    [ -f "$MULLIGAN_NPM_PREFIX/node_modules/@connectrpc/connect-node/package.json" ] && return 0
  command -v npm >/dev/null || mulligan_install_deps npm || return 1
  mkdir -p "$MULLIGAN_NPM_PREFIX"
  echo "installing (npm, into $MULLIGAN_NPM_PREFIX): ${MULLIGAN_NPM_TOOLS[*]}" >&2
  npm install --prefix "$MULLIGAN_NPM_PREFIX" --no-audit --no-fund --silent "${MULLIGAN_NPM_TOOLS[@]}" >&2
}

# What scripts/bench needs on top (scripts/bench-ab uses wrk and HAProxy):
# the load generators, the proxies it compares, nghttpd (nghttp2-server) as a
# second HTTP/2 upstream, and gnuplot for its latency chart (optional: without
# it the chart is skipped, the tables are written). Its profile case adds
# linux-perf, strace and valgrind.
MULLIGAN_BENCH_DEPS=(
  wrk nghttp2-client nghttp2-server haproxy nginx-light gnuplot-nox
  python3 python3-grpcio procps util-linux iproute2
)

# Optional, only for scripts/image: an image engine, and debootstrap to make
# the debian:12 base where no registry can be reached. Not needed to build or
# test the project itself.
MULLIGAN_IMAGE_DEPS=(
  podman debootstrap
)

# What scripts/fuzz (and the fuzz step of scripts/test) needs on top:
# clang with libFuzzer and the sanitizer runtimes.
MULLIGAN_FUZZ_DEPS=(clang libclang-rt-dev)
