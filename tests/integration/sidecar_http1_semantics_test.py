"""HTTP/1.1 message semantics through mulligan-sidecar (RFC 9110 / 9112):
responses without bodies (HEAD, 204, 304) keep the connection usable,
hop-by-hop fields (and those the Connection header names) are not forwarded,
HTTP/1.0 clients are answered in a form they can read, and a request the
client keeps alive stays on one downstream connection. Raw sockets where
the exact bytes matter; the fortio-like test upstream behind."""
import json
import socket
import time
import unittest

from harness import Stack, wait_for


def policy(upstream_port):
    return f"""version = 1
[[service]]
name = "svc"
hosts = ["svc"]
upstream = "127.0.0.1:{upstream_port}"
"""


def raw_listener(test):
    """A listening socket on a free loopback port, for an upstream a test
    scripts by hand; closed when the test ends."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    test.addCleanup(srv.close)
    return srv


def read_response(sock, head_only=False):
    """One response from `sock`: (status, headers dict, body). Reads exactly
    its framing (content-length or chunked), nothing beyond."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            raise AssertionError("connection closed before a response head: %r" % buf)
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    if head_only or status in (204, 304) or status < 200:
        return status, headers, rest
    if "content-length" in headers:
        n = int(headers["content-length"][0])
        while len(rest) < n:
            b = sock.recv(65536)
            if not b:
                break
            rest += b
        return status, headers, rest[:n]
    if headers.get("transfer-encoding") == ["chunked"]:
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            if size == 0:
                return status, headers, body
            body += rest[:size]
            rest = rest[size + 2:]
    # Close-delimited.
    while True:
        b = sock.recv(65536)
        if not b:
            return status, headers, rest
        rest += b


