#!/usr/bin/env bash
# Smoke test of mulligan-h2-upstream with nghttp (CTest: h2_upstream_smoke):
# the HTTP/2 answers and their parameters (status lists, size, echo, delay,
# refuse, bad values), --name, --port-file, --log, the gRPC echo with its
# grpc-status: 0 trailer and the trailers-only grpc_status= injection.
# Skips (77) without nghttp.
#
#   tests/upstreams/h2_upstream_smoke.sh build/bin/mulligan-h2-upstream
set -u
BIN=${1:?usage: $0 PATH/TO/mulligan-h2-upstream}
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
same() {  # same NAME EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then echo "ok   - $1"; else echo "FAIL - $1: want [$2], got [$3]"; FAILS=$((FAILS + 1)); fi
}

"$BIN" --listen 127.0.0.1:0 --name smoke --port-file "$TMP/port" --log "$TMP/log" --seed 7 > "$TMP/out" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q listening "$TMP/out" && break; sleep 0.05; done
PORT=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/out")
[[ -n "$PORT" ]] || { echo "FAIL - did not start:"; cat "$TMP/out"; exit 1; }
same "--port-file holds the port" "$PORT" "$(cat "$TMP/port")"
URL="http://127.0.0.1:$PORT"

out=$(nghttp -v "$URL/" 2>&1)
check "GET / answers 200" ':status: 200' "$out"
check "every answer names the upstream" 'x-upstream-name: smoke' "$out"
check "body is ok" '^ok$' "$out"
out=$(nghttp -v "$URL/?status=503" 2>&1)
check "?status=503 answers 503" ':status: 503' "$out"
check "... with body 503" '^503$' "$out"
check "?status=503:0 answers 200" ':status: 200' "$(nghttp -v "$URL/?status=503:0" 2>&1)"
check "?status=429:0,502:100 answers 502" ':status: 502' "$(nghttp -v "$URL/?status=429:0,502:100" 2>&1)"
codes=$(for i in $(seq 40); do nghttp -v "$URL/?status=503:50" 2>&1 | sed -n 's/.*:status: \([0-9]*\).*/\1/p'; done | sort -u | tr '\n' ' ')
same "?status=503:50 gives both 200 and 503" "200 503 " "$codes"
out=$(nghttp -v "$URL/?status=abc" 2>&1)
check "a malformed value answers 400" ':status: 400' "$out"
check "... naming it" 'bad query parameter: status=abc' "$out"
same "?size=100000 sends 100000 bytes" 100000 "$(nghttp "$URL/?size=100000" | wc -c)"
same "?size=2KiB sends 2048 bytes" 2048 "$(nghttp "$URL/?size=2KiB" | wc -c)"
printf 'hello h2' > "$TMP/body"
same "?echo=1 echoes the body" "hello h2" "$(nghttp -d "$TMP/body" "$URL/?echo=1")"
for d in 300 300ms 0.3s; do
  t0=$(date +%s%N); nghttp "$URL/?delay=$d" >/dev/null; ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if (( ms >= 290 )); then echo "ok   - ?delay=$d waits (${ms} ms)"; else echo "FAIL - ?delay=$d answered in ${ms} ms"; FAILS=$((FAILS + 1)); fi
done
check "?refuse=1 resets the first request of an id with REFUSED_STREAM" 'error_code=REFUSED_STREAM' \
  "$(nghttp -v "$URL/?refuse=1&id=rf" 2>&1)"
check "... and answers the next one" ':status: 200' "$(nghttp -v "$URL/?refuse=1&id=rf" 2>&1)"

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
check "gRPC: ?grpc_status=14:0 answers grpc-status 0" 'recv .*grpc-status: 0' "$(grpc "/bench.Echo/Unary?grpc_status=14:0")"

check "--log: one JSON line per request" '"id":"rf".*"outcome":"refused"' "$(cat "$TMP/log")"
check "--log: answered requests" '"path":"/\?echo=1".*"body_bytes":8,"outcome":"answered"' "$(cat "$TMP/log")"
bad=$(python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$TMP/log" 2>&1) \
  && echo "ok   - --log: every line is JSON" || { echo "FAIL - --log: $bad"; FAILS=$((FAILS + 1)); }

kill "$PID"; wait "$PID"; rc=$?; PID=""
[[ $rc -eq 0 ]] && echo "ok   - SIGTERM exits 0" || { echo "FAIL - SIGTERM exit $rc"; FAILS=$((FAILS + 1)); }

# --seed: the same seed draws the same sequence.
seq_of() {
  "$BIN" --listen 127.0.0.1:0 --seed "$1" > "$TMP/out2" 2>&1 &
  local pid=$! port=""
  for _ in $(seq 100); do grep -q listening "$TMP/out2" && break; sleep 0.05; done
  port=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/out2")
  for _ in $(seq 20); do nghttp -v "http://127.0.0.1:$port/?status=503:50" 2>&1 | sed -n 's/.*:status: \([0-9]*\).*/\1/p'; done | tr '\n' ' '
  kill "$pid"; wait "$pid" 2>/dev/null
}
same "--seed 42 twice draws the same statuses" "$(seq_of 42)" "$(seq_of 42)"

[[ $FAILS -eq 0 ]] && echo "all passed" || echo "$FAILS failed"
exit $(( FAILS > 0 ))
