#!/usr/bin/env bash
# Smoke test of mulligan-bench-h2-upstream with nghttp: HTTP/2 answers, the
# 503 injection, the gRPC echo with its grpc-status: 0 trailer, and the
# trailers-only UNAVAILABLE injection. Skips (77) without nghttp.
#
#   bench/h2_upstream_smoke.sh build/bin/mulligan-bench-h2-upstream
set -u
BIN=${1:?usage: $0 PATH/TO/mulligan-bench-h2-upstream}
command -v nghttp >/dev/null || { echo "skip: nghttp (Debian nghttp2-client) is not installed"; exit 77; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mulligan-h2-upstream-smoke.XXXXXX")
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
FAILS=0
check() {  # check NAME PATTERN OUTPUT: OUTPUT has a line matching PATTERN
  if grep -aqE "$2" <<<"$3"; then echo "ok   - $1"; else echo "FAIL - $1: no /$2/ in:"; echo "$3" | sed 's/^/    /' | head -20; FAILS=$((FAILS + 1)); fi
}

"$BIN" --listen 127.0.0.1:0 --name smoke > "$TMP/out" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q listening "$TMP/out" && break; sleep 0.05; done
PORT=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/out")
[[ -n "$PORT" ]] || { echo "FAIL - did not start:"; cat "$TMP/out"; exit 1; }
URL="http://127.0.0.1:$PORT"

out=$(nghttp -v "$URL/" 2>&1)
check "GET / answers 200" ':status: 200' "$out"
check "every answer names the upstream" 'x-upstream-name: smoke' "$out"
check "body is ok" '^ok$' "$out"
check "?status=503 answers 503" ':status: 503' "$(nghttp -v "$URL/?status=503" 2>&1)"
check "?status=503:0 answers 200" ':status: 200' "$(nghttp -v "$URL/?status=503:0" 2>&1)"

printf '\x00\x00\x00\x00\x07\x0a\x05hello' > "$TMP/msg"
# (tr: the echoed gRPC frame has NUL bytes, which bash variables cannot hold)
grpc() { nghttp -v -d "$TMP/msg" -H 'content-type: application/grpc' -H 'te: trailers' "$URL$1" 2>&1 | tr -d '\0'; }
out=$(grpc /bench.Echo/Unary)
check "gRPC: content-type application/grpc" 'recv .*content-type: application/grpc' "$out"
check "gRPC: the message echoed" 'hello' "$out"
check "gRPC: grpc-status 0 in trailers" 'recv .*grpc-status: 0' "$out"
out=$(grpc "/bench.Echo/Unary?grpc_status=14")
check "gRPC: ?grpc_status=14 answers grpc-status 14" 'recv .*grpc-status: 14' "$out"
if grep -aq 'recv DATA' <<<"$out"; then
  echo "FAIL - gRPC: ?grpc_status=14 must be trailers-only, got a DATA frame"; FAILS=$((FAILS + 1))
else
  echo "ok   - gRPC: ... trailers-only (no DATA frame)"
fi

kill "$PID"; wait "$PID"; rc=$?; PID=""
[[ $rc -eq 0 ]] && echo "ok   - SIGTERM exits 0" || { echo "FAIL - SIGTERM exit $rc"; FAILS=$((FAILS + 1)); }
[[ $FAILS -eq 0 ]] && echo "all passed" || echo "$FAILS failed"
exit $(( FAILS > 0 ))
