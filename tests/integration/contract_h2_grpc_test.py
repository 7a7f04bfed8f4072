"""DESIGN.md rule by rule, end to end over HTTP/2 and gRPC: curl
(--http2-prior-knowledge), python3-h2 where the frames matter, python3-grpcio
where a real gRPC server must misbehave, and the scriptable nghttp2 upstream
(mulligan-h2-upstream, whose log says what reached it). Each test asserts the
values the contract names, and its docstring names the mutant it catches
(scripts/mutants applies them)."""
import json
import re
import socket
import subprocess
import unittest

from harness import Stack, need_module, wait_for


def policy(port, service="", routes=""):
    return f"""version = 1
[defaults]
request_timeout = "10s"

[[service]]
name = "h2"
hosts = ["h2"]
upstream = "127.0.0.1:{port}"
{service}
{routes}
"""


def grpc_timeout_us(v):
    """A grpc-timeout value (gRPC PROTOCOL-HTTP2.md: 1..8 digits and a unit) in microseconds."""
    m = re.fullmatch(r"(\d{1,8})([HMSmun])", v)
    assert m, f"not a grpc-timeout in the wire format: {v!r}"
    n, unit = int(m.group(1)), m.group(2)
    return {"H": 3600e6, "M": 60e6, "S": 1e6, "m": 1e3, "u": 1, "n": 1e-3}[unit] * n


