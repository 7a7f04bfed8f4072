#!/usr/bin/env python3
"""h2load output + its --log-file -> the BENCH/DIST lines of bench/wrk_report.lua.

usage: h2load_summary.py H2LOAD_STDOUT H2LOAD_LOG_FILE

h2load prints no percentiles; its log has one line per finished request:
start time (us since the epoch), HTTP status, microseconds to the end of the
response. Percentiles are taken from that log (nearest rank), latency as wrk
counts it: request sent to response complete. "status" counts 4xx and 5xx;
"read" counts h2load's errored requests (stream reset, connection lost).
"""
import re
import sys

POINTS = [1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    rank = max(1, int(round(p / 100.0 * len(sorted_values) + 0.5 - 1e-9)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def main():
    out = open(sys.argv[1], errors="replace").read()
    m = re.search(r"finished in ([0-9.]+)(m?s)", out)
    if not m:
        sys.stdout.write(out[-2000:])
        return 1
    secs = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    done, errored, timeout = int(req.group(3)), int(req.group(6)), int(req.group(7))
    status = int(codes.group(3)) + int(codes.group(4)) if codes else 0
    lat = []
    try:
        with open(sys.argv[2]) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] != "-1":
                    lat.append(int(parts[2]))
    except FileNotFoundError:
        pass
    lat.sort()
    requests = done - errored - timeout
    print("BENCH requests=%d duration_us=%d status=%d connect=0 read=%d write=0 timeout=%d "
          "p50=%.1f p99=%.1f p999=%.1f" % (requests, secs * 1e6, status, errored, timeout,
                                           percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9)))
    print("DIST " + " ".join("%g:%.1f" % (p, percentile(lat, p)) for p in POINTS)
          + " 100:%.1f" % (lat[-1] if lat else 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
