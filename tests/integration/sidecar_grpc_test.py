"""gRPC through mulligan-sidecar with Debian's python3-grpcio on both sides
(generic handlers on raw bytes: no protoc needed): deadlines (route timeout
vs the client's, as the server sees them), retries on gRPC status codes with
grpc-previous-rpc-attempts, pushback, streaming calls passing through, and
the sidecar's own failures in gRPC form."""
import json
import threading
import time
import unittest
from concurrent import futures

from harness import Stack, wait_for

try:
    import grpc
except ImportError:  # pragma: no cover - CI installs python3-grpcio
    grpc = None


def identity(b):
    return b


class Recorder:
    """What the test server saw: per method, one entry per attempt."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}

    def add(self, method, context, **extra):
        md = dict(context.invocation_metadata())
        entry = {"metadata": md, "time_remaining": context.time_remaining(), **extra}
        with self.lock:
            self.calls.setdefault(method, []).append(entry)
        return len(self.calls[method])

    def get(self, method):
        with self.lock:
            return list(self.calls.get(method, []))


def make_server(rec):
    def slow(req, context):
        rec.add("Slow", context)
        time.sleep(2)
        return b"late"

    def flaky(req, context):
        n = rec.add("Flaky", context)
        if n <= 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"not yet ({n})")
        return b"ok:" + req

    def pushback_refused(req, context):
        rec.add("PushbackRefused", context)
        context.set_trailing_metadata([("grpc-retry-pushback-ms", "-1")])
        context.abort(grpc.StatusCode.UNAVAILABLE, "go away")

    def pushback(req, context):
        n = rec.add("Pushback", context, at=time.monotonic())
        if n == 1:
            context.set_trailing_metadata([("grpc-retry-pushback-ms", "150")])
            context.abort(grpc.StatusCode.UNAVAILABLE, "later")
        return b"done"

    def echo(req, context):
        rec.add("Echo", context)
        return req

    def stream_then_fail(req, context):
        rec.add("StreamThenFail", context)
        yield b"first"
        context.abort(grpc.StatusCode.UNAVAILABLE, "broke after the first message")

    def count_up(req, context):
        rec.add("CountUp", context)
        for i in range(int(req.decode())):
            yield str(i).encode()

    def total(it, context):
        rec.add("Total", context)
        return str(sum(int(m.decode()) for m in it)).encode()

    def chat(it, context):
        rec.add("Chat", context)
        for m in it:
            yield b"re:" + m

    def firehose(req, context):
        # As many 64 KiB messages as flow control lets through.
        chunk = b"z" * 65536
        for i in range(2000):
            if not context.is_active():
                break
            rec.add("FirehoseSent", context, i=i)
            yield chunk

    def hang(req, context):
        rec.add("Hang", context)
        t0 = time.monotonic()
        while context.is_active() and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        rec.add("HangEnded", context, active=context.is_active(), after=time.monotonic() - t0)
        return b"late"

    def stall_stream(req, context):
        rec.add("StallStream", context)
        yield b"first"
        t0 = time.monotonic()
        while context.is_active() and time.monotonic() - t0 < 3:
            time.sleep(0.01)
        rec.add("StallStreamEnded", context, active=context.is_active(), after=time.monotonic() - t0)

    def headers_then_unavailable(req, context):
        n = rec.add("HeadersThenUnavailable", context)
        if n <= 2:
            context.send_initial_metadata((("x-early", "1"),))  # headers first, then the error
            context.abort(grpc.StatusCode.UNAVAILABLE, f"not yet ({n})")
        return b"ok"

    def nap(req, context):
        rec.add("Nap", context)
        time.sleep(0.4)
        return b"rested"

    ser = dict(request_deserializer=identity, response_serializer=identity)
    handlers = {
        "Slow": grpc.unary_unary_rpc_method_handler(slow, **ser),
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky, **ser),
        "PushbackRefused": grpc.unary_unary_rpc_method_handler(pushback_refused, **ser),
        "Pushback": grpc.unary_unary_rpc_method_handler(pushback, **ser),
        "Echo": grpc.unary_unary_rpc_method_handler(echo, **ser),
        "StreamThenFail": grpc.unary_stream_rpc_method_handler(stream_then_fail, **ser),
        "CountUp": grpc.unary_stream_rpc_method_handler(count_up, **ser),
        "Total": grpc.stream_unary_rpc_method_handler(total, **ser),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, **ser),
        "Firehose": grpc.unary_stream_rpc_method_handler(firehose, **ser),
        "Hang": grpc.unary_unary_rpc_method_handler(hang, **ser),
        "HangNoPropagate": grpc.unary_unary_rpc_method_handler(hang, **ser),
        "Nap": grpc.unary_unary_rpc_method_handler(nap, **ser),
        "HeadersThenUnavailable": grpc.unary_unary_rpc_method_handler(headers_then_unavailable, **ser),
        "StallStream": grpc.unary_stream_rpc_method_handler(stall_stream, **ser),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


POLICY = """version = 1
[defaults]
request_timeout = "10s"