class Http1SemanticsTest(Stack):
    def setUp(self):
        super().setUp()
        self.port, self.log = self.start_upstream()
        self.publish(policy(self.port))
        self.start_sidecar()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=10)
        self.addCleanup(s.close)
        return s

    def test_head_204_and_304_have_no_body_and_keep_the_connection(self):
        s = self.connect()
        s.sendall(b"HEAD /h?size=5000 HTTP/1.1\r\nHost: svc\r\n\r\n")
        status, headers, rest = read_response(s, head_only=True)
        self.assertEqual(status, 200)
        # HEAD gets the length a GET would get, and no body bytes.
        self.assertEqual(headers["content-length"], ["5000"])
        self.assertEqual(rest, b"")
        for code in (204, 304):
            s.sendall(b"GET /n?status=%d HTTP/1.1\r\nHost: svc\r\n\r\n" % code)
            status, headers, rest = read_response(s)
            self.assertEqual(status, code)
            self.assertNotIn("transfer-encoding", headers)
            self.assertEqual(rest, b"")
        # The same connection still works: nothing stray was left in it.
        s.sendall(b"GET /after?echo_path=1 HTTP/1.1\r\nHost: svc\r\n\r\n")
        status, _, body = read_response(s)
        self.assertEqual((status, body), (200, b"/after?echo_path=1\n"))
        seen = self.upstream_log(self.log)
        self.assertEqual([r["method"] for r in seen], ["HEAD", "GET", "GET", "GET"])

    def test_hop_by_hop_and_connection_named_fields_are_not_forwarded(self):
        s = self.connect()
        s.sendall(b"GET /hop HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, X-Private\r\n"
                  b"X-Private: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
                  b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Kept: yes\r\n\r\n")
        status, _, _ = read_response(s)
        self.assertEqual(status, 200)
        seen = self.upstream_log(self.log)
        self.assertEqual(len(seen), 1)
        names = {k.lower() for k, _ in seen[0]["headers"]}
        for gone in ("x-private", "keep-alive", "te", "proxy-authorization"):
            self.assertNotIn(gone, names)
        self.assertIn("x-kept", names)
        # The upstream's own hop-by-hop fields do not reach the client either.
        self.assertNotIn("keep-alive", {k for k in read_headers_of(s, b"GET /again HTTP/1.1\r\nHost: svc\r\n\r\n")})

    def test_a_trailer_name_with_a_space_gets_400_and_the_connection_ends(self):
        # A trailer is forwarded like a header: a name that is not a token is
        # refused, not passed on to a peer that might read it differently.
        s = self.connect()
        s.sendall(b"POST /t HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\nX Sum: 42\r\n\r\n")
        status, headers, body = read_response(s)
        self.assertEqual(status, 400)
        # Our words, or llhttp's (its strict build refuses the space itself).
        self.assertRegex(body, b"invalid trailer name|Invalid header token")
        self.assertEqual(headers["connection"], ["close"])
        s.settimeout(5)
        self.assertEqual(s.recv(100), b"")  # closed after the answer
        # A well-formed trailer on a new connection goes through.
        s2 = self.connect()
        s2.sendall(b"POST /t2 HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n")
        status, _, _ = read_response(s2)
        self.assertEqual(status, 200)

    def test_a_bad_body_after_the_response_began_ends_the_connection_without_a_400(self):
        # An upstream that answers as soon as it has the request head, before
        # the body: its response is on its way to the client when the client's
        # body turns out malformed. A 400 then would land inside that response;
        # the connection ends instead and the client sees a cut-short body.
        import threading
        srv = raw_listener(self)
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])

        def serve():
            c, _ = srv.accept()
            conns.append(c)
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")  # half the body
        threading.Thread(target=serve, daemon=True).start()
        self.publish(policy(srv.getsockname()[1]))  # taken by the next request
        s = self.connect()
        s.sendall(b"POST /early HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        got = b""
        while b"hello" not in got:
            b = s.recv(65536)
            self.assertTrue(b, got)
            got += b
        s.sendall(b"zz\r\n")  # not a chunk size
        s.settimeout(5)
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
        self.assertNotIn(b"400", got)
        self.assertTrue(got.endswith(b"hello"), got)  # 5 of 10 body bytes, then the close

    def test_response_heads_pass_as_received_only_when_nothing_must_change(self):
        # A scripted upstream: one canned answer per request, on one
        # keep-alive connection. A plain HTTP/1.1 head framed by one
        # Content-Length reaches the client byte for byte (the sidecar copies
        # it whole); every other shape is rewritten field by field.
        import threading
        answers = [
            b"HTTP/1.1 200 OK\r\nX-Up:  1\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Priv\r\nKeep-Alive: timeout=5\r\nX-Priv: 1\r\n"
            b"Content-Length: 2\r\n\r\nok",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ]
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        self.addCleanup(srv.close)

        pending = list(answers)

        def serve_connection(c):
            # The sidecar may open another connection (it does not reuse one
            # after an HTTP/1.0 answer): the script goes on there.
            with c:
                buf = b""
                while pending:
                    while b"\r\n\r\n" not in buf:
                        d = c.recv(4096)
                        if not d:
                            return
                        buf += d
                    buf = buf.split(b"\r\n\r\n", 1)[1]
                    c.sendall(pending.pop(0))
                c.recv(1)

        def serve():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=serve_connection, args=(c,), daemon=True).start()
        threading.Thread(target=serve, daemon=True).start()
        self.publish(policy(srv.getsockname()[1]))  # in force from the next request on
        s = self.connect()

        def exchange():
            s.sendall(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(4096)
            head, rest = buf.split(b"\r\n\r\n", 1)
            return head + b"\r\n\r\n", rest

        head, rest = exchange()
        self.assertEqual(head, b"HTTP/1.1 200 OK\r\nX-Up:  1\r\nContent-Length: 2\r\n\r\n")
        while len(rest) < 2:
            rest += s.recv(4096)
        self.assertEqual(rest, b"ok")
        for i in range(1, len(answers)):
            head, rest = exchange()
            lines = head.decode("latin-1").split("\r\n")
            self.assertEqual(lines[0], "HTTP/1.1 200 OK", i)
            names = [l.split(":", 1)[0].lower() for l in lines[1:] if l]
            for gone in ("connection", "keep-alive", "x-priv"):
                self.assertNotIn(gone, names, i)
            if i == 3:
                self.assertEqual(names.count("transfer-encoding"), 1)
                while not rest.endswith(b"0\r\n\r\n"):
                    rest += s.recv(4096)
                self.assertEqual(rest, b"2\r\nok\r\n0\r\n\r\n")
            else:
                self.assertEqual(names.count("content-length"), 1, i)
                while len(rest) < 2:
                    rest += s.recv(4096)
                self.assertEqual(rest, b"ok", i)

    def test_http10_client_gets_a_readable_answer_and_the_connection_ends(self):
        s = self.connect()
        s.sendall(b"GET /old?size=100 HTTP/1.0\r\nHost: svc\r\n\r\n")
        status, headers, body = read_response(s)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), 100)
        self.assertNotIn("transfer-encoding", headers)  # HTTP/1.0 cannot read chunked
        s.settimeout(5)
        self.assertEqual(s.recv(1), b"")  # no keep-alive asked: the sidecar closes

    def test_keep_alive_requests_share_one_downstream_and_one_upstream_connection(self):
        s = self.connect()
        for i in range(20):
            s.sendall(b"GET /k?i=%d HTTP/1.1\r\nHost: svc\r\n\r\n" % i)
            status, _, body = read_response(s)
            self.assertEqual((status, body), (200, b"ok\n"))
        seen = self.upstream_log(self.log)
        self.assertEqual(len(seen), 20)
        self.assertEqual(len({r["conn"] for r in seen}), 1, "upstream connection was not reused")
        recs = wait_for(lambda: len(self.access_records()) >= 20 and self.access_records(), what="access log")
        self.assertTrue(all(r["status"] == 200 and r["attempts"] == 1 for r in recs))


