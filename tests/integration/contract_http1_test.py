"""DESIGN.md rule by rule, end to end over HTTP/1.1: each test drives the real
sidecar with a real client and asserts the behaviour the contract names (the
header values and bodies, what the upstream saw, the access-log record),
not just a status code. Each test's docstring names the mutant it catches
(scripts/mutants applies them)."""
import email.utils
import http.client
import json
import socket
import subprocess
import time
import unittest

from harness import Stack, binary, need_tool, wait_for


def policy(upstream_port, service="", routes="", defaults=""):
    return f"""version = 1
[defaults]
{defaults}

[[service]]
name = "c"
hosts = ["c"]
upstream = "127.0.0.1:{upstream_port}"
{service}
{routes}
"""


def http_date(unix_s):
    return email.utils.formatdate(unix_s, usegmt=True)


class ContractHttp1Test(Stack):
    def call(self, path, method="GET", body=None, headers=None, host="c", timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=timeout)
        h = {"Host": host}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def record(self, marker):
        """The access-log record of the call whose path contains `marker`."""
        return wait_for(lambda: [r for r in self.access_records() if marker in r["path"]],
                        what=f"access-log record of {marker}")[-1]

    def seen(self, log, ident):
        return [s for s in self.upstream_log(log) if s.get("id") == ident]

    # -- Deadlines: the clock starts when the request headers arrive --------

    def test_deadline_clock_starts_at_the_request_headers_so_a_stalled_upload_gets_504(self):
        """Mutant deadline-start: the deadline timer armed only once the body
        has ended (or its start moved to the end of the body). An upload that
        never finishes must still end at the deadline, with the contract's 504."""
        port, log = self.start_upstream()
        self.publish(policy(port, routes='''
  [[service.route]]
  path_prefix = "/upload"
  request_timeout = "1s"
'''))
        self.start_sidecar()
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=20)
        self.addCleanup(s.close)
        # Half the declared body, then nothing: the upload stalls forever.
        s.sendall(b"PUT /upload?id=slow1 HTTP/1.1\r\nHost: c\r\nContent-Length: 10\r\n\r\nhello")
        resp = b""
        while b"upstream request timeout" not in resp:
            try:
                b = s.recv(65536)
            except socket.timeout:
                self.fail(f"no answer while the upload stalled: the deadline did not run during it ({resp!r})")
            if not b:
                break
            resp += b
        head, _, body = resp.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 504 "), resp)
        self.assertIn(b"\r\nx-mulligan-timeout: request", head.lower())
        self.assertEqual(body, b"upstream request timeout")
        rec = self.record("slow1")
        self.assertEqual((rec["status"], rec["timeout"], rec["deadline_ms"]), (504, "request", 1000))
        self.assertEqual(self.seen(log, "slow1"), [])  # the upstream never got a whole request

    def test_no_attempt_starts_with_less_than_min_attempt_budget_left(self):
        """Mutant min-attempt-budget: ProxyStream::startAttempt's own check
        deleted. A caller's 1 s budget under a 2 s min_attempt_budget: no
        attempt at all, the 504 at once, nothing upstream."""
        port, log = self.start_upstream()
        self.publish(policy(port, service='deadline = { min_attempt_budget = "2s" }'))
        self.start_sidecar()
        status, headers, body = self.call("/m?id=mab1", headers={"x-timeout-budget": "1000"})
        self.assertEqual((status, headers.get("x-mulligan-timeout"), body), (504, "request", b"upstream request timeout"))
        rec = self.record("mab1")
        self.assertEqual((rec["attempts"], rec["deadline_ms"], rec["timeout"]), (0, 1000, "request"))
        self.assertEqual(self.seen(log, "mab1"), [])
        # The same call with time enough goes through (the check is about time left, not a blanket refusal).
        status, _, _ = self.call("/m?id=mab2", headers={"x-timeout-budget": "5000"})
        self.assertEqual(status, 200)
        self.assertEqual(len(self.seen(log, "mab2")), 1)

    def test_times_sent_upstream_are_rounded_up_to_whole_milliseconds(self):
        """Mutant ceil-ms: retry::ceilMs rounds down. A per-try timeout of
        1000.5 ms goes out as x-envoy-expected-rq-timeout-ms: 1001, never
        1000; the deadline headers never exceed what the caller allowed."""
        port, log = self.start_upstream()
        self.publish(policy(port, service='retry = { per_try_timeout = "1000500us" }'))
        self.start_sidecar()
        status, _, _ = self.call("/r?id=ceil1", headers={"x-timeout-budget": "7000"})
        self.assertEqual(status, 200)
        s = self.seen(log, "ceil1")[0]
        self.assertEqual(s["x-envoy-expected-rq-timeout-ms"], "1001")
        budget = int(s["x-timeout-budget"])
        self.assertLessEqual(budget, 7000)
        self.assertGreater(budget, 0)
        self.assertEqual(self.record("ceil1")["deadline_ms"], 7000)
        # Mutant expected-rq-capped: a per-try timeout longer than the time
        # left is the time left (DESIGN.md: the smaller of the two). Both
        # headers come from one reading of the clock: equal, whatever the load.
        status, _, _ = self.call("/r?id=ceil2", headers={"x-timeout-budget": "800"})
        self.assertEqual(status, 200)
        s = self.seen(log, "ceil2")[0]
        self.assertEqual(s["x-envoy-expected-rq-timeout-ms"], s["x-timeout-budget"])
        self.assertLessEqual(int(s["x-timeout-budget"]), 800)

    def test_propagate_off_sends_no_deadline_and_accept_inbound_off_ignores_the_callers(self):
        """Mutants propagate (deadline.propagate ignored) and accept-inbound
        (deadline.accept_inbound ignored). propagate = false: the attempt
        carries its count but none of the deadline headers. accept_inbound =
        false: a caller's x-timeout-budget does not shorten request_timeout
        (the access log's deadline_ms, and what goes upstream)."""
        port, log = self.start_upstream()
        self.publish(policy(port, routes='''
  [[service.route]]
  path_prefix = "/quiet"
  request_timeout = "7s"
  deadline = { propagate = false }

  [[service.route]]
  path_prefix = "/deaf"
  request_timeout = "7s"
  deadline = { accept_inbound = false }
'''))
        self.start_sidecar()
        status, _, _ = self.call("/quiet?id=q1")
        self.assertEqual(status, 200)
        s = self.seen(log, "q1")[0]
        self.assertEqual(s["x-envoy-attempt-count"], "1")
        self.assertNotIn("x-timeout-budget", s)
        self.assertNotIn("x-envoy-expected-rq-timeout-ms", s)
        self.assertEqual(self.record("q1")["deadline_ms"], 7000)
        # A caller's own header is left as it was (not rewritten, nothing added).
        status, _, _ = self.call("/quiet?id=q2", headers={"x-timeout-budget": "3000"})
        self.assertEqual(status, 200)
        s = self.seen(log, "q2")[0]
        self.assertEqual(s["x-timeout-budget"], "3000")
        self.assertNotIn("x-envoy-expected-rq-timeout-ms", s)
        self.assertEqual(self.record("q2")["deadline_ms"], 3000)  # accepted, just not sent on
        status, _, _ = self.call("/deaf?id=d1", headers={"x-timeout-budget": "1000"})
        self.assertEqual(status, 200)
        self.assertEqual(self.record("d1")["deadline_ms"], 7000)
        s = self.seen(log, "d1")[0]
        self.assertGreater(int(s["x-timeout-budget"]), 1000)
        self.assertLessEqual(int(s["x-timeout-budget"]), 7000)

    def test_times_under_a_millisecond_go_out_as_1_never_0(self):
        """Mutant ms-floor: retry::ceilMs rounds down with no floor
        (us / 1000). DESIGN.md: times are rounded up and never sent as 0
        (many peers read 0 as "no deadline"). A route whose request_timeout
        is 500 us, with min_attempt_budget 0 so that the attempt starts: it
        goes out with at most 500 us left, so x-timeout-budget and
        x-envoy-expected-rq-timeout-ms must both say 1 (the mutant: 0). An
        inbound x-timeout-budget: 1 goes out as 1 as well.

        Why a policy's 500 us and not only the inbound 1 ms: the request's
        clock and its first attempt share one clock read (event::ClockScope),
        so an inbound 1 ms leaves exactly 1000 us at the attempt, which the
        mutant rounds to 1 too. Each tiny call follows a warm-up call on the
        same worker, so that its attempt takes a pooled connection and is
        written before the loop can run the deadline timer; the upstream
        then logs it whether the 504 or its own 200 reaches the client."""
        port, log = self.start_upstream()
        self.publish(policy(port, service='deadline = { min_attempt_budget = "0ms" }', routes='''
  [[service.route]]
  path_prefix = "/tiny"
  request_timeout = "500us"
'''))
        self.start_sidecar()
        for i in range(5):  # one would do; a few more in case a pooled connection was closed meanwhile
            self.assertEqual(self.call(f"/warm?id=warm{i}a")[0], 200)
            status, _, _ = self.call(f"/tiny?id=tiny{i}")
            self.assertIn(status, (200, 504))
            self.assertEqual(self.call(f"/warm?id=warm{i}b")[0], 200)
            status, _, _ = self.call(f"/inbound?id=inb{i}", headers={"x-timeout-budget": "1"})
            self.assertIn(status, (200, 504))
        # The access log rounds up too: the 500 us route's deadline_ms is 1, not 0.
        for prefix, deadline_ms in (("tiny", 1), ("inb", 1)):
            seen = wait_for(lambda: [s for s in self.upstream_log(log) if s.get("id", "").startswith(prefix)],
                            what=f"a {prefix} request upstream")
            for s in seen:
                self.assertEqual((s["x-timeout-budget"], s["x-envoy-expected-rq-timeout-ms"]), ("1", "1"), s)
            if deadline_ms:
                self.assertEqual(self.record(seen[0]["id"])["deadline_ms"], deadline_ms)

    # -- Retry-After ---------------------------------------------------------

    def test_retry_after_as_an_http_date_is_waited_for(self):
        """Mutant retry-after-date: HTTP-dates not parsed (plain backoff
        instead). A 503 with Retry-After four seconds ahead as an HTTP-date:
        the retry comes at least 1.5 s later (the date's resolution is one
        second), and the call succeeds."""
        port, log = self.start_upstream()
        self.publish(policy(port))
        self.start_sidecar()
        # Four seconds ahead (within the default retry_after_max of 5 s): the
        # wait is at least 1.5 s even if this machine stalls 2.5 s first.
        date = http_date(int(time.time()) + 4)
        status, _, body = self.call("/ra?fail_first=1&id=date1&retry_after=" + date.replace(" ", "+"))
        self.assertEqual((status, body), (200, b"ok\n"))
        seen = self.seen(log, "date1")
        self.assertEqual(len(seen), 2)
        self.assertGreaterEqual(seen[1]["ts"] - seen[0]["ts"], 1500, seen)  # a lower bound: load only adds
        self.assertEqual(self.record("date1")["retry_reasons"], "503")

    def test_retry_after_http_date_beyond_retry_after_max_returns_the_503_as_it_is(self):
        """Mutant retry-after-date: an HTTP-date a minute ahead is beyond the
        default retry_after_max (5 s): no retry, the 503 goes back with its
        Retry-After, and the log says pushback-too-long."""
        port, log = self.start_upstream()
        self.publish(policy(port))
        self.start_sidecar()
        date = http_date(int(time.time()) + 60)
        status, headers, body = self.call("/ra?fail_first=1&id=date2&retry_after=" + date.replace(" ", "+"))
        self.assertEqual((status, headers.get("retry-after"), body), (503, date, b"503 Service Unavailable\n"))
        self.assertEqual(len(self.seen(log, "date2")), 1)
        rec = self.record("date2")
        self.assertEqual((rec["attempts"], rec["retry_refused"]), (1, "pushback-too-long"))

    def test_pushback_longer_than_retry_after_max_is_not_waited_for(self):
        """Mutant retry-after-max: the retry_after_max check deleted (the
        sidecar would wait 10 s and retry). Retry-After: 10 against
        retry_after_max 2s, with 15 s of deadline left: no retry."""
        port, log = self.start_upstream()
        self.publish(policy(port, service='retry = { retry_after_max = "2s" }'))
        self.start_sidecar()
        status, headers, body = self.call("/ra?fail_first=1&id=max1&retry_after=10", timeout=60)
        self.assertEqual((status, headers.get("retry-after"), body), (503, "10", b"503 Service Unavailable\n"))
        self.assertEqual(len(self.seen(log, "max1")), 1)
        rec = self.record("max1")
        self.assertEqual((rec["attempts"], rec["retry_refused"], rec["deadline_ms"]), (1, "pushback-too-long", 15000))
        stats = json.loads(subprocess.run(["curl", "-s", f"http://127.0.0.1:{self.admin_port}/stats"],
                                          capture_output=True, text=True, timeout=10).stdout)
        self.assertEqual(stats["retries"], 0)

    # -- What the client gets ------------------------------------------------

    def test_per_try_timeout_answers_504_with_the_contract_body(self):
        """Mutant per-try-body: the per-try 504 with another body. DESIGN.md:
        body `upstream request timeout`, x-mulligan-timeout: per-try."""
        port, log = self.start_upstream()
        self.publish(policy(port, service='retry = { retry_on = ["5xx"], per_try_timeout = "200ms" }'))
        self.start_sidecar()
        status, headers, body = self.call("/pt?delay=5s&id=pt1")
        self.assertEqual(status, 504)
        self.assertEqual(body, b"upstream request timeout")
        self.assertEqual(headers.get("x-mulligan-timeout"), "per-try")
        rec = self.record("pt1")
        self.assertEqual((rec["status"], rec["timeout"], rec["attempts"]), (504, "per-try", 1))
        self.assertEqual(self.seen(log, "pt1")[0]["x-envoy-expected-rq-timeout-ms"], "200")

    def test_when_retries_run_out_the_last_upstream_response_is_returned_as_it_was(self):
        """Mutant own-reply-when-exhausted: the sidecar answers its own 503
        once retries are spent instead of passing the last upstream response
        on. The client gets the third answer's head and body byte for byte."""
        port, log = self.start_upstream()
        self.publish(policy(port, service='retry = { num_retries = 2, backoff_base = "1ms", backoff_max = "2ms" }'))
        self.start_sidecar()
        status, headers, body = self.call("/last?status=503&id=last1")
        seen = self.seen(log, "last1")
        self.assertEqual(len(seen), 3)
        self.assertEqual(status, 503)
        self.assertEqual(body, b"503 Service Unavailable\n")
        self.assertEqual(headers.get("content-type"), "text/plain")
        self.assertEqual(headers.get("x-upstream-name"), "upstream")
        self.assertEqual(headers.get("x-upstream-seen"), str(seen[-1]["seen"]))  # the last one, not the first
        self.assertNotIn("x-mulligan-timeout", headers)
        rec = self.record("last1")
        self.assertEqual((rec["attempts"], rec["retry_reasons"], rec["sidecar_error"]), (3, "503,503", ""))

    def test_a_body_larger_than_max_buffered_body_is_not_retried_once_sent(self):
        """Mutant body-too-large: the engine's body check deleted. DESIGN.md:
        a request body larger than max_buffered_body is not retried once sent
        (the refusal says body-too-large); the client gets the upstream's
        answer as it was. A body that fits is replayed whole."""
        port, log = self.start_upstream()
        self.publish(policy(port, service='request_timeout = "5s"\n'
                                          'retry = { retry_on = ["5xx"], num_retries = 2, max_buffered_body = "1KiB", '
                                          'backoff_base = "1ms", backoff_max = "2ms" }'))
        self.start_sidecar()
        status, _, body = self.call("/big?status=503&id=big1", method="PUT", body=b"b" * 4096)
        self.assertEqual((status, body), (503, b"503 Service Unavailable\n"))
        self.assertEqual([s["body_bytes"] for s in self.seen(log, "big1")], [4096])
        rec = self.record("big1")
        self.assertEqual((rec["attempts"], rec["retry_refused"]), (1, "body-too-large"))
        status, _, body = self.call("/small?status=503&id=small1", method="PUT", body=b"s" * 1000)
        self.assertEqual((status, body), (503, b"503 Service Unavailable\n"))
        self.assertEqual([s["body_bytes"] for s in self.seen(log, "small1")], [1000, 1000, 1000])
        self.assertEqual(self.record("small1")["retry_reasons"], "503,503")

    def test_without_a_policy_live_traffic_gets_the_builtin_defaults(self):
        """Mutant builtin-defaults: the sidecar without a table uses other
        values than DESIGN.md's [defaults] (no retry, no request_timeout).
        A 503 is retried once, GET only; the deadline headers carry 15 s."""
        port, log = self.start_upstream()
        self.start_sidecar()  # nothing published
        proxy = f"http://127.0.0.1:{self.outbound_port}"
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-x", proxy,
                            f"http://127.0.0.1:{port}/d?fail_first=1&id=def1"], capture_output=True, timeout=60)
        self.assertEqual(r.stdout, b"ok\n", r.stderr)
        seen = self.seen(log, "def1")
        self.assertEqual([s["x-envoy-attempt-count"] for s in seen], ["1", "2"])
        for s in seen:
            self.assertLessEqual(int(s["x-timeout-budget"]), 15000)
            self.assertGreater(int(s["x-timeout-budget"]), 10000)
            self.assertEqual(s["x-envoy-expected-rq-timeout-ms"], s["x-timeout-budget"])  # no per-try timeout
        rec = self.record("def1")
        self.assertEqual((rec["deadline_ms"], rec["retry_reasons"], rec["service"]), (15000, "503", ""))
        # Only one retry (num_retries = 1), and POST without an idempotency key never.
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-x", proxy,
                            f"http://127.0.0.1:{port}/d?fail_first=2&id=def2"], capture_output=True, timeout=60)
        self.assertEqual(r.stdout, b"503")
        self.assertEqual(len(self.seen(log, "def2")), 2)
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-x", proxy,
                            "-d", "x=1", f"http://127.0.0.1:{port}/d?fail_first=1&id=def3"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.stdout, b"503")
        self.assertEqual(len(self.seen(log, "def3")), 1)
        self.assertEqual(self.record("def3")["retry_refused"], "idempotency")


