"""The Connect protocol (connectrpc.com) and overload signals through
mulligan-sidecar (DESIGN.md "Hedging, endpoints, overload signals and
Connect").

Connect: a real Connect implementation on both sides — connect-es
(@connectrpc/connect-node, npm, installed by scripts/lib/deps.sh) serving on
node:http and node:http2, and its client (createConnectTransport, HTTP/1.1
and HTTP/2) calling through the sidecar: retries by Connect error code,
connect-timeout-ms, and the sidecar's own answers in Connect form (also read
raw, with Python's http.client and curl, to check the wire form).

Overload: an upstream answering 503 + x-envoy-overloaded is called once,
whatever retry_on says, and the refusal is counted as `overloaded` in the
access log, /stats and /metrics (curl for HTTP/1.1, nghttp for HTTP/2)."""
import http.client
import json
import os
import shutil
import subprocess
import unittest

from harness import SRC, Stack, need_tool, wait_for, read_port_file

HERE = os.path.dirname(os.path.abspath(__file__))
CONNECT_DIR = os.path.join(HERE, "connect")
NPM_PREFIX = os.environ.get("MULLIGAN_NPM_PREFIX") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mulligan", "npm")
NODE_MODULES = os.path.join(NPM_PREFIX, "node_modules")

_install_tried = False


def need_connect_es():
    """node and connect-es, installed through scripts/lib/deps.sh when missing;
    skip (naming why) only when npm truly cannot install them."""
    global _install_tried
    need_tool("node", "nodejs")
    marker = os.path.join(NODE_MODULES, "@connectrpc", "connect-node", "package.json")
    if not os.path.exists(marker) and not _install_tried:
        _install_tried = True
        subprocess.run(["bash", "-c", f"source '{SRC}/scripts/lib/deps.sh' && mulligan_install_npm_tools"],
                       capture_output=True, timeout=600, env={**os.environ, "MULLIGAN_NPM_PREFIX": NPM_PREFIX})
    if not os.path.exists(marker):
        raise unittest.SkipTest(f"npm could not install connect-es into {NPM_PREFIX} "
                                "(scripts/lib/deps.sh MULLIGAN_NPM_TOOLS)")


def node_env():
    return {**os.environ, "NODE_PATH": NODE_MODULES}


def scripted(**kw):
    return json.dumps(kw)


def metric(text, sample):
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split(" ")[-1])
    return None


class ConnectStack(Stack):
    def start_peer(self):
        """The connect-es server: (HTTP/1.1 port, h2c port), its call log."""
        need_connect_es()
        port_file, self.peer_log = self.path("peer.port"), self.path("peer.log")
        self.start("node", os.path.join(CONNECT_DIR, "peer.cjs"), port_file, self.peer_log, env=node_env())
        # Node loads connect-es in a few seconds on a loaded machine.
        def listening():
            try:
                with open(port_file) as f:
                    return f.read().strip()
            except FileNotFoundError:
                return None
        text = wait_for(listening, timeout=60, what="connect-es server listening")
        h1, h2 = (int(p) for p in text.split())
        return h1, h2

    def peer_calls(self, method=None, key=None):
        try:
            with open(self.peer_log) as f:
                calls = [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []
        return [c for c in calls if (method is None or c["method"] == method) and (key is None or c.get("key") == key)]

    def client(self, version, method, script, timeout_ms=None):
        """One call with connect-es's client through the sidecar."""
        args = ["node", os.path.join(CONNECT_DIR, "client.cjs"), f"http://127.0.0.1:{self.outbound_port}",
                version, method, script]
        if timeout_ms:
            args.append(str(timeout_ms))
        r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=node_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def stack(self, policy, version):
        """Peer + policy (with {port} the peer's port for `version`) + sidecar."""
        h1, h2 = self.start_peer()
        self.publish(policy.replace("PORT", str(h1 if version == "1.1" else h2)))
        self.start_sidecar()

    def records(self, marker):
        return wait_for(lambda: [r for r in self.access_records() if marker in r["path"]], what="access log")

    def stats_route(self, service):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats", timeout=10) as r:
            stats = json.load(r)
        return next(r for r in stats["routes"] if r["service"] == service and r["route"] is None)

    def metrics(self):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=10) as r:
            return r.read().decode()


POLICY = """version = 1
[defaults]
request_timeout = "10s"

[[service]]
name = "connect"
hosts = ["127.0.0.1"]
upstream = "127.0.0.1:PORT"
retry = { retry_on = RETRY_ON, num_retries = 3, backoff_base = "5ms", backoff_max = "10ms" }
EXTRA
"""


