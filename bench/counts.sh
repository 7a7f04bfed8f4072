#!/usr/bin/env bash
# Counts per proxied request that the machine's load does not change, for
# the sidecar in a given configuration and for HAProxy (one worker / thread
# each), under one fixed load:
#   h2load --h1 -n N -c C  (keep-alive) through the proxy to mulligan-test-upstream.
# Not a benchmark: the lead's scripts/bench makes issue 18's table; these are
# the counts its cuts are judged by on a shared machine.
#
# usage: bench/counts.sh [--bin DIR] [--n N] [--c 32] [--strace | --callgrind |
#                        --propagation [--publishes 200]] TARGET...
#   TARGET: haproxy | epoll | epoll-send | uring | epoll-notable | epoll-all | uring-notable | uring-all
#           (epoll = --io-uring off --access-log off, its sends batched through
#           Linux AIO; epoll-send = the same with --aio off, one send(2) each;
#           uring = --access-log off;
#           -notable / -all: the access log as shipped, on stdout into a FIFO
#           read by dd, with that --access-log-filter)
#   (default)  read/write-family calls per request (/proc/PID/task/*/io
#              syscr/syscw: sendto is in neither), CPU time per request (the
#              one figure the machine's load moves: compare side by side
#              only), and VmRSS idle after start and after the runs
#   --strace   also strace -c -f: every system call per request in the
#              keep-alive run, and per connection in a run of 2000
#              connections of one request each (Connection: close, -c 1)
#   --nstat    instead: TCP segments per request (nstat's TcpOutSegs,
#              TcpExtDelayedACKs, TcpExtTCPPureAcksRx, TcpExtTCPAutoCorking...)
#              of the whole keep-alive exchange (client, proxy, upstream), in a
#              network namespace of its own (unshare -n: no other traffic
#              counted; needs root).
#   --callgrind  instead: user-space instructions per request, the proxy
#              under valgrind --tool=callgrind, counted during the measured
#              run only (perf's instructions:u needs hardware counters, which
#              this VM lacks); N defaults to 5000 then. CG_KEEP=DIR keeps the
#              profiles for callgrind_annotate.
#   --propagation  instead: policy propagation under load (issue 18: p99 <= 1
#              ms). h2load --h1 -c C loads service "bench" while
#              bench/propagation.py republishes a changed policy (service
#              "prop" moves between upstreams A and B) --publishes times;
#              prints its line (inside_*: the sidecar's own record,
#              mulligan_policy_propagation_seconds) and the histogram.
#   PRIO=... / HPRIO=...: a command prefix for the sidecar / h2load (e.g.
#              "nice -n -15") to see what the machine's scheduling adds.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin N="" C=32 STRACE=0 CALLGRIND=0 PROP=0 PUBLISHES=200 NSTAT=0
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --n) N=$2; shift 2 ;;
    --c) C=$2; shift 2 ;;
    --strace) STRACE=1; shift ;;
    --callgrind) CALLGRIND=1; shift ;;
    --nstat) NSTAT=1; shift ;;
    --propagation) PROP=1; shift ;;
    --publishes) PUBLISHES=$2; shift 2 ;;
    -h|--help) sed -n '2,41p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || { sed -n '2,41p' "$0"; exit 2; }
if [ "$NSTAT" = 1 ] && [ -z "${COUNTS_NETNS:-}" ]; then
  # The counters are the namespace's: only this run's loopback traffic.
  exec unshare -n env COUNTS_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" --bin "$BIN" --c "$C" ${N:+--n "$N"} --nstat "${targets[@]}"