class ContractH2Test(Stack):
    def stack(self, service="", routes=""):
        port, self.up_log = self.start_h2_upstream()
        self.publish(policy(port, service, routes))
        self.start_sidecar()
        return f"http://127.0.0.1:{self.outbound_port}"

    def curl(self, url, *args, host="h2"):
        """(status, lower-cased response head text, body) of one HTTP/2 request."""
        hdr = self.path("head.txt")
        r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "20", "-H", f"Host: {host}",
                            "-D", hdr, "-o", "/dev/stdout", "-w", "\n%{http_code}", *args, url],
                           capture_output=True, timeout=30)
        body, _, code = r.stdout.rpartition(b"\n")
        with open(hdr) as f:
            return int(code), f.read().lower(), body

    def grpc(self, url, *args, host="h2"):
        return self.curl(url, "-X", "POST", "--data-binary", "@/dev/null", "-H", "content-type: application/grpc",
                         "-H", "te: trailers", *args, host=host)

    def seen(self, ident):
        return [r for r in self.upstream_log(self.up_log) if r["id"] == ident]

    def record(self, marker):
        return wait_for(lambda: [r for r in self.access_records() if marker in r["path"]],
                        what=f"access-log record of {marker}")[-1]

    def stats(self):
        return json.loads(subprocess.run(["curl", "-s", f"http://127.0.0.1:{self.admin_port}/stats"],
                                         capture_output=True, text=True, timeout=10).stdout)

    # -- The deadline clock --------------------------------------------------

    def test_H2_DeadlineClockStartsAtTheRequestHeadersSoAStalledUploadGets504(self):
        """Mutant deadline-start (the deadline armed only once the request
        ended). HEADERS and half a body, then nothing: 504 at the deadline."""
        need_module("h2.connection", "python3-h2")
        import h2.config
        import h2.connection
        import h2.events
        self.stack(routes='''
  [[service.route]]
  path_prefix = "/upload"
  request_timeout = "1s"
''')
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=20)
        self.addCleanup(s.close)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "PUT"), (":scheme", "http"), (":authority", "h2"),
                                (":path", "/upload?id=slow2"), ("content-length", "10")])
        conn.send_data(sid, b"hello")  # half, and never the rest nor END_STREAM
        s.sendall(conn.data_to_send())
        head, body, ended = None, b"", False
        while not ended:
            try:
                data = s.recv(65536)
            except socket.timeout:
                self.fail("no answer while the upload stalled: the deadline did not run during it")
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    head = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) and ev.stream_id == sid:
                    ended = True
            s.sendall(conn.data_to_send())
        self.assertIsNotNone(head)
        self.assertEqual((head[":status"], head.get("x-mulligan-timeout")), ("504", "request"))
        self.assertEqual(body, b"upstream request timeout")
        rec = self.record("slow2")
        self.assertEqual((rec["protocol"], rec["timeout"], rec["deadline_ms"]), ("HTTP/2", "request", 1000))

    # -- Budget ----------------------------------------------------------------

    def test_H2ToH2_RefusedStreamAndGoawayRetriesSpendNoBudget(self):
        """Mutant budget-never-reached: refused-stream / GOAWAY retries take
        budget like any other. With a budget of zero retries, a refused stream
        and a stream beyond a GOAWAY are still retried (the upstream never saw
        them); a 503 is not (budget)."""
        base = self.stack(service='retry = { retry_on = ["refused-stream", "503"], num_retries = 2, '
                                   'backoff_base = "1ms", backoff_max = "2ms" }\n'
                                   'budget = { retry_ratio = 0.0, min_retries_per_second = 0 }')
        code, _, body = self.curl(base + "/r?refuse=1&id=rb1", "-X", "POST", "-d", "x")
        self.assertEqual((code, body), (200, b"ok\n"))
        self.assertEqual([s["outcome"] for s in self.seen("rb1")], ["refused", "answered"])
        self.assertEqual(self.record("rb1")["retry_reasons"], "refused-stream")
        code, _, body = self.curl(base + "/g?goaway=1&id=gb1")
        self.assertEqual((code, body), (200, b"ok\n"))
        self.assertEqual([s["outcome"] for s in self.seen("gb1")], ["goaway", "answered"])
        # The budget really is empty: a retry that reached the upstream is refused.
        code, _, body = self.curl(base + "/u?status=503&id=ub1")
        self.assertEqual((code, body), (503, b"503\n"))
        self.assertEqual(len(self.seen("ub1")), 1)
        self.assertEqual(self.record("ub1")["retry_refused"], "budget")

    # -- What goes upstream ------------------------------------------------------

    def test_H2ToH2_GrpcTimeoutOffsetIsSubtractedAndNeverLeavesZero(self):
        """Mutants grpc-offset (grpc_timeout_offset ignored) and
        grpc-timeout-zero (formatGrpcTimeout's 1 ms floor removed): the
        upstream's grpc-timeout is the time left minus the offset, in the wire
        format, and at least 1 ms when the offset eats it all."""
        base = self.stack(routes='''
  [[service.route]]
  grpc = "pkg.Svc/Offset"
  request_timeout = "3s"
  deadline = { grpc_timeout_offset = "1s" }

  [[service.route]]
  grpc = "pkg.Svc/Eaten"
  request_timeout = "500ms"
  deadline = { grpc_timeout_offset = "1s" }
''')
        code, head, _ = self.grpc(base + "/pkg.Svc/Offset?id=off1")
        self.assertEqual(code, 200)
        self.assertIn("grpc-status: 0", head)
        sent = grpc_timeout_us(self.seen("off1")[0]["grpc_timeout"])
        self.assertLessEqual(sent, 2_000_000)  # 3 s less the 1 s offset, less what has passed
        self.assertGreater(sent, 1_000_000)
        code, head, _ = self.grpc(base + "/pkg.Svc/Eaten?id=off2")
        self.assertEqual(code, 200)
        self.assertEqual(grpc_timeout_us(self.seen("off2")[0]["grpc_timeout"]), 1000)  # 1 ms, never 0

    def test_H2ToH2_TinyInboundGrpcTimeoutGoesOutAsAtLeastOneMillisecond(self):
        """Mutants grpc-timeout-zero (formatGrpcTimeout's 1 ms floor removed)
        and ms-floor (retry::ceilMs rounds down, no floor). DESIGN.md: times
        are rounded up and never sent as 0 — at least 1 ms. A gRPC call whose
        own grpc-timeout is 500u (or 1m), on a route with min_attempt_budget
        0: the attempt leaves with at most 500 us (1 ms) to go, and the
        upstream must see grpc-timeout 1 ms (not 500u or less: the mutant
        sends what is left), x-timeout-budget: 1 and
        x-envoy-expected-rq-timeout-ms: 1 (the ms-floor mutant: 0).
        Each call follows a warm-up call, so that it takes the pooled
        upstream session and its HEADERS leave before the deadline timer
        can run; the upstream logs the stream whether it answers or the
        sidecar resets it."""
        base = self.stack(service='deadline = { min_attempt_budget = "0ms" }')
        for i in range(3):  # one would do; more in case the pooled session went away meanwhile
            for marker, timeout in (("tg", "500u"), ("tm", "1m")):
                code, _, _ = self.grpc(base + f"/pkg.Svc/Warm?id=warm{marker}{i}")
                self.assertEqual(code, 200)
                code, head, _ = self.grpc(base + f"/pkg.Svc/Tiny?id={marker}{i}", "-H", f"grpc-timeout: {timeout}")
                self.assertEqual(code, 200)
                self.assertRegex(head, r"grpc-status: (0|4)\n")  # answered, or the sidecar's DEADLINE_EXCEEDED
        for marker in ("tg", "tm"):
            seen = wait_for(lambda: [r for r in self.upstream_log(self.up_log) if r["id"].startswith(marker)],
                            what=f"a {marker} call upstream")
            for r in seen:
                self.assertEqual(grpc_timeout_us(r["grpc_timeout"]), 1000, r)
                self.assertEqual((r["timeout_budget"], r["expected_rq"]), ("1", "1"), r)

    def test_H2ToH2_GrpcCallIsRetriedOnlyWhenItsRouteNamesGrpcCodes(self):
        """Mutant grpc-opt-in: every gRPC call counted safe to repeat. DESIGN.md:
        a gRPC call (a POST) is retried when its route's retry_on names gRPC
        codes — naming them is opting in. The same per-try timeout is retried
        on the route that names `unavailable` and refused (idempotency) on
        the route that names only `per-try-timeout`."""
        retry = 'num_retries = 2, per_try_timeout = "200ms", backoff_base = "1ms", backoff_max = "2ms"'
        base = self.stack(routes=f'''
  [[service.route]]
  grpc = "pkg.Svc/NoOptIn"
  retry = {{ retry_on = ["per-try-timeout"], {retry} }}

  [[service.route]]
  grpc = "pkg.Svc/OptIn"
  retry = {{ retry_on = ["per-try-timeout", "unavailable"], {retry} }}
''')
        code, head, _ = self.grpc(base + "/pkg.Svc/NoOptIn?delay=5000&id=oi1")
        self.assertEqual(code, 200)
        self.assertIn("grpc-status: 4\n", head)
        rec = self.record("oi1")
        self.assertEqual((rec["attempts"], rec["retry_refused"], rec["timeout"]), (1, "idempotency", "per-try"))
        self.assertEqual([s["attempt"] for s in wait_for(lambda: self.seen("oi1"), what="oi1 upstream")], ["1"])
        code, head, _ = self.grpc(base + "/pkg.Svc/OptIn?delay=5000&id=oi2")
        self.assertEqual(code, 200)
        self.assertIn("grpc-status: 4\n", head)
        rec = self.record("oi2")
        self.assertEqual((rec["attempts"], rec["retry_reasons"], rec["timeout"]),
                         (3, "per-try-timeout,per-try-timeout", "per-try"))
        seen = wait_for(lambda: len(self.seen("oi2")) == 3 and self.seen("oi2"), what="three oi2 attempts upstream")
        self.assertEqual(sorted(s["attempt"] for s in seen), ["1", "2", "3"])

    # -- What the client gets ----------------------------------------------------

    def test_H2ToH2_GrpcPerTryTimeoutSaysSoInGrpcMessage(self):
        """Mutant per-try-grpc-message: the per-try timeout's gRPC answer
        names the request timeout. DESIGN.md: grpc-status 4, HTTP 200,
        grpc-message saying which timeout fired."""
        base = self.stack(routes='''
  [[service.route]]
  grpc = "pkg.Svc/Slow"
  retry = { retry_on = ["unavailable"], per_try_timeout = "200ms" }
''')
        code, head, body = self.grpc(base + "/pkg.Svc/Slow?delay=5000&id=ptg1")
        self.assertEqual((code, body), (200, b""))
        self.assertIn("content-type: application/grpc", head)
        self.assertIn("grpc-status: 4\n", head)
        self.assertIn("grpc-message: upstream per-try timeout\n", head)
        rec = self.record("ptg1")
        self.assertEqual((rec["status"], rec["grpc_status"], rec["timeout"]), (200, 4, "per-try"))

    def test_H2_NoDestinationIs502WithItsReasonAndGrpcUnavailable(self):
        """Mutant no-destination-h2: the no-destination answer loses its
        reason or its gRPC form on HTTP/2. A host no policy service matches,
        on a connection nobody redirected, is not a proxy request."""
        base = self.stack()
        code, head, body = self.curl(base + "/x?id=nd1", host="nobody.example")
        self.assertEqual(code, 502)
        self.assertIn(b"no destination", body)
        code, head, body = self.grpc(base + "/pkg.Svc/Get?id=nd2", host="nobody.example")
        self.assertEqual((code, body), (200, b""))
        self.assertIn("content-type: application/grpc", head)
        self.assertIn("grpc-status: 14\n", head)
        self.assertRegex(head, r"grpc-message: [^\r\n]*no destination")
        for marker, grpc_status in (("nd1", None), ("nd2", 14)):
            rec = self.record(marker)
            self.assertEqual((rec["sidecar_error"], rec["attempts"], rec.get("grpc_status")),
                             ("no-destination", 0, grpc_status))
        self.assertEqual(self.upstream_log(self.up_log), [])

    def test_H2ToH2_WhenRetriesRunOutTheLastUpstreamResponseIsReturnedAsItWas(self):
        """Mutant own-reply-when-exhausted: the client gets the upstream's
        own last 503, its headers and body, not one the sidecar made."""
        base = self.stack(service='retry = { retry_on = ["503"], num_retries = 2, backoff_base = "1ms", '
                                   'backoff_max = "2ms" }')
        code, head, body = self.curl(base + "/x?status=503&id=lr1")
        self.assertEqual((code, body), (503, b"503\n"))
        self.assertIn("x-upstream-name: h2-upstream\n", head)
        self.assertIn("content-type: text/plain\n", head)
        self.assertEqual(len(self.seen("lr1")), 3)
        rec = self.record("lr1")
        self.assertEqual((rec["attempts"], rec["retry_reasons"], rec["sidecar_error"]), (3, "503,503", ""))