[[service]]
name = "grpc-test"
hosts = ["grpc-test"]
upstream = "127.0.0.1:{port}"
retry = {{ retry_on = ["unavailable", "connect-failure", "refused-stream"], num_retries = 3, backoff_base = "5ms", backoff_max = "10ms" }}

  [[service.route]]
  grpc = "test.Svc/Slow"
  request_timeout = "300ms"

  [[service.route]]
  grpc = "test.Svc/StallStream"
  request_timeout = "300ms"

  [[service.route]]
  grpc = "test.Svc/HangNoPropagate"
  request_timeout = "300ms"
  deadline = {{ propagate = false }}
"""


@unittest.skipIf(grpc is None, "python3-grpcio is not installed")
class GrpcTest(Stack):
    def setUp(self):
        super().setUp()
        self.rec = Recorder()
        self.server, self.grpc_port = make_server(self.rec)
        self.addCleanup(self.server.stop, 0)

    def sidecar(self, port=None):
        self.publish(POLICY.format(port=port or self.grpc_port))
        self.start_sidecar()
        ch = grpc.insecure_channel(f"127.0.0.1:{self.outbound_port}",
                                   options=[("grpc.default_authority", "grpc-test"),
                                            ("grpc.enable_retries", 0)])
        self.addCleanup(ch.close)
        return ch

    def unary(self, ch, method):
        return ch.unary_unary(f"/test.Svc/{method}", request_serializer=identity, response_deserializer=identity)

    def records(self, n):
        return wait_for(lambda: len(self.access_records()) >= n and self.access_records(), what="access log")

    def test_H2ToH2_GrpcRouteTimeoutEndsTheCallWithDeadlineExceeded(self):
        ch = self.sidecar()
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary(ch, "Slow")(b"x", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        # Whichever fires first: the sidecar's timer, or the server's own
        # timer for the grpc-timeout the sidecar sent it (both are 300 ms).
        # That the sidecar enforces its own deadline when the server does
        # not is HangNoPropagate's test below; here, that the deadline is the
        # route's 300 ms, not the client's 5 s, as the sidecar recorded it.
        self.assertIn(cm.exception.details(), ("upstream request timeout", "Deadline Exceeded"))
        # The server was told the smaller deadline: the route's 300 ms.
        seen = self.rec.get("Slow")
        self.assertEqual(len(seen), 1)
        self.assertLessEqual(seen[0]["time_remaining"], 0.3)
        self.assertGreater(seen[0]["time_remaining"], 0.1)
        rec = self.records(1)[-1]
        self.assertEqual(rec["protocol"], "HTTP/2")
        self.assertEqual(rec["grpc_status"], 4)
        self.assertEqual(rec["deadline_ms"], 300)

    def test_H2ToH2_SidecarDeadlineAnswersTrailersOnlyStatus4WithItsMessage(self):
        # deadline.propagate off on this route: the server keeps the client's
        # 5 s, so the 300 ms deadline can only be the sidecar's own.
        ch = self.sidecar()
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary(ch, "HangNoPropagate")(b"x", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(cm.exception.details(), "upstream request timeout")
        self.assertGreater(self.rec.get("Hang")[0]["time_remaining"], 3)  # the client's own deadline
        ended = wait_for(lambda: self.rec.get("HangEnded"), timeout=10, what="upstream cancellation")
        self.assertFalse(ended[0]["active"])  # the upstream stream was cancelled
        rec = self.records(1)[-1]
        self.assertEqual((rec["status"], rec["grpc_status"], rec["timeout"]), (200, 4, "request"))
        self.assertEqual(rec["deadline_ms"], 300)  # the route's, not the client's 5 s
        self.assertGreaterEqual(rec["duration_us"], 300_000)

    def test_H2ToH2_DeadlineAfterResponseHeadersCancelsUpstreamAndEndsWithStatus4(self):
        ch = self.sidecar()
        call = ch.unary_stream("/test.Svc/StallStream", request_serializer=identity,
                               response_deserializer=identity)(b"x", timeout=5)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for m in call:
                got.append(m)
        self.assertEqual(got, [b"first"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertIn(cm.exception.details(), ("upstream request timeout", "Deadline Exceeded"))
        # The upstream stream was reset (CANCEL): the server saw the call end
        # (its loop would otherwise run 3 s with the call still active).
        ended = wait_for(lambda: self.rec.get("StallStreamEnded"), timeout=10, what="upstream cancellation")
        self.assertFalse(ended[0]["active"])
        rec = self.records(1)[-1]
        self.assertEqual(rec["grpc_status"], 4)
        self.assertEqual(rec["attempts"], 1)
        self.assertEqual(rec["deadline_ms"], 300)  # the route's, not the client's 5 s

    def test_H2ToH2_ClientDeadlineShorterThanRouteIsPropagated(self):
        ch = self.sidecar()
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary(ch, "Slow")(b"x", timeout=0.15)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        seen = wait_for(lambda: self.rec.get("Slow"), what="server call")
        self.assertLessEqual(seen[0]["time_remaining"], 0.15)
        self.assertGreater(seen[0]["time_remaining"], 0.0)
        # The client's deadline (grpc-core rounds its 150 ms up to the wire
        # format), not the route's 300 ms, as the sidecar recorded it.
        rec = self.records(1)[-1]
        self.assertLessEqual(rec["deadline_ms"], 151)
        self.assertGreater(rec["deadline_ms"], 100)
        # grpc-core consumes grpc-timeout, so the server cannot show its wire
        # form: contract_h2_grpc_test and sidecar_http2_test check it with
        # mulligan-h2-upstream, whose log records it as sent.

    def test_H2ToH2_GrpcUnavailableRetriedWithPreviousAttempts(self):
        ch = self.sidecar()
        reply = self.unary(ch, "Flaky")(b"hi", timeout=5)
        self.assertEqual(reply, b"ok:hi")
        seen = self.rec.get("Flaky")
        self.assertEqual(len(seen), 3)
        self.assertEqual([s["metadata"].get("grpc-previous-rpc-attempts") for s in seen], [None, "1", "2"])
        self.assertEqual([s["metadata"].get("x-envoy-attempt-count") for s in seen], ["1", "2", "3"])
        rec = self.records(1)[-1]
        self.assertEqual(rec["attempts"], 3)
        self.assertEqual(rec["retry_reasons"], "unavailable,unavailable")
        self.assertEqual(rec["grpc_status"], 0)

    def test_H2ToH2_UnavailableAfterHeadersButBeforeAnyMessageIsRetried(self):
        ch = self.sidecar()
        reply, call = self.unary(ch, "HeadersThenUnavailable").with_call(b"x", timeout=5)
        self.assertEqual(reply, b"ok")
        self.assertEqual(len(self.rec.get("HeadersThenUnavailable")), 3)
        self.assertNotIn(("x-early", "1"), tuple(call.initial_metadata()))  # the failed tries' headers never went out
        self.assertEqual(self.records(1)[-1]["retry_reasons"], "unavailable,unavailable")

    def test_H2ToH2_NegativePushbackMeansNoRetry(self):
        ch = self.sidecar()
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary(ch, "PushbackRefused")(b"x", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(cm.exception.details(), "go away")  # the upstream's own answer
        self.assertEqual(len(self.rec.get("PushbackRefused")), 1)
        self.assertEqual(self.records(1)[-1]["retry_refused"], "pushback-refused")

    def test_H2ToH2_PushbackIsHonouredBeforeTheRetry(self):
        ch = self.sidecar()
        self.assertEqual(self.unary(ch, "Pushback")(b"x", timeout=5), b"done")
        seen = self.rec.get("Pushback")
        self.assertEqual(len(seen), 2)
        self.assertGreaterEqual(seen[1]["at"] - seen[0]["at"], 0.14)

    def test_H2ToH2_ServerStreamFailingAfterFirstMessageIsNotRetried(self):
        ch = self.sidecar()
        call = ch.unary_stream("/test.Svc/StreamThenFail", request_serializer=identity,
                               response_deserializer=identity)(b"x", timeout=5)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for m in call:
                got.append(m)
        self.assertEqual(got, [b"first"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(len(self.rec.get("StreamThenFail")), 1)

    def test_H2ToH2_StreamingCallsPassThrough(self):
        ch = self.sidecar()
        out = list(ch.unary_stream("/test.Svc/CountUp", request_serializer=identity,
                                   response_deserializer=identity)(b"200", timeout=5))
        self.assertEqual(out, [str(i).encode() for i in range(200)])
        total = ch.stream_unary("/test.Svc/Total", request_serializer=identity,
                                response_deserializer=identity)(iter([str(i).encode() for i in range(100)]),
                                                                timeout=5)
        self.assertEqual(total, str(sum(range(100))).encode())
        chat = ch.stream_stream("/test.Svc/Chat", request_serializer=identity, response_deserializer=identity)
        self.assertEqual(list(chat(iter([b"a", b"b", b"c"]), timeout=5)), [b"re:a", b"re:b", b"re:c"])
        # A large unary message both ways (flow control on both sides).
        big = bytes(range(256)) * 4096  # 1 MiB
        self.assertEqual(self.unary(ch, "Echo")(big, timeout=10), big)

    def test_H2ToH2_ManyConcurrentCallsOnOneConnection(self):
        ch = self.sidecar()
        echo = self.unary(ch, "Echo")
        futs = [echo.future(str(i).encode(), timeout=10) for i in range(200)]
        self.assertEqual([f.result() for f in futs], [str(i).encode() for i in range(200)])

    def sanitized(self):
        with open(f"/proc/{self.sidecar_proc.pid}/maps") as f:
            return "libasan" in f.read()

    def rss_kib(self):
        with open(f"/proc/{self.sidecar_proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def test_H2ToH2_SlowReaderDoesNotMakeTheSidecarBuffer(self):
        ch = self.sidecar()
        call = ch.unary_stream("/test.Svc/Firehose", request_serializer=identity,
                               response_deserializer=identity)(b"x", timeout=20)
        it = iter(call)
        self.assertEqual(len(next(it)), 65536)
        rss_before = self.rss_kib()
        time.sleep(1.0)  # the client reads nothing: back-pressure must reach the server
        sent = len(self.rec.get("FirehoseSent"))
        grown = self.rss_kib() - rss_before
        # 2000 x 64 KiB = 125 MiB would be sent without flow control; with it,
        # only windows and socket buffers fill up.
        self.assertLess(sent, 400, f"server sent {sent} messages to a client that reads nothing")
        if not self.sanitized():  # ASan's quarantine keeps freed memory resident
            self.assertLess(grown, 16 * 1024, f"sidecar grew by {grown} KiB")
        # Then the client reads everything: the stream resumes and completes.
        n = 1 + sum(1 for _ in it)
        self.assertEqual(n, 2000)

    def test_H2ToH2_ClientCancelResetsTheUpstreamStream(self):
        ch = self.sidecar()
        fut = self.unary(ch, "Hang").future(b"x", timeout=10)
        wait_for(lambda: self.rec.get("Hang"), what="server call")
        fut.cancel()
        # Cancelled: the server's loop would otherwise run 5 s with the call active.
        ended = wait_for(lambda: self.rec.get("HangEnded"), timeout=10, what="upstream cancellation")
        self.assertFalse(ended[0]["active"])

    def test_H2ToH2_SigtermDrainsInFlightCallsWithGoawayThenExitsZero(self):
        import signal
        ch = self.sidecar()
        fut = self.unary(ch, "Nap").future(b"x", timeout=5)
        wait_for(lambda: self.rec.get("Nap"), what="server call")
        self.sidecar_proc.send_signal(signal.SIGTERM)
        self.assertEqual(fut.result(), b"rested")  # finished, not cut off
        self.assertEqual(self.sidecar_proc.wait(5), 0)

    def test_H2ToH2_SidecarFailuresAnswerInGrpcForm(self):
        # Nothing listens on the upstream port: connect failures, retried, then
        # UNAVAILABLE with the sidecar's reason (never a bare HTTP 502).
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()
        ch = self.sidecar(port=dead)
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary(ch, "Echo")(b"x", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("upstream connect error", cm.exception.details())
        rec = self.records(1)[-1]
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["grpc_status"], 14)
        self.assertEqual(rec["attempts"], 4)


if __name__ == "__main__":
    unittest.main()
