"""The sidecar's upstream HTTP/1 connections: the per-destination cap
(--max-upstream-connections, Envoy's max_connections circuit breaker) and
connection reuse after a retried response."""
import http.client
import json
import socket
import subprocess
import threading
import time
import unittest

from harness import Stack, wait_for


def policy(upstream_port, retry="", name="svc", extra_service=""):
    return f"""version = 1
[[service]]
name = "{name}"
hosts = ["{name}"]
upstream = "127.0.0.1:{upstream_port}"
{retry}
{extra_service}
"""


class KeepAliveUpstream:
    """A minimal keep-alive HTTP/1.1 upstream that answers every request with
    200 "ok" and, with `close_after`, closes a connection that long after its
    last answer (a server's own keep-alive timeout). It notes when it saw a
    connection closed by the sidecar."""

    def __init__(self, close_after=None):
        self.close_after = close_after
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.peer_closed_at = []  # time.monotonic() of each close by the sidecar
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        with conn:
            conn.settimeout(self.close_after)
            while True:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    return  # our keep-alive timeout: close
                except OSError:
                    data = b""
                if not data:
                    self.peer_closed_at.append(time.monotonic())
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")

    def close(self):
        self.sock.close()


class UpstreamPoolTest(Stack):
    def get(self, path, host="svc", conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def stats(self):
        r = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{self.admin_port}/stats"],
                           capture_output=True, timeout=20)
        return json.loads(r.stdout)

    def test_cap_of_two_answers_503_overloaded_to_the_rest_and_frees_slots(self):
        port, log = self.start_upstream()
        self.publish(policy(port))
        self.start_sidecar("--max-upstream-connections", "2")
        # Two calls hold both connections (the upstream answers after
        # 500 ms); the other three arrive while they do.
        results = {}
        first = [threading.Thread(target=lambda i=i: results.__setitem__(i, self.get(f"/slow?delay=500ms&i={i}")))
                 for i in range(2)]
        for t in first:
            t.start()
        wait_for(lambda: len(self.upstream_log(log)) >= 2, what="two calls at the upstream")
        rest = [threading.Thread(target=lambda i=i: results.__setitem__(i, self.get(f"/slow?delay=500ms&i={i}")))
                for i in range(2, 5)]
        for t in rest:
            t.start()
        for t in first + rest:
            t.join()
        statuses = sorted(s for s, _, _ in results.values())
        self.assertEqual(statuses, [200, 200, 503, 503, 503])
        for i in range(2, 5):
            status, headers, body = results[i]
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("x-mulligan-overloaded"), "upstream-connections")
            # ... and the signal a caller's Envoy honours (DESIGN.md "Overload signals").
            self.assertEqual(headers.get("x-envoy-overloaded"), "true")
            self.assertIn(b"max upstream connections", body)
        self.assertEqual(len(self.upstream_log(log)), 2)  # overflow is answered, never sent or retried
        s = self.stats()
        self.assertEqual(s["upstream_overflow"], 3)
        self.assertEqual(s["upstream_connects"], 2)
        recs = wait_for(lambda: len(self.access_records()) >= 5 and self.access_records(), what="access log")
        self.assertEqual(sorted(r.get("sidecar_error", "") for r in recs).count("overflow"), 3)
        # The connections went back: new calls, sequential and concurrent, succeed.
        for i in range(5):
            self.assertEqual(self.get(f"/fast?i={i}")[0], 200)
        again = {}
        ts = [threading.Thread(target=lambda i=i: again.__setitem__(i, self.get(f"/slow?delay=100ms&j={i}")[0]))
              for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(sorted(again.values()), [200, 200])
        self.assertEqual(self.stats()["upstream_overflow"], 3)

    def test_slots_are_released_on_reset_and_connect_failure(self):
        port, log = self.start_upstream()
        # A port nobody listens on: bind one and close it.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
        s.close()
        self.publish(policy(port, retry='retry = { retry_on = ["reset", "connect-failure"], num_retries = 2, '
                                        'backoff_base = "1ms", backoff_max = "1ms" }\nbudget = { retry_ratio = 1.0 }')
                     + f"""
[[service]]
name = "dead"
hosts = ["dead"]
upstream = "127.0.0.1:{dead_port}"
retry = {{ retry_on = ["connect-failure"], num_retries = 2, backoff_base = "1ms", backoff_max = "1ms" }}
budget = {{ retry_ratio = 1.0 }}
""")
        # With a cap of one, any slot not given back turns the next attempt
        # (a retry included) into a 503 overloaded.
        self.start_sidecar("--max-upstream-connections", "1")
        for i in range(3):
            status, headers, _ = self.get(f"/reset?close=1&i={i}")
            self.assertEqual(status, 502)
            self.assertNotIn("x-mulligan-overloaded", headers)
            status, headers, _ = self.get(f"/x?i={i}", host="dead")
            self.assertEqual(status, 502)
            self.assertNotIn("x-mulligan-overloaded", headers)
            self.assertEqual(self.get(f"/ok?i={i}")[0], 200)
        s = self.stats()
        self.assertEqual(s["upstream_overflow"], 0)
        self.assertEqual(s["retries"], 12)  # 2 per failing call: every retry found its slot free
        self.assertGreaterEqual(s["upstream_connect_failures"], 9)

    def test_retried_503s_return_their_connections_to_the_pool(self):
        port, log = self.start_upstream()
        # 8 retries: one call failing all 9 draws of 10% is 10^-6 a run.
        # fresh_connection = false: a retry takes the pooled connection
        # (with the default, each retry opens a new one on purpose).
        self.publish(policy(port, retry='retry = { retry_on = ["503"], num_retries = 8, backoff_base = "1ms", '
                                        'backoff_max = "2ms", fresh_connection = false }\n'
                                        'budget = { retry_ratio = 1.0 }'))
        self.start_sidecar()
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        for i in range(1000):
            self.assertEqual(self.get(f"/echo?status=503:10&i={i}", conn=conn)[0], 200)
        conn.close()
        s = self.stats()
        self.assertGreater(s["retries"], 50)
        # One client connection, one call at a time: a retried 503's
        # connection is reused, not closed (before: one connect per retry).
        self.assertLess(s["upstream_connects"] * 10, s["retries"])
        self.assertLessEqual(s["upstream_connects"], 4)

    def test_connection_per_request_clients_need_no_more_upstream_connections_than_calls_in_flight(self):
        # wrk -c16 with Connection: close: a new app connection per request,
        # at most 16 calls at once. Its request is parsed right at accept; a
        # finished call's upstream connection must already be back in the
        # pool by then (it went back only at deferred deletion: 63 upstream
        # connections for wrk -c32, 103 for -c64).
        port, _ = self.start_upstream()
        self.publish(policy(port))
        self.start_sidecar()
        out = subprocess.run(["wrk", "-t1", "-c16", "-d2s", "-H", "Host: svc", "-H", "Connection: close",
                              f"http://127.0.0.1:{self.outbound_port}/echo"],
                             capture_output=True, text=True, timeout=60).stdout
        self.assertNotIn("Non-2xx", out, out)
        s = self.stats()
        self.assertGreater(s["requests"], 500, out)
        self.assertLessEqual(s["upstream_connects"], 16, {k: s[k] for k in ("requests", "upstream_connects", "upstream_reused")})

    def test_retried_503_with_a_body_still_arriving_is_drained_and_reused(self):
        port, log = self.start_upstream()
        self.publish(policy(port, retry='retry = { retry_on = ["503"], num_retries = 1, backoff_base = "1ms", '
                                        'backoff_max = "2ms", fresh_connection = false }\n'
                                        'budget = { retry_ratio = 1.0 }'))
        self.start_sidecar()
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        # Each call's first attempt gets a 503 with a 48 KiB body: more than
        # one read, so the pool drains the rest after the retry walked away.
        for i in range(30):
            status, _, body = self.get(f"/big?fail_first=1&id=d{i}&size=48KiB", conn=conn)
            self.assertEqual(status, 200)
            self.assertEqual(len(body), 48 * 1024)
        conn.close()
        s = self.stats()
        self.assertEqual(s["retries"], 30)
        self.assertLessEqual(s["upstream_connects"], 4)
        # Too large to drain: closed as before, one new connection per retry.
        # (Another upstream: a pool of its own, no idle connections left over.)
        port2, _ = self.start_upstream("upstream2")
        self.publish(policy(port, retry='retry = { retry_on = ["503"], num_retries = 1, backoff_base = "1ms", '
                                        'backoff_max = "2ms" }\nbudget = { retry_ratio = 1.0 }')
                     + policy(port2, name="svc2", retry='retry = { retry_on = ["503"], num_retries = 1, '
                                                        'backoff_base = "1ms", backoff_max = "2ms" }\n'
                                                        'budget = { retry_ratio = 1.0 }').replace("version = 1\n", ""))
        wait_for(lambda: self.get("/ok", host="svc2")[0] == 200, what="policy with svc2")
        before = self.stats()["upstream_connects"]
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        for i in range(5):
            self.assertEqual(self.get(f"/big?fail_first=1&id=h{i}&size=1MiB", host="svc2", conn=conn)[0], 200)
        conn.close()
        self.assertGreaterEqual(self.stats()["upstream_connects"] - before, 5)
    def test_an_upstream_closing_an_idle_pooled_connection_costs_no_call(self):
        # The upstream closes each connection 100 ms after its answer. The
        # pool sees the EOF while the connection is idle and drops it, so the
        # next call opens a new one instead of failing on the dead one (no
        # retries allowed here: a failed reuse would be a 502).
        up = KeepAliveUpstream(close_after=0.1)
        self.addCleanup(up.close)
        self.publish(policy(up.port, retry="retry = { num_retries = 0 }"))
        self.start_sidecar()
        self.assertEqual(self.get("/first")[0], 200)
        wait_for(lambda: up.accepted == 1, what="first connection")

        def sidecar_still_holds_it():
            # The kernel's view: the sidecar's end of a connection to the
            # upstream, open (01 ESTABLISHED) or half-closed (08 CLOSE_WAIT).
            with open(f"/proc/{self.sidecar_proc.pid}/net/tcp") as f:
                rows = [line.split() for line in list(f)[1:]]
            return any(r[2].endswith(":%04X" % up.port) and r[3] in ("01", "08") for r in rows)
        # The upstream closes it 0.1 s after the answer; the pool drops it:
        # waited for on the socket table, not slept on.
        wait_for(lambda: not sidecar_still_holds_it(), what="the pool dropping the closed connection")
        self.assertEqual(self.get("/second")[0], 200)
        s = self.stats()
        self.assertEqual(up.accepted, 2)
        self.assertEqual(s["upstream_connects"], 2)
        self.assertEqual(s["upstream_reused"], 0)

    def test_pooled_connection_closes_idle_timeout_after_its_last_use(self):
        # idle_timeout 2 s; the connection is used every 0.5 s for longer
        # than that: it stays open throughout (the pool's lazy timer counts
        # from the LAST put), then closes about 2 s after the last call.
        # (0.5 s gaps against 2 s stay inside it on a loaded machine, where
        # 100 ms gaps against 300 ms did not.)
        up = KeepAliveUpstream()
        self.addCleanup(up.close)
        self.publish(policy(up.port, extra_service='idle_timeout = "2s"'))
        self.start_sidecar()
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        last_sent = 0.0
        for i in range(6):
            if i:
                time.sleep(0.5)
            last_sent = time.monotonic()
            self.assertEqual(self.get(f"/use?i={i}", conn=conn)[0], 200)
        self.assertEqual(up.accepted, 1)
        wait_for(lambda: up.peer_closed_at, timeout=30, what="the sidecar closing the idle upstream connection")
        closed_after = up.peer_closed_at[0] - last_sent
        self.assertGreaterEqual(closed_after, 1.9)  # after the last use, not the first
        conn.close()
        s = self.stats()
        self.assertEqual(s["upstream_connects"], 1)
        self.assertEqual(s["upstream_reused"], 5)

if __name__ == "__main__":
    unittest.main()
