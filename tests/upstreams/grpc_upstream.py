#!/usr/bin/python3
"""mulligan-grpc-upstream: a scriptable gRPC server (Debian's python3-grpcio)
for tests and the demo, the gRPC counterpart of mulligan-test-upstream.

Every method of every service is served (a generic handler; messages are raw
bytes, no protoc needed). What a call does is scripted by its request
metadata:

  x-sleep-ms: N        sleep N ms before answering (a slow server)
  x-fail-first: N      with x-id: the first N calls with that id fail ...
  x-fail-code: NAME    ... with this status (default UNAVAILABLE)
  x-stream: N          a server-streaming method (any method name ending in
                       "Stream") sends N messages (default 3) ...
  x-stream-fail: NAME  ... then ends with this status instead of OK

A unary call answers its request bytes back. Each call is logged as one JSON
line (--log): method, id, the metadata the sidecar adds (x-envoy-attempt-
count, grpc-previous-rpc-attempts, x-timeout-budget), the deadline the call
arrived with (time_remaining_ms, null when none), and the status answered.

usage: grpc_upstream.py [--listen HOST:PORT] [--port-file FILE] [--log FILE]
"""
import argparse
import json
import os
import sys
import threading
import time
from concurrent import futures

import grpc

_counts = {}
_lock = threading.Lock()


def _metadata(context):
    return {k: v for k, v in context.invocation_metadata()}


class Upstream:
    def __init__(self, log_path):
        self.log = open(log_path, "a") if log_path else None

    def record(self, method, md, context, status):
        if not self.log:
            return
        left = context.time_remaining()
        if left is not None and left > 1e9:  # grpcio's way of saying "no deadline"
            left = None
        rec = {
            "method": method,
            "id": md.get("x-id"),
            "x-envoy-attempt-count": md.get("x-envoy-attempt-count"),
            "grpc-previous-rpc-attempts": md.get("grpc-previous-rpc-attempts"),
            "x-timeout-budget": md.get("x-timeout-budget"),
            "time_remaining_ms": None if left is None else round(left * 1000, 1),
            "status": status,
        }
        with _lock:
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()

    def failure(self, md):
        """The status this call must fail with, or None."""
        n = int(md.get("x-fail-first", "0"))
        if n <= 0:
            return None
        key = md.get("x-id", "")
        with _lock:
            seen = _counts.get(key, 0) + 1
            _counts[key] = seen
        if seen <= n:
            return getattr(grpc.StatusCode, md.get("x-fail-code", "UNAVAILABLE").upper())
        return None

    def unary(self, method):
        def handle(request, context):
            md = _metadata(context)
            code = self.failure(md)
            self.record(method, md, context, code.name if code else "OK")
            if code:
                context.abort(code, "scripted failure")
            time.sleep(int(md.get("x-sleep-ms", "0")) / 1000)
            return request
        return handle

    def server_stream(self, method):
        def handle(request, context):
            md = _metadata(context)
            fail = md.get("x-stream-fail")
            self.record(method, md, context, fail.upper() if fail else "OK")
            time.sleep(int(md.get("x-sleep-ms", "0")) / 1000)
            for i in range(int(md.get("x-stream", "3"))):
                yield b"message %d" % i
            if fail:
                context.abort(getattr(grpc.StatusCode, fail.upper()), "scripted stream failure")
        return handle


class Handler(grpc.GenericRpcHandler):
    def __init__(self, upstream):
        self.upstream = upstream

    def service(self, details):
        method = details.method
        if method.endswith("Stream"):
            return grpc.unary_stream_rpc_method_handler(self.upstream.server_stream(method))
        return grpc.unary_unary_rpc_method_handler(self.upstream.unary(method))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--port-file")
    p.add_argument("--log")
    args = p.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((Handler(Upstream(args.log)),))
    port = server.add_insecure_port(args.listen)
    if port == 0:
        print(f"grpc_upstream: cannot listen on {args.listen}", file=sys.stderr)
        return 1
    server.start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"listening {args.listen.rsplit(':', 1)[0]}:{port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