def identity(b):
    return b


class ContractGrpcTest(Stack):
    """A python3-grpcio server that fails on purpose, behind the sidecar."""

    def grpc_stack(self, budget=""):
        grpc = need_module("grpc", "python3-grpcio")
        from concurrent import futures
        self.calls = {}

        def stream_then_fail(req, context):
            self.calls["StreamThenFail"] = self.calls.get("StreamThenFail", 0) + 1
            yield b"first"
            context.abort(grpc.StatusCode.UNAVAILABLE, "broke after the first message")

        def headers_then_unavailable(req, context):
            self.calls["HeadersThenUnavailable"] = self.calls.get("HeadersThenUnavailable", 0) + 1
            context.send_initial_metadata((("x-early", "1"),))  # headers, then the error, no message
            context.abort(grpc.StatusCode.UNAVAILABLE, "not now")
        ser = dict(request_deserializer=identity, response_serializer=identity)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", {
            "StreamThenFail": grpc.unary_stream_rpc_method_handler(stream_then_fail, **ser),
            "HeadersThenUnavailable": grpc.unary_unary_rpc_method_handler(headers_then_unavailable, **ser),
        }),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.addCleanup(server.stop, 0)
        self.publish(f"""version = 1
[[service]]
name = "g"
hosts = ["g"]
upstream = "127.0.0.1:{port}"
retry = {{ retry_on = ["unavailable"], num_retries = 3, backoff_base = "1ms", backoff_max = "2ms" }}
{budget}
""")
        self.start_sidecar()
        ch = grpc.insecure_channel(f"127.0.0.1:{self.outbound_port}",
                                   options=[("grpc.default_authority", "g"), ("grpc.enable_retries", 0)])
        self.addCleanup(ch.close)
        return grpc, ch

    def refusals(self):
        stats = json.loads(subprocess.run(["curl", "-s", f"http://127.0.0.1:{self.admin_port}/stats"],
                                          capture_output=True, text=True, timeout=10).stdout)
        return [r for r in stats["routes"] if r["service"] == "g"][0]["retries_refused"]

    def test_H2ToH2_GrpcFailureAfterAMessageIsNotRetriedAndSaysResponseStarted(self):
        """Mutant response-started-silent: a retriable status that arrives
        after a message went downstream is not retried — and the refusal
        shows as `response-started` in the access log and the counters
        (DESIGN.md: a retry that policy allowed but that did not happen says
        why). Failed before the fix in ProxyStream::onAttemptTrailers: the
        log said nothing and no counter moved."""
        grpc, ch = self.grpc_stack()
        call = ch.unary_stream("/test.Svc/StreamThenFail", request_serializer=identity,
                               response_deserializer=identity)(b"x", timeout=10)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for m in call:
                got.append(m)
        self.assertEqual(got, [b"first"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(cm.exception.details(), "broke after the first message")
        self.assertEqual(self.calls["StreamThenFail"], 1)
        rec = wait_for(lambda: self.access_records(), what="access log")[-1]
        self.assertEqual((rec["grpc_status"], rec["attempts"], rec["retry_refused"]), (14, 1, "response-started"))
        self.assertEqual(self.refusals()["response-started"], 1)
        metrics = subprocess.run(["curl", "-s", f"http://127.0.0.1:{self.admin_port}/metrics"],
                                 capture_output=True, text=True, timeout=10).stdout
        self.assertRegex(metrics, r'mulligan_retries_refused_total\{service="g"[^}]*reason="response-started"\} 1\b')

    def test_H2ToH2_GrpcHeadersThenUnavailableRefusedByTheBudgetSaysBudgetOnce(self):
        """The held-headers path (headers, then trailers, no message) decides
        once: a retry the empty budget refuses is logged and counted as
        `budget`, not also as response-started once the held headers are
        committed."""
        grpc, ch = self.grpc_stack(budget="budget = { retry_ratio = 0.0, min_retries_per_second = 0 }")
        with self.assertRaises(grpc.RpcError) as cm:
            ch.unary_unary("/test.Svc/HeadersThenUnavailable", request_serializer=identity,
                           response_deserializer=identity)(b"x", timeout=10)
        self.assertEqual((cm.exception.code(), cm.exception.details()), (grpc.StatusCode.UNAVAILABLE, "not now"))
        self.assertEqual(self.calls["HeadersThenUnavailable"], 1)
        rec = wait_for(lambda: self.access_records(), what="access log")[-1]
        self.assertEqual((rec["grpc_status"], rec["attempts"], rec["retry_refused"]), (14, 1, "budget"))
        refused = self.refusals()
        self.assertEqual((refused["budget"], refused["response-started"]), (1, 0))


if __name__ == "__main__":
    unittest.main()