fi
[ -n "$N" ] || { [ "$CALLGRIND" = 1 ] && N=5000 || N=30000; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
shm="mulligan-counts-$$"

wait_file() { local i; for i in $(seq 400); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "no $1" >&2; exit 1; }

"$BIN/mulligan-test-upstream" --listen 127.0.0.1:0 --port-file "$tmp/up.port" --name bench --quiet > /dev/null &
pids+=($!)
wait_file "$tmp/up.port"; up=$(head -1 "$tmp/up.port")
policy() {  # policy PROP_UPSTREAM_PORT
cat <<TOML
version = 1
[defaults]
connect_timeout = "1s"
request_timeout = "15s"
[defaults.retry]
retry_on = ["connect-failure", "reset", "refused-stream", "502", "503", "504"]
num_retries = 8
backoff_base = "1us"
backoff_max = "1us"
[[service]]
name = "bench"
hosts = ["bench"]
upstream = "127.0.0.1:$up"
[[service]]
name = "prop"
hosts = ["prop"]
upstream = "127.0.0.1:$1"
TOML
}
for x in a b; do
  "$BIN/mulligan-test-upstream" --listen 127.0.0.1:0 --port-file "$tmp/up-$x.port" --name "${x^^}" --quiet > /dev/null &
  pids+=($!)
done
wait_file "$tmp/up-a.port"; wait_file "$tmp/up-b.port"
policy "$(head -1 "$tmp/up-a.port")" > "$tmp/policy.toml"
policy "$(head -1 "$tmp/up-b.port")" > "$tmp/policy-b.toml"
"$BIN/mulligan-agent" publish --policy "$tmp/policy.toml" --shm "$shm" > /dev/null
trap 'cleanup; "$BIN/mulligan-agent" unpublish --shm "$shm" >/dev/null 2>&1 || rm -f "/dev/shm/$shm"' EXIT

# start TARGET: sets PID and PORT.
start() {
  local t=$1 args=(--shm "$shm" --outbound 127.0.0.1:0 --admin 127.0.0.1:0 --workers 1 --drain-timeout 1)
  case $t in
    haproxy)
      cat > "$tmp/haproxy.cfg" <<CFG
global
  nbthread 1
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 15s
  timeout http-keep-alive 60s
  retries 8
  retry-on conn-failure empty-response 502 503 504
  option http-keep-alive
  http-reuse always
frontend fe_h1
  bind fd@3
  default_backend be_h1
backend be_h1
  server up 127.0.0.1:$up
CFG
      python3 bench/listen_fds.py 1 "$tmp/haproxy.port" -- "${VG[@]}" haproxy -f "$tmp/haproxy.cfg" > "$tmp/$t.log" 2>&1 &
      PID=$!; pids+=($PID)
      wait_file "$tmp/haproxy.port"; PORT=$(head -1 "$tmp/haproxy.port")
      local i; for i in $(seq 100); do [ "$(readlink /proc/$PID/exe)" != "$(readlink -f "$(command -v python3)")" ] && break; sleep 0.05; done
      return ;;
    epoll) args+=(--io-uring off --access-log off) ;;
    epoll-send) args+=(--io-uring off --aio off --access-log off) ;;
    uring) args+=(--access-log off) ;;
    epoll-notable) args+=(--io-uring off) ;;
    epoll-all) args+=(--io-uring off --access-log-filter all) ;;
    uring-notable) ;;
    uring-all) args+=(--access-log-filter all) ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  rm -f "$tmp/$t.fifo"; mkfifo "$tmp/$t.fifo"
  dd if="$tmp/$t.fifo" of=/dev/null bs=64k status=none &
  pids+=($!)
  ${PRIO:-} "${VG[@]}" "$BIN/mulligan-sidecar" "${args[@]}" > "$tmp/$t.fifo" 2> "$tmp/$t.log" &
  PID=$!; pids+=($PID)
  local i; for i in $(seq 1200); do grep -q 'listening admin' "$tmp/$t.log" && break; sleep 0.05; done
  PORT=$(sed -n 's/.*listening outbound 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$t.log" | head -1)
  [ -n "$PORT" ] || { cat "$tmp/$t.log" >&2; exit 1; }
}

