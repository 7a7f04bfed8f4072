#!/usr/bin/env bash
# Smoke test of mulligan-test-upstream with curl: starts it on an ephemeral
# loopback port in a temp dir, exercises every query parameter, checks the
# log, then stops it with SIGTERM and expects exit 0.
#
#   tests/upstreams/test_upstream_smoke.sh build/bin/mulligan-test-upstream
set -u

BIN=${1:?usage: $0 PATH/TO/mulligan-test-upstream}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mulligan-upstream-smoke.XXXXXX")
PID=""
BG_PID=""
cleanup() {
  [[ -n "$BG_PID" ]] && kill "$BG_PID" 2>/dev/null && wait "$BG_PID" 2>/dev/null
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

FAILS=0
pass() { echo "ok   - $1"; }
fail() { echo "FAIL - $1"; FAILS=$((FAILS + 1)); }
check() {  # check NAME EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}
between() {  # between NAME LOW HIGH VALUE (inclusive)
  if (( $4 >= $2 && $4 <= $3 )); then pass "$1 ($4)"; else fail "$1: $4 not in [$2, $3]"; fi
}

"$BIN" --listen 127.0.0.1:0 --port-file "$TMP/port" --log "$TMP/log.jsonl" --name smoke --quiet \
  >"$TMP/stdout" 2>"$TMP/stderr" &
PID=$!
for _ in $(seq 100); do [[ -s "$TMP/port" ]] && break; sleep 0.05; done
PORT=$(cat "$TMP/port" 2>/dev/null)
if [[ -z "$PORT" ]]; then
  echo "FAIL - upstream did not start: $(cat "$TMP/stderr")"
  exit 1
fi
U="http://127.0.0.1:$PORT"
CURL=(curl -sS --max-time 10)
check "stdout says where it listens" "listening 127.0.0.1:$PORT" "$(head -1 "$TMP/stdout")"

# Status code of one request (000 when there was no answer).
code() { "${CURL[@]}" -o /dev/null -w '%{http_code}' "$@" 2>/dev/null; }
# N requests of one URL over one keep-alive connection; prints one code per line.
codes() {  # codes N URL
  local cfg="$TMP/curl.cfg"
  : >"$cfg"
  for ((i = 0; i < $1; i++)); do printf 'url = "%s&i=%d"\noutput = "/dev/null"\n' "$2" "$i" >>"$cfg"; done
  curl -sS --max-time 60 -w '%{http_code}\n' -K "$cfg"
}
header() {  # header NAME CURL-ARGS... : value of a response header
  local name=$1
  shift
  "${CURL[@]}" -o /dev/null -D - "$@" | tr -d '\r' | awk -v n="$name" 'tolower($1) == tolower(n) ":" { $1 = ""; sub(/^ /, ""); print }'
}

# --- defaults ---
check "default answer is 200 ok" "ok" "$("${CURL[@]}" "$U/")"
check "x-upstream-name" "smoke" "$(header x-upstream-name "$U/")"
check "x-upstream-seen counts requests" "3" "$(header x-upstream-seen "$U/")"

# --- status ---
check "status=404 always" "404" "$(code "$U/s?status=404")"
check "bad parameter is 400" "400" "$(code "$U/s?status=abc")"
check "1xx is refused as a status" "400" "$(code "$U/s?status=100")"
n503=$(codes 200 "$U/p?status=503:50" | grep -c '^503$')
n200=$(codes 200 "$U/p?status=503:50" | grep -c '^200$')
between "status=503:50 gives about half 503" 60 140 "$n503"
between "... and the rest 200" 60 140 "$n200"
others=$(codes 100 "$U/p?status=503:50,429:50" | grep -vc -e '^503$' -e '^429$')
check "status=503:50,429:50 never answers 200" "0" "$others"
check "percent-encoded list" "429" "$(code "$U/s?status=503%3A0%2C429%3A100")"
check "retry_after on a 503" "2" "$(header retry-after "$U/s?status=503&retry_after=2")"
check "retry_after not on a 200" "" "$(header retry-after "$U/s?retry_after=2")"

# --- fail_first ---
got=$(for _ in 1 2 3 4; do code "$U/f?fail_first=2&id=s1"; echo -n " "; done)
check "fail_first=2 by id=" "503 503 200 200 " "$got"
got=$(for _ in 1 2 3; do code -H "x-request-id: r-9" "$U/f?fail_first=1&fail_status=429"; echo -n " "; done)
check "fail_first by x-request-id, fail_status" "429 200 200 " "$got"
got=$(for _ in 1 2; do code "$U/f?fail_first=1&fail_status=reset&id=s2"; echo -n " "; done)
check "fail_status=reset resets the first" "000 200 " "$got"

# --- echo ---
head -c 300001 /dev/urandom >"$TMP/up.bin"
"${CURL[@]}" -H "Transfer-Encoding: chunked" --data-binary @"$TMP/up.bin" -o "$TMP/echo.bin" -D "$TMP/echo.h" \
  "$U/e?echo=1&id=echo1"
if cmp -s "$TMP/up.bin" "$TMP/echo.bin"; then pass "echo=1 returns a chunked body intact"; else fail "echo=1 body differs"; fi
check "x-body-bytes" "300001" "$(tr -d '\r' <"$TMP/echo.h" | awk 'tolower($1) == "x-body-bytes:" { print $2 }')"
check "x-body-fnv1a64 is 16 hex digits" "1" \
  "$(tr -d '\r' <"$TMP/echo.h" | grep -ciE '^x-body-fnv1a64: [0-9a-f]{16}$')"

# --- size ---
"${CURL[@]}" -o "$TMP/size.bin" "$U/z?size=100000"
printf '0123456789abcdef%.0s' $(seq 6250) >"$TMP/expect.bin"
if cmp -s "$TMP/size.bin" "$TMP/expect.bin"; then pass "size=100000 is the pattern"; else fail "size=100000 body"; fi
check "size=1MiB length" "1048576" "$("${CURL[@]}" -o /dev/null -w '%{size_download}' "$U/z?size=1MiB")"
check "HEAD announces the length, sends nothing" "4096 0" \
  "$("${CURL[@]}" -I -o /dev/null -D - "$U/z?size=4KiB" | tr -d '\r' | awk 'tolower($1) == "content-length:" { printf "%s ", $2 }')$(
    "${CURL[@]}" -I -o /dev/null -w '%{size_download}' "$U/z?size=4KiB")"

# --- delay, without blocking the loop ---
# (A lower bound: load only adds. The upper one only rules out the absurd.)
t=$("${CURL[@]}" -o /dev/null -w '%{time_total}' "$U/d?delay=300ms")
between "delay=300ms takes 300..10000 ms" 300 10000 "$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000 }')"
# Order, not time: a request that arrives while another waits out its delay
# is answered while that one still waits. The delayed one is in the log
# (written before the delay) before the second is sent.
curl -sS --max-time 60 -o /dev/null "$U/d?delay=30s&id=held" &
BG_PID=$!
for _ in $(seq 500); do grep -q '"id":"held"' "$TMP/log.jsonl" 2>/dev/null && break; sleep 0.02; done
check "a delayed request does not hold up others" "200" "$(code "$U/d")"
if kill -0 "$BG_PID" 2>/dev/null; then pass "... answered while the delayed one still waited"; else fail "the other request waited for the delayed one"; fi
kill "$BG_PID" 2>/dev/null
wait "$BG_PID" 2>/dev/null
BG_PID=""
check "delay=5s:0 never delays" "200" "$(code --max-time 1 "$U/d?delay=5s:0")"

# --- close, stall ---
"${CURL[@]}" -o /dev/null "$U/c?close=1" 2>/dev/null
rc=$?
if [[ $rc == 52 || $rc == 56 ]]; then pass "close=1: no answer (curl rc $rc)"; else fail "close=1: curl rc $rc"; fi
check "close=1:0 never closes" "200" "$(code "$U/c?close=1:0")"
out=$(curl -sS --max-time 1 -o /dev/null -w '%{http_code} %{size_download}' "$U/t?stall_body=1&size=2000" 2>/dev/null)
rc=$?
check "stall_body=1 sends headers and half the body, then stalls" "28 200 1000" "$rc $out"

# --- log and stats ---
"${CURL[@]}" -o /dev/null -H "x-envoy-attempt-count: 2" -H "x-timeout-budget: 750" -H "Idempotency-Key: k1" \
  -X POST --data-binary "abc" "$U/l?id=logged&status=503"
stats=$("${CURL[@]}" "$U/__stats")
lines=$(wc -l <"$TMP/log.jsonl")
requests=$(echo "$stats" | sed -E 's/.*"requests": ([0-9]+).*/\1/')
check "/__stats requests equals log lines" "$lines" "$requests"
last=$(tail -1 "$TMP/log.jsonl")
for want in '"id":"logged"' '"status":503' '"method":"POST"' '"uri":"/l?id=logged&status=503"' \
  '"x-envoy-attempt-count":"2"' '"x-timeout-budget":"750"' '"idempotency-key":"k1"' '"body_bytes":3' \
  '"content-length":"3"' '"name":"smoke"'; do
  if [[ "$last" == *"$want"* ]]; then pass "log has $want"; else fail "log lacks $want: $last"; fi
done
if grep -q '"id":"s2","status":0,"reset":true' "$TMP/log.jsonl"; then pass "log marks resets"; else fail "no reset in log"; fi
if command -v python3 >/dev/null; then
  if python3 -c 'import json, sys; [json.loads(l) for l in open(sys.argv[1])]' "$TMP/log.jsonl"; then
    pass "every log line is JSON"
  else
    fail "log is not JSON lines"
  fi
fi

# --- SIGTERM ---
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=""
check "SIGTERM exits 0" "0" "$rc"

if ((FAILS)); then
  echo "--- upstream stderr:"
  cat "$TMP/stderr"
  echo "$FAILS check(s) failed"
  exit 1
fi
echo "all checks passed"
