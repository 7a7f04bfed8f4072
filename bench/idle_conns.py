#!/usr/bin/env python3
"""RSS per idle keep-alive connection of a proxy.

usage: idle_conns.py --port P --pid PID [--host H] [--conns N] [--settle S]

Opens N connections to 127.0.0.1:P, sends one GET on each and reads its
answer (so each connection is a live keep-alive connection the proxy has
served, with whatever it keeps per connection), then holds them idle. Prints
one line of key=value fields:

  before_kib=  after_kib=  conns=N  per_conn_bytes=(after - before) * 1024 / N  failed=

RSS is VmRSS of PID from /proc. "before" is taken after a few warm-up
connections, so one-off allocations are not charged to the N.
"""
import argparse
import socket
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(sock, host, i):
    sock.sendall(b"GET /?idle=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host.encode()))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))


def open_conns(port, host, n, start):
    socks, failed = [], 0
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            request(s, host, start + i)
            socks.append(s)
        except (OSError, ConnectionError):
            failed += 1
            s.close()
    return socks, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--host", default="bench")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=1.0)
    a = ap.parse_args()

    warm, _ = open_conns(a.port, a.host, 20, 0)
    time.sleep(a.settle)
    before = rss_kib(a.pid)
    socks, failed = open_conns(a.port, a.host, a.conns, 100)
    time.sleep(a.settle)
    after = rss_kib(a.pid)
    for s in socks + warm:
        s.close()
    per = (after - before) * 1024.0 / max(1, len(socks))
    print("before_kib=%d after_kib=%d conns=%d per_conn_bytes=%.0f failed=%d" % (before, after, len(socks), per, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