io_sum() {  # io_sum PID FIELD: summed over the process's threads
  cat /proc/"$1"/task/*/io 2>/dev/null | awk -v f="$2:" '$1 == f { s += $2 } END { print s + 0 }'
}
cpu() { awk '{ print $14, $15 }' "/proc/$1/stat"; }   # utime stime (ticks), all threads
load() {  # load PORT N C [extra h2load args]
  h2load --h1 -n "$2" -c "$3" -H ":authority: bench" "${@:4}" "http://127.0.0.1:$1/" > "$tmp/h2load.out" 2>&1
  grep -q "$2 succeeded" "$tmp/h2load.out" || { echo "h2load: not all succeeded:" >&2; grep -E 'requests:|status codes' "$tmp/h2load.out" >&2; }
}

VG=()
if [ "$PROP" = 1 ]; then
  for t in "${targets[@]}"; do
    start "$t"
    admin=$(sed -n 's/.*listening admin 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$t.log" | head -1)
    ${HPRIO:-} h2load --h1 -n 100000000 -c "$C" -H ":authority: bench" "http://127.0.0.1:$PORT/" > /dev/null 2>&1 &
    hpid=$!; pids+=($hpid)
    sleep 0.5
    echo "$t propagation under h2load --h1 -c $C: $(python3 bench/propagation.py --agent "$BIN/mulligan-agent" --shm "$shm" \
      --policy-a "$tmp/policy.toml" --policy-b "$tmp/policy-b.toml" --port "$PORT" --admin "$admin" --host prop \
      --publishes "$PUBLISHES")"
    curl -s "http://127.0.0.1:$admin/metrics" | grep '^mulligan_policy_propagation_seconds' | tr '\n' ' ' | sed "s/^/$t histogram: /"; echo
    kill "$hpid" 2>/dev/null || true; wait "$hpid" 2>/dev/null || true
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
  exit 0
fi
if [ "$NSTAT" = 1 ]; then
  export NSTAT_HISTORY="$tmp/nstat.history"
  for t in "${targets[@]}"; do
    start "$t"
    sleep 0.5
    load "$PORT" 2000 "$C"   # warm: pools, upstream connections
    nstat -n
    load "$PORT" "$N" "$C"
    nstat > "$tmp/nstat.txt"
    awk -v t="$t" -v n="$N" '
      { v[$1] = $2 }
      END {
        printf "%s keepalive per request: TcpOutSegs=%.3f TcpInSegs=%.3f DelayedACKs=%.3f PureAcksRx=%.3f HPAcks=%.3f AutoCorking=%.3f TCPBacklogCoalesce=%.3f\n", t,
          v["TcpOutSegs"] / n, v["TcpInSegs"] / n, v["TcpExtDelayedACKs"] / n, v["TcpExtTCPPureAcks"] / n + v["TcpExtTCPPureAcksRx"] / n,
          v["TcpExtTCPHPAcks"] / n, v["TcpExtTCPAutoCorking"] / n, v["TcpExtTCPBacklogCoalesce"] / n
      }' "$tmp/nstat.txt"
    [ -z "${NSTAT_KEEP:-}" ] || cp "$tmp/nstat.txt" "$NSTAT_KEEP/nstat.$t.txt"
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
  exit 0
fi
if [ "$CALLGRIND" = 1 ]; then
  for t in "${targets[@]}"; do
    VG=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$tmp/cg.$t.%p")
    start "$t"
    sleep 0.5
    load "$PORT" 1000 "$C"   # warm
    callgrind_control -i on "$PID" > /dev/null
    load "$PORT" "$N" "$C"
    callgrind_control -i off "$PID" > /dev/null
    kill "$PID"; wait "$PID" 2>/dev/null || true
    ins=$(cat "$tmp"/cg."$t".* | awk '/^(totals|summary):/ { s += $2 } END { print s + 0 }')
    awk -v t="$t" -v n="$N" -v i="$ins" 'BEGIN { printf "%s keepalive callgrind instructions/req=%.0f\n", t, i / n }'
    [ -z "${CG_KEEP:-}" ] || cp "$tmp"/cg."$t".* "$CG_KEEP"/
    rm -f "$tmp"/cg."$t".*
  done
  exit 0
fi
for t in "${targets[@]}"; do
  start "$t"
  sleep 0.5
  curl -s -o /dev/null -w "$t: a first request: %{http_code}\n" -H "host: bench" "http://127.0.0.1:$PORT/" >&2 || true
  printf '%s idle VmRSS_kB=%s (started, no request yet)\n' "$t" "$(awk '/^VmRSS:/ {print $2}' /proc/$PID/status)"
  load "$PORT" 2000 "$C"   # warm: pools, buffers, upstream connections
  r0=$(io_sum "$PID" syscr); w0=$(io_sum "$PID" syscw); read -r u0 s0 < <(cpu "$PID")
  load "$PORT" "$N" "$C"
  r1=$(io_sum "$PID" syscr); w1=$(io_sum "$PID" syscw); read -r u1 s1 < <(cpu "$PID")
  # CPU time is the one figure here the machine's load moves (caches,
  # frequency); read it as a ratio between targets measured side by side.
  awk -v t="$t" -v n="$N" -v r=$((r1 - r0)) -v w=$((w1 - w0)) -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s keepalive syscr/req=%.3f syscw/req=%.3f cpu_us/req=%.2f (user %.2f, sys %.2f)\n",
             t, r / n, w / n, (u + s) * 1e6 / hz / n, u * 1e6 / hz / n, s * 1e6 / hz / n }'
  if [ "$STRACE" = 1 ]; then
    strace -c -f -p "$PID" -o "$tmp/strace.txt" 2>/dev/null &
    spid=$!
    sleep 1
    load "$PORT" "$N" "$C"
    sleep 0.3
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true
    awk -v t="$t" -v n="$N" '$NF == "total" { tot = $4 } NF >= 5 && $1 ~ /^[0-9.]+$/ && $NF != "total" { c[$NF] = $4 }
      END { printf "%s keepalive strace syscalls/req=%.3f:", t, tot / n; for (k in c) printf " %s=%.3f", k, c[k] / n; printf "\n" }' "$tmp/strace.txt"
    # Accept time: connections that each make one request and close.
    strace -c -f -p "$PID" -o "$tmp/strace-acc.txt" 2>/dev/null &
    spid=$!
    sleep 1
    load "$PORT" 2000 1 -H "connection: close"
    sleep 0.3
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true
    awk -v t="$t" -v n=2000 '$NF == "total" { tot = $4 } NF >= 5 && $1 ~ /^[0-9.]+$/ && $NF != "total" { c[$NF] = $4 }
      END { printf "%s close (1 request per connection) strace syscalls/conn=%.3f:", t, tot / n; for (k in c) printf " %s=%.3f", k, c[k] / n; printf "\n" }' "$tmp/strace-acc.txt"
  fi
  printf '%s loaded VmRSS_kB=%s (after the runs)\n' "$t" "$(awk '/^VmRSS:/ {print $2}' /proc/$PID/status)"
  kill "$PID"; wait "$PID" 2>/dev/null || true
done