def policy(retry_on='["unavailable", "connect-failure"]', extra=""):
    """The policy text; PORT is filled in by ConnectStack.stack()."""
    return POLICY.replace("RETRY_ON", retry_on).replace("EXTRA", extra)


VERSIONS = ("1.1", "2")


class ConnectRetryTest(ConnectStack):
    def test_ConnectUnary_UnavailableRetriedUntilItSucceeds(self):
        for v in VERSIONS:
            with self.subTest(http=v):
                self.stack(policy(), v)
                got = self.client(v, "say", scripted(key="u", fail=2, code="unavailable"))
                self.assertEqual(got, {"ok": True, "values": ["ok:u:3"]})
                calls = self.peer_calls("Say", "u")
                self.assertEqual([c["attempt"] for c in calls], ["1", "2", "3"])
                rec = self.records("/mulligan.test.Echo/Say")[-1]
                self.assertEqual((rec["status"], rec["attempts"], rec["retry_reasons"]),
                                 (200, 3, "unavailable,unavailable"))
                self.doCleanups()
                self.setUp()

    def test_ConnectUnary_NotRetriedWhenRetryOnNamesNoGrpcCodes(self):
        # 503, 5xx and gateway-error are HTTP entries: a Connect call is not
        # opted in by them (its unavailable is an HTTP 503 on the wire).
        self.stack(policy('["5xx", "503", "gateway-error", "connect-failure"]'), "1.1")
        got = self.client("1.1", "say", scripted(key="n", fail=1, code="unavailable"))
        self.assertEqual((got["ok"], got["code"]), (False, "unavailable"))
        self.assertEqual(len(self.peer_calls("Say", "n")), 1)
        rec = self.records("/mulligan.test.Echo/Say")[-1]
        self.assertEqual((rec["status"], rec["attempts"], rec["retry_reasons"]), (503, 1, ""))

    def test_ConnectUnary_HttpStatusEntriesDoNotApplyOnceOptedIn(self):
        # Opted in by "unavailable"; 504 and 409 are named too, but a Connect
        # deadline_exceeded (HTTP 504) and already_exists (HTTP 409) are
        # judged by their codes, which retry_on does not name.
        self.stack(policy('["unavailable", "504", "409", "retriable-4xx"]'), "2")
        for key, code in (("d", "deadline_exceeded"), ("a", "already_exists")):
            got = self.client("2", "say", scripted(key=key, fail=1, code=code))
            self.assertEqual((got["ok"], got["code"]), (False, code))
            self.assertEqual(len(self.peer_calls("Say", key)), 1, code)

    def test_ConnectServerStream_EndOfStreamErrorBeforeAnyMessageRetried(self):
        for v in VERSIONS:
            with self.subTest(http=v):
                self.stack(policy(), v)
                got = self.client(v, "count", scripted(key="s", fail=1, code="unavailable", messages=3))
                self.assertEqual(got, {"ok": True, "values": ["s:0", "s:1", "s:2"]})
                self.assertEqual([c["attempt"] for c in self.peer_calls("Count", "s")], ["1", "2"])
                rec = self.records("/mulligan.test.Echo/Count")[-1]
                self.assertEqual((rec["status"], rec["attempts"], rec["retry_reasons"]), (200, 2, "unavailable"))
                self.doCleanups()
                self.setUp()

    def test_ConnectServerStream_ErrorNotInRetryOnPassesThroughOnce(self):
        self.stack(policy(), "2")
        got = self.client("2", "count", scripted(key="i", fail=1, code="internal", messages=2))
        self.assertEqual((got["ok"], got["code"], got["values"]), (False, "internal", []))
        self.assertEqual(len(self.peer_calls("Count", "i")), 1)


