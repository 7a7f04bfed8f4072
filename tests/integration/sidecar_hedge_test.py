"""Hedging (DESIGN.md "Hedging", issue 19) end to end, with real clients
against real upstreams: curl over HTTP/1.1 to mulligan-test-upstream, nghttp
over h2c to mulligan-h2-upstream, python3-grpcio on both sides of a gRPC
call. In each, the first attempt is slow (the upstream delays only the first
request with a given id) and the policy hedges after 100 ms: the client gets
the hedge's answer, the access log and the counters say hedged and which
attempt won, and the slow upstream sees the loser cancelled (HTTP/1: the
connection closed while it was delaying; HTTP/2: RST_STREAM, after the
client session's orphan grace).

No assertion is about how long something took: "the fast answer" is the
answer only the second request gets (x-upstream-seen: 2, a body only the
hedge returns)."""
import json
import re
import subprocess
import threading
import time
import unittest
import urllib.request
from concurrent import futures

from harness import Stack, need_tool, wait_for

try:
    import grpc
except ImportError:  # pragma: no cover - CI installs python3-grpcio
    grpc = None


def identity(b):
    return b


def policy(port, hedge='{ delay = "100ms", max_attempts = 2, max_extra_load = 1.0 }', extra=""):
    return f"""version = 1
[defaults]
request_timeout = "20s"

[[service]]
name = "hedged"
hosts = ["hedged"]
upstream = "127.0.0.1:{port}"
hedge = {hedge}
{extra}
"""


class HedgeStack(Stack):
    def admin(self, route):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{route}", timeout=20) as r:
            return r.read().decode()

    def metric(self, name, service="hedged"):
        for line in self.admin("/metrics").splitlines():
            if line.startswith(name + "{") and f'service="{service}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return None

    def route_stats(self, service="hedged"):
        stats = json.loads(self.admin("/stats"))
        return [r for r in stats["routes"] if r["service"] == service][0]


class HedgeHttp1Test(HedgeStack):
    def setUp(self):
        super().setUp()
        need_tool("curl", "curl")
        self.up_port, self.up_log = self.start_upstream()

    def curl(self, path, *extra):
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-D", "-", "-H", "Host: hedged", *extra,
                            f"http://127.0.0.1:{self.outbound_port}{path}"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def upstream_stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.up_port}/__stats", timeout=10) as r:
            return json.loads(r.read())

    def test_H1ToH1_SlowFirstAttemptIsHedgedTheFastAnswerWinsAndTheLoserIsClosed(self):
        self.publish(policy(self.up_port))
        self.start_sidecar()
        out = self.curl("/item?fail_first=1&fail_status=200&fail_delay=10s&id=h1")
        self.assertIn("HTTP/1.1 200", out)
        self.assertRegex(out, re.compile(r"^x-upstream-seen: 2\r?$", re.M | re.I))  # the hedge's answer
        rec = self.access_record("id=h1")
        self.assertEqual((rec["status"], rec["attempts"], rec["hedges"], rec["winner"]), (200, 2, 1, 2))
        seen = self.upstream_log(self.up_log)
        self.assertEqual([l["x-envoy-attempt-count"] for l in seen], ["1", "2"])
        # The loser's connection was closed while the upstream delayed it
        # (never returned to the pool: its response was still to come).
        wait_for(lambda: self.upstream_stats()["early_closes"] == 1, what="the loser's connection closed")
        self.assertEqual(self.metric("mulligan_hedges_total"), 1)
        self.assertEqual(self.metric("mulligan_hedge_wins_total"), 1)
        r = self.route_stats()
        self.assertEqual((r["hedges"], r["hedge_wins"]), (1, 1))

    def test_H1ToH1_NotableFilterLogsAHedgedCall(self):
        self.publish(policy(self.up_port))
        self.start_sidecar("--access-log-filter", "notable")
        self.curl("/item?fail_first=1&fail_status=200&fail_delay=10s&id=n1")
        self.curl("/plain?id=n2")  # a plain 200: no line under notable
        rec = self.access_record("id=n1")
        self.assertEqual(rec["hedges"], 1)
        self.assertEqual([r for r in self.access_records() if "id=n2" in r["path"]], [])

    def test_H1ToH1_PostWithoutIdempotencyKeyIsNotHedged(self):
        self.publish(policy(self.up_port))
        self.start_sidecar()
        out = self.curl("/order?fail_first=1&fail_status=200&fail_delay=400ms&id=p1", "-X", "POST", "-d", "x=1")
        self.assertRegex(out, re.compile(r"^x-upstream-seen: 1\r?$", re.M | re.I))  # the slow one's own answer
        rec = self.access_record("id=p1")
        self.assertEqual((rec["attempts"], rec["hedges"], rec["winner"]), (1, 0, 1))
        self.assertEqual(len(self.upstream_log(self.up_log)), 1)

    def test_H1ToH1_PostWithIdempotencyKeyIsHedgedWithItsBody(self):
        self.publish(policy(self.up_port))
        self.start_sidecar()
        out = self.curl("/order?fail_first=1&fail_status=200&fail_delay=10s&id=p2", "-X", "POST",
                        "-H", "idempotency-key: k-2", "-d", "x=1")
        self.assertRegex(out, re.compile(r"^x-upstream-seen: 2\r?$", re.M | re.I))
        seen = self.upstream_log(self.up_log)
        self.assertEqual([l["body_bytes"] for l in seen], [3, 3])
        self.assertEqual(self.access_record("id=p2")["hedges"], 1)