def read_headers_of(sock, request):
    sock.sendall(request)
    _, headers, _ = read_response(sock)
    return headers


if __name__ == "__main__":
    unittest.main()


class Http1BackPressureTest(Stack):
    """A slow upstream slows the app's upload down instead of filling the
    sidecar's memory: the sidecar stops reading the app while what it
    queued for the upstream is not taken."""

    def test_a_held_upload_whose_rest_had_already_arrived_completes(self):
        import threading
        # The whole body reaches the sidecar at once, but an upstream that
        # reads nothing for a while makes it stop reading the app; what it
        # had received by then must be forwarded once the upstream catches
        # up, though the app sends nothing more.
        srv = raw_listener(self)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        size = 384 << 10
        got = {}

        def serve():
            c, _ = srv.accept()
            with c:
                time.sleep(0.5)  # the sidecar's backlog fills meanwhile
                c.settimeout(10)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += c.recv(65536)
                head, body = buf.split(b"\r\n\r\n", 1)
                while len(body) < size:
                    b = c.recv(65536)
                    if not b:
                        break
                    body += b
                got["body"] = len(body)
                msg = b"got %d" % len(body)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg))
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self.publish(policy(srv.getsockname()[1]))
        self.start_sidecar()
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"PUT /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: %d\r\n\r\n" % size + b"y" * size)
        status, _, body = read_response(s)
        self.assertEqual((status, body), (200, b"got %d" % size))
        t.join(5)

    def test_upload_to_an_upstream_that_does_not_read_is_held_back(self):
        import os
        import threading
        # An upstream that accepts and then never reads (a stuck service).
        srv = raw_listener(self)
        held = []
        stop = threading.Event()

        def accept():
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                    held.append(c)
                except OSError:
                    pass
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        self.addCleanup(lambda: [c.close() for c in held])
        self.addCleanup(stop.set)
        self.publish(policy(srv.getsockname()[1]))
        self.start_sidecar()

        total = 200 << 20
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"PUT /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: %d\r\n\r\n" % total)
        s.setblocking(False)
        chunk = b"x" * (1 << 16)
        sent = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and sent < total:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        # Socket buffers on both hops take some megabytes; without
        # back-pressure the sidecar would read all 200 MiB into memory.
        self.assertLess(sent, 100 << 20, "the sidecar kept reading an upload nobody took")
        with open(f"/proc/{self.sidecar_proc.pid}/status") as f:
            rss_kib = int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
        self.assertLess(rss_kib, 80 * 1024, f"sidecar RSS {rss_kib} KiB while holding an upload")
