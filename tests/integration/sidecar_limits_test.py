"""The sidecar under exhausted resources and slow clients (issue 15 findings
1-3, issue 16 item 4): accept pauses when descriptors run out instead of
spinning, a bound on connections per worker derived from RLIMIT_NOFILE keeps
it from running out in the first place, a request-header timeout cuts heads
that never end, and more than one --outbound address is listened on.

Settings go through the environment (MULLIGAN_MAX_CONNECTIONS,
MULLIGAN_REQUEST_HEADER_TIMEOUT) where that lets a sidecar without them start
and show the old failure. No assertion is about how long something took,
except the one a spin cannot pass: CPU time well under wall time."""
import json
import os
import re
import resource
import selectors
import shutil
import socket
import time
import unittest

from harness import Stack, binary, wait_for


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def http_get(port, target, host="x", family=socket.AF_INET, addr="127.0.0.1", timeout=10):
    """One request on a fresh connection; returns (status, headers text, body)."""
    s = socket.socket(family)
    s.settimeout(timeout)
    s.connect((addr, port))
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, head.decode(errors="replace"), body


def read_until_close(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


class LimitsStack(Stack):
    def start_limited_sidecar(self, *extra, nofile=None, env=None, outbound=("127.0.0.1:0",)):
        """The sidecar with its own RLIMIT_NOFILE and environment. Returns
        (process, [outbound ports], admin port)."""
        err = self.path("sidecar.err")
        self.access_log = self.path("access.log")
        full_env = dict(os.environ, **(env or {}))
        preexec = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        args = [binary("mulligan-sidecar"), "--shm", self.shm, "--admin", "127.0.0.1:0",
                "--access-log", self.access_log]
        for o in outbound:
            args += ["--outbound", o]
        proc = self.start(*args, *extra, stderr_file=err, env=full_env, preexec_fn=preexec)

        def listening():
            with open(err) as f:
                text = f.read()
            if proc.poll() is not None:
                raise AssertionError("sidecar exited: " + text)
            if "listening admin " not in text:
                return None
            outs = [l.split("listening outbound ")[1].split()[0] for l in text.splitlines() if "listening outbound " in l]
            adm = [l.split("listening admin ")[1].split()[0] for l in text.splitlines() if "listening admin " in l][0]
            return outs, adm
        outs, adm = wait_for(listening, what="sidecar listening")
        self.sidecar_proc = proc
        self.sidecar_err = err
        self.admin_port = int(adm.rsplit(":", 1)[1])
        return proc, [int(o.rsplit(":", 1)[1]) for o in outs], self.admin_port

    def admin(self, path, timeout=5):
        return http_get(self.admin_port, path, timeout=timeout)

    def stats(self):
        status, _, body = self.admin("/stats")
        self.assertEqual(status, 200)
        return json.loads(body)

    def metric(self, name, labels=""):
        _, _, body = self.admin("/metrics")
        pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
        m = re.search(r"^" + pattern + r"$", body.decode(), re.M)
        return float(m.group(1)) if m else None

    def stderr_lines(self):
        with open(self.sidecar_err) as f:
            return f.read().splitlines()


class AcceptPauseTest(LimitsStack):
    def test_out_of_descriptors_pauses_accept_logs_once_and_admin_still_answers(self):
        # No bound (0): the worker accepts until accept(2) fails with EMFILE.
        # Before the fix libevent retried the pending connection at once, for
        # ever: a CPU spin and "[warn] Error from accept() call: Too many open
        # files" per wake-up (hundreds of thousands of lines a second), and
        # the admin endpoint, out of descriptors too, stopped answering.
        up, _ = self.start_upstream()
        limit = 64
        proc, (port,), _ = self.start_limited_sidecar(
            nofile=limit, env={"MULLIGAN_MAX_CONNECTIONS": "0", "MULLIGAN_REQUEST_HEADER_TIMEOUT": "0"})
        # One call first, with descriptors to spare. (It also lets an ASan
        # build's vptr check see a Connection deleted while it can: the
        # sanitizer tests whether memory is readable through a pipe(2), which
        # fails at the descriptor limit and would report a false "invalid
        # vptr".)
        self.assertEqual(http_get(port, f"http://127.0.0.1:{up}/before?id=before")[0], 200)
        clients = []
        self.addCleanup(lambda: [c.close() for c in clients])
        for _ in range(limit + 40):
            c = socket.socket()
            c.connect(("127.0.0.1", port))  # completed by the kernel: the backlog holds it
            clients.append(c)
        wait_for(lambda: open_fds(proc.pid) >= limit - 1, what="the sidecar at its descriptor limit")
        lines_before = len(self.stderr_lines())
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(1.0)  # idle: nothing is sent or closed
        cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
        self.assertLess(len(self.stderr_lines()) - lines_before, 5)
        # A generous bound that a spin cannot meet even on a loaded machine
        # (it measured 0.00 s after the fix; the spin took what it could get,
        # 0.34 to 1.2 s of CPU per second, depending on the load).
        self.assertLess(cpu1 - cpu0, 0.2 * (wall1 - wall0),
                        f"sidecar used {cpu1 - cpu0:.2f}s of CPU in {wall1 - wall0:.2f}s while idle")
        status, _, _ = self.admin("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(self.metric("mulligan_accept_paused_total", 'reason="resources"'), 1)
        self.assertEqual(self.stats()["accept_paused_workers"], 1)
        # Descriptors come free: the waiting connections are taken (and end,
        # their clients gone), and a new request is proxied.
        for c in clients:
            c.close()
        clients.clear()

        def proxied():
            try:
                return http_get(port, f"http://127.0.0.1:{up}/after?id=after", timeout=5)[0] == 200
            except OSError:
                return False
        wait_for(proxied, timeout=30, interval=0.1, what="a request proxied after the clients left")
        # The episode ends once accepts go a second without failing: until
        # then each closed client let one accept through and the next failed,
        # which must not log two lines per connection (it logged 47 before).
        wait_for(lambda: self.stats()["accept_paused_workers"] == 0, what="the pause over")
        noisy = [l for l in self.stderr_lines() if "accept" in l or "Too many open files" in l]
        self.assertLess(len(noisy), 6, noisy)
        self.assertEqual(sum("worker 0: accept paused: Too many open files" in l for l in noisy), 1, noisy)
        self.assertEqual(sum("worker 0: accepting again after" in l for l in noisy), 1, noisy)
        self.assertEqual(self.metric("mulligan_accept_paused_total", 'reason="resources"'), 1)

    def test_default_bound_from_rlimit_serves_600_clients_at_256_descriptors(self):
        # ulimit -n 256 and 600 clients: before the fix the sidecar accepted
        # until EMFILE (then spun), and upstream connects failed for want of
        # descriptors. Now each worker stops at a bound derived from the limit
        # (each connection needs an upstream one too) and the rest wait in the
        # backlog; every client is answered as the earlier ones leave.
        up, up_log = self.start_upstream()
        proc, (port,), _ = self.start_limited_sidecar(nofile=256)
        bound = 100  # net::defaultMaxConnectionsPerWorker(256, 1), checked below
        sel = selectors.DefaultSelector()
        replies = {}
        pending = []
        self.addCleanup(lambda: [s.close() for s in pending])
        for i in range(600):
            s = socket.socket()
            s.connect(("127.0.0.1", port))
            # Keep-alive: an answered client holds its connection until the test closes it.
            s.sendall(f"GET http://127.0.0.1:{up}/c?id=c{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            s.setblocking(False)
            pending.append(s)
            replies[s] = b""
            sel.register(s, selectors.EVENT_READ)

        def answered():
            """Reads whatever arrived; returns the sockets with a whole answer."""
            for key, _ in sel.select(timeout=0.05):
                try:
                    chunk = key.fileobj.recv(65536)
                except (BlockingIOError, ConnectionResetError):
                    chunk = b""
                replies[key.fileobj] += chunk
                if not chunk:
                    sel.unregister(key.fileobj)
            return [s for s in pending if replies[s].endswith(b"\r\n\r\nok\n")]

        first = wait_for(lambda: len(answered()) >= bound and answered(), timeout=60, what="the first clients answered")
        self.assertEqual([l for l in self.stderr_lines() if "Too many open files" in l], [])
        self.assertEqual(self.stats()["descriptor_limit"], 256)
        self.assertEqual(self.stats()["max_connections_per_worker"], bound)
        # At the bound: exactly `bound` accepted, the rest in the backlog, and
        # the admin endpoint answers.
        self.assertEqual(len(first), bound)
        self.assertEqual(self.stats()["downstream_active"], bound)
        self.assertEqual(self.metric("mulligan_accept_paused_total", 'reason="max-connections"'), 1)
        status, _, _ = self.admin("/healthz")
        self.assertEqual(status, 200)
        done = 0
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for s in answered():
                self.assertTrue(replies[s].startswith(b"HTTP/1.1 200 "), replies[s][:100])
                if s in sel.get_map():
                    sel.unregister(s)
                s.close()
                pending.remove(s)
                done += 1
        self.assertEqual(done, 600)
        errors = [l for l in self.stderr_lines() if "Too many open files" in l or "accept paused" in l]
        self.assertEqual(errors, [])
        self.assertEqual(len({r["id"] for r in self.upstream_log(up_log)}), 600)

    def test_max_connections_flag_holds_the_rest_in_the_backlog(self):
        up, _ = self.start_upstream()
        proc, (port,), _ = self.start_limited_sidecar("--max-connections", "8")
        self.assertEqual(self.stats()["max_connections_per_worker"], 8)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(10):
            s = socket.socket()
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET http://127.0.0.1:{up}/m?id=m{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            s.setblocking(False)
            socks.append(s)

        def with_answer():
            got = []
            for s in socks:
                try:
                    if s.recv(65536, socket.MSG_PEEK):
                        got.append(s)
                except BlockingIOError:
                    pass
            return got
        answered = wait_for(lambda: len(with_answer()) == 8 and with_answer(), what="eight answered")
        wait_for(lambda: self.stats()["accept_paused_workers"] == 1, what="accept paused")
        self.assertEqual(self.stats()["downstream_active"], 8)
        self.assertEqual(len(with_answer()), 8)  # the other two were never accepted
        waiting = [s for s in socks if s not in answered]
        answered[0].close()
        socks.remove(answered[0])
        wait_for(lambda: sum(s in with_answer() for s in waiting) == 1, what="a waiting client taken once one left")
        self.assertEqual(self.stats()["downstream_active"], 8)
        # One episode (it ends a quarter below the bound), logged once.
        self.assertEqual(self.metric("mulligan_accept_paused_total", 'reason="max-connections"'), 1)
        self.assertEqual(sum("(--max-connections)" in l for l in self.stderr_lines()), 1)


class RequestHeaderTimeoutTest(LimitsStack):
    def setUp(self):
        super().setUp()
        self.up, self.up_log = self.start_upstream()
        _, (self.port,), _ = self.start_limited_sidecar(env={"MULLIGAN_REQUEST_HEADER_TIMEOUT": "300ms"})

    def test_head_trickled_a_byte_at_a_time_is_answered_408(self):
        # 500 such clients were never cut before (only the 60 s idle timeout,
        # which every byte pushes back).
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        s.sendall(f"GET http://127.0.0.1:{self.up}/t?id=trickle HTTP/1.1\r\n".encode())
        s.setblocking(False)
        got = b""
        deadline = time.monotonic() + 10
        filler = b"x-trickle: " + b"a" * 4000
        i = 0
        while time.monotonic() < deadline and not got.endswith(b"request header timeout\n"):
            try:
                s.send(filler[i % len(filler):i % len(filler) + 1])
                i += 1
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                pass
            try:
                got += s.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            time.sleep(0.05)
        self.assertTrue(got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), got)
        self.assertIn(b"connection: close\r\n", got.lower())
        self.assertEqual(self.stats()["request_header_timeouts"], 1)
        self.assertEqual(self.metric("mulligan_request_header_timeouts_total"), 1)
        self.assertEqual(self.upstream_log(self.up_log), [])

    def test_first_bytes_that_never_become_a_head_are_answered_408(self):
        # Too few bytes to tell the protocol: the connection's sniffing is
        # bounded from accept too.
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        s.sendall(b"GE")
        got = read_until_close(s)
        self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got)

    def test_connection_that_says_nothing_is_closed_without_an_answer(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        self.assertEqual(read_until_close(s), b"")  # closed (before: held for the 60 s idle timeout)
        wait_for(lambda: self.stats()["request_header_timeouts"] == 1, what="counted")

    def test_slow_request_body_is_not_cut(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        s.sendall(f"POST http://127.0.0.1:{self.up}/b?id=body HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Content-Length: 10\r\nConnection: close\r\n\r\n".encode())
        for b in b"0123456789":
            time.sleep(0.1)  # the body takes a second: longer than the 300 ms head timeout
            s.send(bytes([b]))
        got = read_until_close(s)
        self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got)
        seen = [r for r in self.upstream_log(self.up_log) if r.get("id") == "body"]
        self.assertEqual(seen[0]["body_bytes"], 10)
        self.assertEqual(self.stats()["request_header_timeouts"], 0)

    def test_keep_alive_connection_idle_between_requests_is_left_to_the_idle_timeout(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        s.settimeout(10)
        for i in range(2):
            if i:
                time.sleep(1.0)  # idle between requests, longer than the head timeout
            s.sendall(f"GET http://127.0.0.1:{self.up}/k?id=k{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            got = b""
            while not got.endswith(b"\r\n\r\nok\n"):
                chunk = s.recv(65536)
                self.assertTrue(chunk, f"closed on request {i}: {got!r}")
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got)
        self.assertEqual(self.stats()["request_header_timeouts"], 0)

    def test_head_split_across_reads_within_the_timeout_is_served(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        s.sendall(f"GET http://127.0.0.1:{self.up}/s?id=split HTTP/1.1\r\n".encode())
        time.sleep(0.05)
        s.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        self.assertTrue(read_until_close(s).startswith(b"HTTP/1.1 200 "))


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


class OutboundAddressesTest(LimitsStack):
    @unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback here")
    def test_every_outbound_address_is_listened_on_by_every_worker(self):
        up, up_log = self.start_upstream()
        _, ports, _ = self.start_limited_sidecar("--workers", "2", outbound=("127.0.0.1:0", "[::1]:0"))
        self.assertEqual(len(ports), 2)
        lines = [l for l in self.stderr_lines() if "listening outbound " in l]
        self.assertIn("listening outbound 127.0.0.1:", lines[0])
        self.assertIn("listening outbound [::1]:", lines[1])
        for i in range(4):  # several connections: SO_REUSEPORT spreads them over both workers
            status, _, body = http_get(ports[0], f"http://127.0.0.1:{up}/v4?id=v4-{i}")
            self.assertEqual((status, body), (200, b"ok\n"))
            status, _, body = http_get(ports[1], f"http://127.0.0.1:{up}/v6?id=v6-{i}", family=socket.AF_INET6,
                                       addr="::1")
            self.assertEqual((status, body), (200, b"ok\n"))
        self.assertEqual(len(self.upstream_log(up_log)), 8)

    @unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback here")
    def test_environment_variable_takes_a_comma_separated_list(self):
        _, ports, _ = self.start_limited_sidecar(outbound=(), env={"MULLIGAN_OUTBOUND": "127.0.0.1:0, [::1]:0"})
        self.assertEqual(len(ports), 2)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root for a network namespace")
    def test_ipv6_loopback_on_a_host_with_ipv6_off_is_skipped_with_a_warning(self):
        # A node with IPv6 turned off: a fresh network namespace whose
        # loopback has no ::1. The injected pair of listeners must not keep
        # the sidecar (and the pod's IPv4 traffic) from starting.
        err = self.path("nov6.err")
        script = ("ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                  "net.ipv6.conf.lo.disable_ipv6=1 && exec \"$@\"")
        args = [binary("mulligan-sidecar"), "--shm", self.shm, "--admin", "127.0.0.1:0",
                "--access-log", "off", "--outbound", "127.0.0.1:0", "--outbound", "[::1]:0"]
        proc = self.start("unshare", "-n", "sh", "-c", script, "sh", *args, stderr_file=err)

        def started():
            with open(err) as f:
                text = f.read()
            if proc.poll() is not None:
                raise AssertionError(f"sidecar exited {proc.returncode}: {text}")
            return text if "listening admin " in text else None
        text = wait_for(started, what="sidecar listening")
        self.assertIn("--outbound [::1]:0 skipped: IPv6 is turned off on this host", text)
        listening = [l for l in text.splitlines() if "listening outbound " in l]
        self.assertEqual(len(listening), 1, text)
        self.assertIn("listening outbound 127.0.0.1:", listening[0])
        # Alone, the same address is still the startup error it always was.
        r = self.run_cmd("unshare", "-n", "sh", "-c", script, "sh", binary("mulligan-sidecar"), "--shm", self.shm,
                         "--admin", "127.0.0.1:0", "--outbound", "[::1]:0")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot listen on [::1]:0", r.stderr)

    def test_an_address_that_cannot_be_bound_is_a_startup_error(self):
        r = self.run_cmd(binary("mulligan-sidecar"), "--shm", self.shm, "--admin", "127.0.0.1:0",
                         "--outbound", "127.0.0.1:0", "--outbound", "192.0.2.1:15001")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot listen on 192.0.2.1:15001", r.stderr)
        r = self.run_cmd(binary("mulligan-sidecar"), "--outbound", "127.0.0.1:15001", "--outbound", "127.0.0.1:15001")
        self.assertEqual(r.returncode, 2)
        self.assertIn("given twice", r.stderr)


if __name__ == "__main__":
    unittest.main()
