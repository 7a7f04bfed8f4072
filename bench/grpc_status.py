#!/usr/bin/env python3
"""Client-side gRPC outcome of unary calls, which h2load cannot see (a failed
gRPC call is HTTP 200 with a grpc-status trailer, counted as a success by h2load).

usage: grpc_status.py --port P --authority A --method /pkg.Svc/Method[?query]
                      [--calls 2000] [--inflight 64]

Sends CALLS unary calls (payload: protobuf { 1: "hello" }, raw bytes: no stubs
needed) with at most INFLIGHT outstanding, through 127.0.0.1:P with
:authority A, and prints: calls= ok= failed= codes=CODE:N,...
Needs grpcio (Debian: python3-grpcio).
"""
import argparse
import collections
import threading

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--authority", required=True)
    ap.add_argument("--method", required=True)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--inflight", type=int, default=64)
    a = ap.parse_args()
    channel = grpc.insecure_channel("127.0.0.1:%d" % a.port, options=[("grpc.default_authority", a.authority)])
    call = channel.unary_unary(a.method)   # bytes in, bytes out
    sem = threading.Semaphore(a.inflight)
    codes = collections.Counter()
    lock = threading.Lock()
    done = threading.Event()
    remaining = [a.calls]

    def finished(fut):
        try:
            fut.result()
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        with lock:
            codes[code] += 1
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        sem.release()

    for _ in range(a.calls):
        sem.acquire()
        call.future(b"\x0a\x05hello", timeout=10).add_done_callback(finished)
    done.wait(60)
    ok = codes.get("OK", 0)
    print("calls=%d ok=%d failed=%d codes=%s" % (a.calls, ok, sum(codes.values()) - ok,
                                                 ",".join("%s:%d" % kv for kv in sorted(codes.items()))))
    channel.close()


if __name__ == "__main__":
    main()