class AdminDefaultTest(Stack):
    def test_admin_endpoint_binds_to_loopback_by_default(self):
        """Mutant admin-any: the default --admin address 0.0.0.0:15000. The
        sidecar runs without --admin in a network namespace of its own (so
        that the fixed default port is free), and the kernel's socket table
        of that namespace must show the admin listener on 127.0.0.1 only."""
        unshare = need_tool("unshare", "util-linux")
        need_tool("ip", "iproute2")
        probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest("cannot create a user and network namespace here: " + probe.stderr.strip())
        err = self.path("sidecar.err")
        proc = self.start(unshare, "-rn", "sh", "-c", 'ip link set lo up && exec "$0" --shm "$1"',
                          binary("mulligan-sidecar"), self.shm, stderr_file=err)
        wait_for(lambda: proc.poll() is not None or "listening admin " in open(err).read(), what="sidecar start")
        self.assertIsNone(proc.poll(), open(err).read())
        self.assertIn("listening admin 127.0.0.1:15000", open(err).read())

        def listeners():
            out = []
            for table in ("tcp", "tcp6"):
                with open(f"/proc/{proc.pid}/net/{table}") as f:
                    for line in list(f)[1:]:
                        local, state = line.split()[1], line.split()[3]
                        if state == "0A":  # LISTEN
                            out.append(local)
            return out
        found = wait_for(lambda: [l for l in listeners() if l.endswith(":3A98")], what="admin listener")
        self.assertEqual(found, ["0100007F:3A98"])  # 127.0.0.1:15000, and no other address


if __name__ == "__main__":
    unittest.main()