class ConnectDeadlineTest(ConnectStack):
    def test_ConnectTimeoutMs_JoinsTheDeadline(self):
        for v in VERSIONS:
            with self.subTest(http=v):
                # The client's 8 s is shorter than the route's 10 s: it is
                # the deadline, and the server sees what is left of it.
                self.stack(policy(), v)
                got = self.client(v, "say", scripted(key="t"), timeout_ms=8000)
                self.assertTrue(got["ok"], got)
                seen = int(self.peer_calls("Say", "t")[0]["connect_timeout_ms"])
                self.assertGreaterEqual(seen, 1)
                self.assertLessEqual(seen, 8000)
                self.assertEqual(self.records("/mulligan.test.Echo/Say")[-1]["deadline_ms"], 8000)
                self.doCleanups()
                self.setUp()

    def test_ConnectTimeoutMs_RouteTimeoutShorterThanTheClientsIsSent(self):
        # Long enough that a loaded machine still answers in time: what is
        # checked is the value the server saw, not how fast it came.
        self.stack(policy(extra='request_timeout = "5s"'), "2")
        got = self.client("2", "say", scripted(key="r"), timeout_ms=60000)
        self.assertTrue(got["ok"], got)
        seen = int(self.peer_calls("Say", "r")[0]["connect_timeout_ms"])
        self.assertLessEqual(seen, 5000)  # not the client's 60000
        self.assertGreaterEqual(seen, 1)

    def test_ConnectUnary_DeadlineAnswers504DeadlineExceededJson(self):
        # propagate off: the server does not know the deadline, so only the
        # sidecar can end the call.
        extra = 'request_timeout = "300ms"\ndeadline = { propagate = false }'
        for v in VERSIONS:
            with self.subTest(http=v):
                self.stack(policy(extra=extra), v)
                got = self.client(v, "say", scripted(key="slow", sleep_ms=3000))
                self.assertEqual((got["ok"], got["code"], got["message"]),
                                 (False, "deadline_exceeded", "upstream request timeout"))
                rec = self.records("/mulligan.test.Echo/Say")[-1]
                self.assertEqual((rec["status"], rec["timeout"]), (504, "request"))
                self.doCleanups()
                self.setUp()
        # The wire form, read raw.
        self.stack(policy(extra=extra), "1.1")
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        conn.request("POST", "/mulligan.test.Echo/Say", body=json.dumps(scripted(key="raw", sleep_ms=3000)),
                      headers={"Host": "127.0.0.1", "content-type": "application/json",
                               "connect-protocol-version": "1"})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        self.assertEqual((r.status, r.getheader("content-type")), (504, "application/json"))
        self.assertEqual(json.loads(body), {"code": "deadline_exceeded", "message": "upstream request timeout"})

    def test_ConnectServerStream_DeadlineEndsWithEndOfStreamDeadlineExceeded(self):
        extra = 'request_timeout = "300ms"\ndeadline = { propagate = false }'
        for v in VERSIONS:
            with self.subTest(http=v):
                self.stack(policy(extra=extra), v)
                got = self.client(v, "count", scripted(key="slow", sleep_ms=3000, messages=2))
                self.assertEqual((got["ok"], got["code"], got["values"]), (False, "deadline_exceeded", []))
                self.doCleanups()
                self.setUp()
        # Raw: 200, the request's content type, one end-of-stream envelope.
        self.stack(policy(extra=extra), "1.1")
        msg = json.dumps(scripted(key="raw", sleep_ms=3000, messages=1)).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        conn.request("POST", "/mulligan.test.Echo/Count", body=b"\0" + len(msg).to_bytes(4, "big") + msg,
                     headers={"Host": "127.0.0.1", "content-type": "application/connect+json"})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        self.assertEqual((r.status, r.getheader("content-type")), (200, "application/connect+json"))
        self.assertEqual(body[0], 2)  # end-of-stream
        self.assertEqual(int.from_bytes(body[1:5], "big"), len(body) - 5)
        self.assertEqual(json.loads(body[5:]),
                         {"error": {"code": "deadline_exceeded", "message": "upstream request timeout"}})

    def test_ConnectServerStream_DeadlineAfterAMessageEndsTheStreamWithDeadlineExceeded(self):
        # 3 s for the first message to come through even on a loaded machine;
        # the second would come a minute later.
        extra = 'request_timeout = "3s"\ndeadline = { propagate = false }'
        for v in VERSIONS:
            with self.subTest(http=v):
                self.stack(policy(extra=extra), v)
                got = self.client(v, "count", scripted(key="st", stall_ms=60000, messages=2))
                self.assertEqual((got["ok"], got["code"], got["values"]), (False, "deadline_exceeded", ["st:0"]))
                rec = self.records("/mulligan.test.Echo/Count")[-1]
                self.assertEqual((rec["status"], rec["timeout"]), (200, "request"))
                self.doCleanups()
                self.setUp()

    def test_ConnectCall_ConnectFailureAnswersUnavailableInConnectForm(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        s.close()
        need_connect_es()
        self.publish(policy().replace("PORT", str(closed)))
        self.start_sidecar()
        for v in VERSIONS:
            for method in ("say", "count"):
                with self.subTest(http=v, method=method):
                    got = self.client(v, method, scripted(key="x"))
                    self.assertEqual((got["ok"], got["code"]), (False, "unavailable"), got)
        # Raw unary over HTTP/2 with curl: 503, JSON.
        curl = need_tool("curl", "curl")
        r = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-D", "-", "-X", "POST",
                            "-H", "content-type: application/json", "-H", "connect-protocol-version: 1",
                            "--data", json.dumps(scripted(key="raw")),
                            f"http://127.0.0.1:{self.outbound_port}/mulligan.test.Echo/Say"],
                           capture_output=True, text=True, timeout=30)
        head, _, body = r.stdout.partition("\n\n")  # text mode: CRLF read as LF
        self.assertIn("HTTP/2 503", head, r)
        self.assertIn("content-type: application/json", head)
        self.assertEqual(json.loads(body)["code"], "unavailable")
        rec = self.records("/mulligan.test.Echo/Say")[-1]
        self.assertEqual((rec["status"], rec["sidecar_error"]), (503, "connect-failure"))


