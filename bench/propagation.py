#!/usr/bin/env python3
"""Policy propagation: `mulligan-agent publish` returning -> the sidecar enforcing it.

usage: propagation.py --agent BIN --shm NAME --policy-a FILE --policy-b FILE
                      --port SIDECAR_PORT [--admin ADMIN_PORT] [--host prop] [--publishes 50]

The two policies differ only in the upstream of the service HOST: test
upstream A or test upstream B, which say so in x-upstream-name. Each round
publishes the other policy, and from the moment `publish` returns sends GETs
(Host: HOST) back to back on one keep-alive connection to the sidecar until
one is answered by the new upstream. Run it while something else loads the
sidecar (scripts/bench runs wrk on another service).

Prints one line of key=value fields (milliseconds):
  inside_n= inside_p50_ms= inside_p99_ms= inside_max_ms=
                                   (with --admin) the sidecar's own record of each publish
                                   (/stats policy.propagation.last_us, issue 18): from the agent's
                                   publish stamp in the segment (taken just before the generation
                                   is announced), or from the start of the first request after it
                                   when that came later, to the worker having the table loaded for
                                   that request, i.e. that request starting to enforce it. Recorded
                                   by the first request that enforces it; when the worker's idle
                                   tick (250 ms) loaded the table before that request came, the
                                   record is 0 (that request waited for nothing).
                                   inside_missing= counts publishes the sidecar has no record of
                                   (only an agent that does not stamp; before the fix of issue 18's
                                   "missed: 1 publishes without a record", a table the tick loaded
                                   first got none)
  n=  p50_ms= p99_ms= max_ms=      publish returned -> the answer to the first request
                                   that saw the new policy (an upper bound: it includes
                                   that request's own round trip through the loaded sidecar)
  send_p50_ms= send_p99_ms=        publish returned -> that request sent (0 when the very
                                   first request after publish already saw it)
  stale=                           requests answered by the old upstream after publish returned
  publish_p50_ms=                  how long `mulligan-agent publish` itself took (process included)
  rtt_p50_ms= rtt_p99_ms=          the same request between publishes (no policy change): the
                                   round trip the first figure cannot go below
  failed=                          rounds with no sign of the new policy within 5 s
"""
import argparse
import json
import random
import socket
import subprocess
import sys
import time


class Conn:
    def __init__(self, port, host):
        self.port, self.host, self.sock, self.buf = port, host.encode(), None, b""

    def get(self, i):
        """One GET; returns the x-upstream-name of the answer ('' if none)."""
        for attempt in range(2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buf = b""
                self.sock.sendall(b"GET /?prop=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, self.host))
                return self._read()
            except (OSError, ConnectionError):
                if self.sock:
                    self.sock.close()
                self.sock = None
                if attempt:
                    raise
        return ""

    def _read(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length, name, close = 0, "", False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            k, v = k.strip().lower(), v.strip()
            if k == b"content-length":
                length = int(v)
            elif k == b"x-upstream-name":
                name = v.decode()
            elif k == b"connection" and v.lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            rest += chunk
        self.buf = rest[length:]
        if close:
            self.sock.close()
            self.sock = None
        return name


def policy_stats(admin_port):
    """The "policy" object of the sidecar's GET /stats."""
    with socket.create_connection(("127.0.0.1", admin_port), timeout=10) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])["policy"]


def pct(values, p):
    v = sorted(values)
    if not v:
        return 0.0
    rank = max(1, int(round(p / 100.0 * len(v) + 0.5 - 1e-9)))
    return v[min(rank, len(v)) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--shm", required=True)
    ap.add_argument("--policy-a", required=True)
    ap.add_argument("--policy-b", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--admin", type=int, default=0, help="the sidecar's admin port: adds inside_*")
    ap.add_argument("--host", default="prop")
    ap.add_argument("--publishes", type=int, default=50)
    a = ap.parse_args()

    conn = Conn(a.port, a.host)
    policies = {"A": a.policy_a, "B": a.policy_b}
    i = 0
    current = conn.get(i)
    if current not in policies:
        print("n=0 failed=1 error=unexpected_upstream_%r" % current)
        return 1
    total, send, stale, pub, failed, rtt = [], [], 0, [], 0, []
    inside, missing = [], 0
    for _ in range(a.publishes):
        want = "B" if current == "A" else "A"
        generation_before = policy_stats(a.admin)["generation"] if a.admin else 0
        p0 = time.perf_counter()
        subprocess.run([a.agent, "publish", "--policy", policies[want], "--shm", a.shm],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        pub.append((t0 - p0) * 1000)
        while True:
            i += 1
            ts = time.perf_counter()
            got = conn.get(i)
            tr = time.perf_counter()
            if got == want:
                total.append((tr - t0) * 1000)
                send.append((ts - t0) * 1000)
                break
            stale += 1
            if tr - t0 > 5:
                failed += 1
                break
        current = want
        if a.admin:
            policy = policy_stats(a.admin)
            prop = policy.get("propagation") or {}
            if (policy["generation"] > generation_before and prop.get("last_generation") == policy["generation"]
                    and prop.get("last_us") is not None):
                inside.append(prop["last_us"] / 1000)
            else:
                missing += 1
        # The same request between publishes: its latency is what the first
        # request after a publish would take if the publish cost nothing.
        for _ in range(5):
            time.sleep(random.uniform(0.002, 0.01))
            i += 1
            ts = time.perf_counter()
            conn.get(i)
            rtt.append((time.perf_counter() - ts) * 1000)
    if a.admin:
        print("inside_n=%d inside_p50_ms=%.3f inside_p99_ms=%.3f inside_max_ms=%.3f inside_missing=%d "
              % (len(inside), pct(inside, 50), pct(inside, 99), max(inside or [0]), missing), end="")
    print("n=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f send_p50_ms=%.3f send_p99_ms=%.3f stale=%d "
          "publish_p50_ms=%.1f failed=%d rtt_p50_ms=%.3f rtt_p99_ms=%.3f"
          % (len(total), pct(total, 50), pct(total, 99), max(total or [0]), pct(send, 50), pct(send, 99), stale,
             pct(pub, 50), failed, pct(rtt, 50), pct(rtt, 99)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