class HedgeHttp2Test(HedgeStack):
    def test_H2ToH2_SlowFirstStreamIsHedgedAndTheLoserIsReset(self):
        need_tool("nghttp", "nghttp2-client")
        port, log = self.start_h2_upstream()
        self.publish(policy(port))
        self.start_sidecar()
        r = subprocess.run(["nghttp", "-H", ":authority: hedged",
                            f"http://127.0.0.1:{self.outbound_port}/item?delay=10s&slow_first=1&id=h2"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ok\n")
        rec = self.access_record("id=h2")
        self.assertEqual((rec["protocol"], rec["status"], rec["attempts"], rec["hedges"], rec["winner"]),
                         ("HTTP/2", 200, 2, 1, 2))
        # The loser's stream: RST_STREAM(CANCEL) from the sidecar (once the
        # client session's orphan grace, 1 s, is over), logged as "reset"
        # by the upstream before it answered.
        lines = wait_for(lambda: [l for l in self.upstream_log(log) if l["attempt"] == "1" and l["outcome"] == "reset"],
                         timeout=15, what="the loser's stream reset")
        self.assertEqual(len(lines), 1)
        self.assertEqual([l["outcome"] for l in self.upstream_log(log) if l["attempt"] == "2"], ["answered"])
        self.assertEqual(self.metric("mulligan_hedges_total"), 1)
        self.assertEqual(self.metric("mulligan_hedge_wins_total"), 1)


@unittest.skipIf(grpc is None, "python3-grpcio is not installed")
class HedgeGrpcTest(HedgeStack):
    def setUp(self):
        super().setUp()
        self.lock = threading.Lock()
        self.calls = []

        def slow_first(req, context):
            md = dict(context.invocation_metadata())
            with self.lock:
                n = len(self.calls) + 1
                entry = {"metadata": md, "ended_active": None}
                self.calls.append(entry)
            if n == 1:
                t0 = time.monotonic()
                while context.is_active() and time.monotonic() - t0 < 10:
                    time.sleep(0.01)
                entry["ended_active"] = context.is_active()
                return b"slow"
            return b"fast:" + req

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", {
            "SlowFirst": grpc.unary_unary_rpc_method_handler(slow_first, request_deserializer=identity,
                                                             response_serializer=identity)}),))
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.addCleanup(server.stop, 0)

    def test_H2ToH2_GrpcSlowFirstCallIsHedgedAndTheLoserCancelled(self):
        # gRPC calls opt in to repeats by naming gRPC codes in retry_on.
        self.publish(policy(self.grpc_port, extra='retry = { retry_on = ["unavailable"] }'))
        self.start_sidecar()
        ch = grpc.insecure_channel(f"127.0.0.1:{self.outbound_port}",
                                   options=[("grpc.default_authority", "hedged"), ("grpc.enable_retries", 0)])
        self.addCleanup(ch.close)
        call = ch.unary_unary("/test.Svc/SlowFirst", request_serializer=identity, response_deserializer=identity)
        self.assertEqual(call(b"x", timeout=30), b"fast:x")
        with self.lock:
            second = self.calls[1]["metadata"]
        self.assertEqual(second.get("x-envoy-attempt-count"), "2")
        self.assertEqual(second.get("grpc-previous-rpc-attempts"), "1")
        rec = self.access_record("SlowFirst")
        self.assertEqual((rec["grpc_status"], rec["attempts"], rec["hedges"], rec["winner"]), (0, 2, 1, 2))
        # The slow server saw its call cancelled (RST_STREAM after the
        # orphan grace), not run to its end.
        wait_for(lambda: self.calls[0]["ended_active"] is not None, timeout=15, what="the loser's call ended")
        self.assertFalse(self.calls[0]["ended_active"])
        self.assertEqual(self.metric("mulligan_hedge_wins_total"), 1)


if __name__ == "__main__":
    unittest.main()