class OverloadTest(ConnectStack):
    """An upstream's x-envoy-overloaded: one attempt, the refusal counted."""

    OVERLOAD_POLICY = """version = 1
[[service]]
name = "busy"
hosts = ["busy"]
upstream = "127.0.0.1:{port}"
retry = { retry_on = ["503", "5xx"], num_retries = 3, backoff_base = "5ms", backoff_max = "10ms" }
"""

    def check_counted(self, n):
        route = self.stats_route("busy")
        self.assertEqual(route["retries_refused"]["overloaded"], n)
        self.assertEqual(route["retries"], 0)
        self.assertEqual(metric(self.metrics(),
                                'mulligan_retries_refused_total{service="busy",route="",reason="overloaded"}'), n)

    def test_H1ToH1_OverloadedUpstreamCalledOnceAndRefusalCounted(self):
        curl = need_tool("curl", "curl")
        h1, _ = self.start_peer()
        self.publish(self.OVERLOAD_POLICY.replace("{port}", str(h1)))
        self.start_sidecar()
        r = subprocess.run([curl, "-s", "-D", "-", "-o", "/dev/null", "-H", "Host: busy",
                            f"http://127.0.0.1:{self.outbound_port}/overloaded?i=1"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("503", r.stdout.splitlines()[0])
        self.assertIn("x-envoy-overloaded: true", r.stdout.lower())  # passed on to the caller
        rec = self.records("/overloaded?i=1")[-1]
        self.assertEqual((rec["status"], rec["attempts"], rec["retry_refused"]), (503, 1, "overloaded"))
        self.assertEqual(len(self.peer_calls("fallback")), 1)
        self.check_counted(1)

    def test_H2ToH2_OverloadedUpstreamCalledOnceAndRefusalCounted(self):
        nghttp = need_tool("nghttp", "nghttp2-client")
        _, h2 = self.start_peer()
        self.publish(self.OVERLOAD_POLICY.replace("{port}", str(h2)))
        self.start_sidecar()
        r = subprocess.run([nghttp, "-v", "-H", ":authority: busy", f"http://127.0.0.1:{self.outbound_port}/overloaded?i=2"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn(":status: 503", r.stdout)
        rec = self.records("/overloaded?i=2")[-1]
        self.assertEqual((rec["status"], rec["attempts"], rec["retry_refused"]), (503, 1, "overloaded"))
        self.assertEqual(len(self.peer_calls("fallback")), 1)
        self.check_counted(1)

    def test_H2ToH2_OwnOverflowReplyCarriesXEnvoyOverloaded(self):
        # The sidecar's own overload answer (--max-upstream-connections) says
        # x-envoy-overloaded too (HTTP/1: sidecar_upstream_pool_test).
        nghttp = need_tool("nghttp", "nghttp2-client")
        port, _ = self.start_h2_upstream()
        self.publish(self.OVERLOAD_POLICY.replace("{port}", str(port)))
        self.start_sidecar("--max-upstream-connections", "1")
        # Two calls at once on one connection: the second finds the one slot taken.
        r = subprocess.run([nghttp, "-v", "-H", ":authority: busy",
                            f"http://127.0.0.1:{self.outbound_port}/held?delay=2000&i=1",
                            f"http://127.0.0.1:{self.outbound_port}/held?delay=2000&i=2"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.count(":status: 503"), 1, r.stdout)
        self.assertIn("x-mulligan-overloaded: upstream-connections", r.stdout)
        self.assertIn("x-envoy-overloaded: true", r.stdout)


if __name__ == "__main__":
    unittest.main()
