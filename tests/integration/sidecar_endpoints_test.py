"""A destination name with several addresses (DESIGN.md "Endpoints"): calls
spread over the addresses, a retry goes to an address the call has not tried,
retry.fresh_connection opens a new connection for a retry, outlier ejection
([defaults.outlier]) with doubling ejections and the max_ejected guard, and
re-resolution after --dns-ttl that no call waits for.

Names resolve through a tiny DNS server of the test's own (TinyDns, UDP on
127.0.0.1, the sidecar pointed at it with --dns-server): a real lookup on the
sidecar's asynchronous evdns path, whose answers the test changes — and holds
back — while the sidecar runs. (The other choice, an /etc/hosts-style file
loaded with evdns_base_load_hosts(), answers inline: it could not show that
no call waits for a re-resolution.)

The upstreams are small keep-alive HTTP/1.1 servers of this file (Backend),
one per loopback address (127.0.0.2, 127.0.0.3, ...: all of 127/8 is
loopback on Linux) on one port, each counting the connections it accepted
and the requests it saw; HTTP/2 runs against mulligan-h2-upstream."""
import errno
import http.client
import json
import socket
import struct
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import Stack, binary, need_tool, read_port_file, wait_for

NAME = "svc.test"


class TinyDns:
    """A UDP name server: A queries answer the IPv4 addresses of `records`
    ({name: [IP...]}, TTL 1 s), AAAA queries its IPv6 ones (NOERROR, maybe
    empty), anything else NXDOMAIN. A name ending in a suffix given to
    set_suffix() answers that suffix's addresses. While `hold()` is on,
    answers wait until `release()`. `drop_a(n)` leaves the next n A queries
    unanswered, as if their answers were lost."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.records = {}
        self.suffixes = {}
        self.queries = {}  # name -> A lookups seen (a query sent again counts once)
        self.last_a_id = {}  # name -> the transaction id of its last A query
        self.aaaa_queries = 0
        self.lock = threading.Lock()
        self.holding = False
        self.held = []
        self.a_to_drop = 0
        threading.Thread(target=self.loop, daemon=True).start()

    def set(self, name, ips):
        with self.lock:
            self.records[name.lower()] = list(ips)

    def set_suffix(self, suffix, ips):
        with self.lock:
            self.suffixes[suffix.lower()] = list(ips)

    def a_queries(self, name):
        with self.lock:
            return self.queries.get(name.lower(), 0)

    def hold(self):
        with self.lock:
            self.holding = True

    def drop_a(self, n):
        with self.lock:
            self.a_to_drop = n

    def release(self):
        with self.lock:
            self.holding = False
            held, self.held = self.held, []
        for data, peer in held:
            self.answer(data, peer)

    def loop(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            name, qtype = self.question(data)
            with self.lock:
                # evdns sends an unanswered query again after its timeout,
                # with the same id: a lookup, not a packet, is what counts.
                if qtype == 1 and self.last_a_id.get(name) != data[:2]:
                    self.queries[name] = self.queries.get(name, 0) + 1
                    self.last_a_id[name] = data[:2]
                if qtype == 28:
                    self.aaaa_queries += 1
                if qtype == 1 and self.a_to_drop > 0:
                    self.a_to_drop -= 1
                    continue  # its answer is lost on the way back
                if self.holding:
                    self.held.append((data, peer))
                    continue
            self.answer(data, peer)

    @staticmethod
    def question(data):
        labels, i = [], 12
        while i < len(data) and data[i] != 0:
            n = data[i]
            labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = struct.unpack("!H", data[i + 1:i + 3])[0] if i + 3 <= len(data) else 0
        return ".".join(labels).lower(), qtype

    def answer(self, data, peer):
        qid = data[:2]
        name, qtype = self.question(data)
        # The question as asked, byte for byte (evdns randomises its case
        # and checks that the answer repeats it).
        end = 12
        while data[end] != 0:
            end += 1 + data[end]
        question = data[12:end + 5]
        with self.lock:
            ips = self.records.get(name)
            for suffix, sips in self.suffixes.items():
                if ips is None and name.endswith(suffix):
                    ips = sips
        if ips is None:
            flags, answers = 0x8183, []  # NXDOMAIN
        else:
            flags = 0x8180
            answers = [ip for ip in ips if (":" in ip) == (qtype == 28)] if qtype in (1, 28) else []
        body = b"".join(struct.pack("!HHHIH", 0xC00C, 28, 1, 1, 16) + socket.inet_pton(socket.AF_INET6, ip)
                        if ":" in ip else
                        struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(ip) for ip in answers)
        msg = qid + struct.pack("!HHHHH", flags, 1, len(answers), 0, 0) + question + body
        try:
            self.sock.sendto(msg, peer)
        except OSError:
            pass

    def close(self):
        self.sock.close()


class Backend:
    """A keep-alive HTTP/1.1 upstream on `ip`: answers 200 (body: its ip),
    or per `mode` 503 or a reset (RST, no response). A path containing
    "fail_once" gets 503 the first time this backend sees it. Counts the
    connections it accepted; `seen` is [(connection number, path)]."""

    def __init__(self, ip, port=0):
        self.ip = ip
        self.sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.mode = "ok"
        self.accepted = 0
        self.seen = []
        self.failed_once = set()
        self.lock = threading.Lock()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                n = self.accepted
            threading.Thread(target=self.serve, args=(conn, n), daemon=True).start()

    def serve(self, conn, n):
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    path = head.split(b" ")[1].decode()
                    with self.lock:
                        self.seen.append((n, path))
                        mode = self.mode
                        if "fail_once" in path and path not in self.failed_once:
                            self.failed_once.add(path)
                            mode = "503"
                    if mode == "reset":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                    status = 503 if mode == "503" else 200
                    body = self.ip.encode()
                    conn.sendall(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\nx-backend: %s\r\n\r\n%s" %
                                 (status, len(body), body, body))

    def paths(self):
        with self.lock:
            return [p for _, p in self.seen]

    def count(self, marker):
        return sum(1 for p in self.paths() if marker in p)

    def close(self):
        # shutdown() first: close() alone leaves a listener whose accept()
        # is blocked in another thread listening (Linux keeps the socket
        # while the call holds it), for the rest of the process — a later
        # test's bind of 127.0.0.3:PORT could then fail with EADDRINUSE.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# The built-in defaults retry a 503 once; the ejection tests want each
# call's own outcome.
NO_RETRY = "retry = { num_retries = 0 }"


def policy(port, retry="", extra=""):
    return f"""version = 1
[[service]]
name = "svc"
hosts = ["svc"]
upstream = "{NAME}:{port}"
{retry}
{extra}
"""


class EndpointsTest(Stack):
    def setUp(self):
        super().setUp()
        self.dns = TinyDns()
        self.addCleanup(self.dns.close)

    def backends(self, n, first=2):
        """`n` backends on 127.0.0.{first}.. sharing one port."""
        while True:
            # The kernel picks a port free on the first address; a socket
            # elsewhere may hold it on one of the others: then another port.
            out = [Backend(f"127.0.0.{first}")]
            try:
                for i in range(1, n):
                    out.append(Backend(f"127.0.0.{first + i}", out[0].port))
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                for b in out:
                    b.close()
        for b in out:
            self.addCleanup(b.close)
        return out

    def sidecar(self, *extra):
        return self.start_sidecar("--dns-server", f"127.0.0.1:{self.dns.port}", *extra)

    def get(self, path, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        c.request("GET", path, headers={"Host": "svc"})
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, r.getheader("x-backend"), data

    def admin(self, path):
        r = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{self.admin_port}{path}"],
                           capture_output=True, text=True, timeout=20)
        return r.stdout

    def diagnosis(self, got, marker, *backends):
        """The evidence of a failed call (whose path has `marker`): the
        response (status, x-backend, body), each backend's (connection,
        path) list, the sidecar's /stats, its access-log records and the
        end of its stderr."""
        with open(self.sidecar_err) as f:
            err = f.read()[-2000:]
        try:  # lines are written a moment after each response (harness.access_record)
            records = wait_for(lambda: any(marker in r["path"] for r in self.access_records()), timeout=5)
            records = self.access_records()
        except AssertionError:
            records = self.access_records()
        return "\n".join([f"response: {got!r}",
                          *(f"backend {b.ip}: accepted {b.accepted}, seen {b.seen}" for b in backends),
                          f"/stats: {self.admin('/stats')}",
                          "access log:", *(json.dumps(r) for r in records),
                          f"sidecar stderr (tail): {err}"])

    def outlier_rows(self):
        return {e["address"]: e for e in json.loads(self.admin("/stats"))["endpoints"]}

    # ------------------------------------------------------------ spread --

    def test_calls_spread_over_every_address_of_the_name(self):
        bs = self.backends(3)
        self.dns.set(NAME, [b.ip for b in bs])
        self.publish(policy(bs[0].port))
        self.sidecar()
        for i in range(30):
            status, backend, _ = self.get(f"/spread?i={i}")
            self.assertEqual(status, 200)
        # One worker, round robin: exactly a third each (before: every call
        # went to the name's first address).
        self.assertEqual([b.count("/spread") for b in bs], [10, 10, 10])
        rows = self.outlier_rows()
        self.assertEqual(sorted(rows), sorted(f"{b.ip}:{b.port}" for b in bs))
        self.assertTrue(all(r["current"] and r["ejections"] == 0 for r in rows.values()))

    def test_a_retry_after_a_503_or_a_reset_goes_to_another_address(self):
        for mode, retry_on in (("503", '"503"'), ("reset", '"reset"')):
            with self.subTest(mode=mode):
                bad, good = self.backends(2, first=2 if mode == "503" else 4)
                bad.mode = mode
                self.dns.set(NAME, [bad.ip, good.ip])
                # One retry: were it to go back to the same address, the
                # call would fail. Outlier ejection off, so that every call
                # keeps trying the bad address first half the time.
                self.publish(policy(bad.port, retry=f'retry = {{ retry_on = [{retry_on}], num_retries = 1, '
                                                    f'backoff_base = "1ms", backoff_max = "1ms" }}\n'
                                                    f'budget = {{ retry_ratio = 1.0 }}\n'
                                                    f'outlier = {{ consecutive_failures = 0 }}'))
                self.sidecar()
                for i in range(10):
                    status, backend, _ = self.get(f"/retry-{mode}?i={i}")
                    self.assertEqual((status, backend), (200, good.ip), i)
                self.assertEqual(bad.count(f"/retry-{mode}"), 5)  # round robin: every other call first went there
                self.assertEqual(good.count(f"/retry-{mode}"), 10)
                s = json.loads(self.admin("/stats"))
                self.assertEqual(s["retries"], 5)
                self.sidecar_proc.terminate()
                self.sidecar_proc.wait(10)

    # --------------------------------------------------- fresh_connection --

    def fresh_connection_case(self, fresh):
        (b,) = self.backends(1)
        self.dns.set(NAME, [b.ip])
        # fresh_connection = true is the default: the first case says nothing.
        self.publish(policy(b.port, retry='retry = { retry_on = ["503"], num_retries = 1, backoff_base = "1ms", '
                                          'backoff_max = "1ms"' + ("" if fresh else ", fresh_connection = false") +
                                          ' }\nbudget = { retry_ratio = 1.0 }'))
        self.sidecar()
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        self.assertEqual(self.get("/warm", conn=conn)[0], 200)  # one pooled connection
        self.assertEqual(b.accepted, 1)
        got = self.get("/x?fail_once=1", conn=conn)
        # (Seen twice under load as a 503: say whose, what the sidecar
        # counted, and what its access log says of each call — attempts,
        # retry_reasons, retry_refused, sidecar_error, upstream.)
        if got[0] != 200:
            self.fail(self.diagnosis(got, "fail_once", b))
        conn.close()
        return b

    def test_fresh_connection_sends_a_retry_on_a_new_connection(self):
        b = self.fresh_connection_case(True)
        # The first attempt took the pooled connection (#1) and got its 503;
        # the retry came on a new one (#2). Before: both on #1.
        attempts = [(n, p) for n, p in b.seen if "fail_once" in p]
        self.assertEqual([n for n, _ in attempts], [1, 2])
        self.assertEqual(b.accepted, 2)

    def test_without_fresh_connection_a_retry_reuses_the_pool(self):
        b = self.fresh_connection_case(False)
        attempts = [(n, p) for n, p in b.seen if "fail_once" in p]
        self.assertEqual([n for n, _ in attempts], [1, 1])
        self.assertEqual(b.accepted, 1)

    def test_fresh_connection_opens_a_new_http2_session_for_a_retry(self):
        need_tool("curl", "curl")
        for fresh in (True, False):
            with self.subTest(fresh=fresh):
                port_file = self.path(f"h2-{fresh}.port")
                log = self.path(f"h2-{fresh}.log")
                self.start(binary("mulligan-h2-upstream"), "--listen", "127.0.0.2:0", "--port-file", port_file,
                           "--log", log)
                port = read_port_file(port_file)
                self.dns.set(NAME, ["127.0.0.2"])
                self.publish(policy(port, retry='retry = { retry_on = ["refused-stream"], num_retries = 1, '
                                                'backoff_base = "1ms", backoff_max = "1ms"' +
                                                ("" if fresh else ", fresh_connection = false") + ' }\n'
                                                'budget = { retry_ratio = 1.0 }'))
                self.sidecar()
                base = f"http://127.0.0.1:{self.outbound_port}"
                # Two clients: the sidecar's upstream session outlives them.
                for path in ("/warm?id=w", "/r?refuse=1&id=r"):
                    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "20", "-H",
                                        "Host: svc", "-o", "/dev/null", "-w", "%{http_code}", base + path],
                                       capture_output=True, text=True, timeout=60)
                    self.assertEqual(r.stdout, "200", r.stderr)
                with open(log) as f:
                    lines = [json.loads(l) for l in f if l.strip()]
                conns = [l["conn"] for l in lines if l.get("id") == "r"]
                warm = [l["conn"] for l in lines if l.get("id") == "w"]
                self.assertEqual(len(conns), 2, lines)
                # The refused stream went on the warm session; its retry on a
                # new session with fresh_connection, on the same without.
                self.assertEqual(conns[0], warm[0])
                if fresh:
                    self.assertNotEqual(conns[1], conns[0])
                else:
                    self.assertEqual(conns[1], conns[0])
                self.sidecar_proc.terminate()
                self.sidecar_proc.wait(10)

    # ------------------------------------------------------------ ejection --

    def test_failures_eject_an_address_which_then_gets_no_calls_until_the_ejection_ends(self):
        bad, good = self.backends(2)
        bad.mode = "503"
        self.dns.set(NAME, [bad.ip, good.ip])
        self.publish(policy(bad.port, retry=NO_RETRY, extra='outlier = { consecutive_failures = 3, ejection = "5s", '
                                                             'max_ejection = "10s", max_ejected = 0.5 }'))
        self.sidecar()
        key = f"{bad.ip}:{bad.port}"
        # Round robin: calls 0, 2, 4 go to the bad address; the third 503 in
        # a row ejects it.
        statuses = [self.get(f"/ej?i={i}")[0] for i in range(6)]
        self.assertEqual(statuses, [503, 200, 503, 200, 503, 200])
        for i in range(20):
            self.assertEqual(self.get(f"/after?i={i}")[:2], (200, good.ip))
        self.assertEqual(bad.count("/after"), 0)
        rows = self.outlier_rows()
        # Still the one ejection, still on: none of the 20 calls went there
        # during it (a machine so slow that 5 s passed fails here, loudly).
        self.assertEqual((rows[key]["ejections"], rows[key]["ejected_workers"], rows[key]["last_ejection"]),
                         (1, 1, "5s"))
        metrics = self.admin("/metrics")
        self.assertIn(f'mulligan_outlier_ejections_total{{service="svc",address="{key}"}} 1', metrics)
        self.assertIn(f'mulligan_outlier_ejected{{service="svc",address="{key}"}} 1', metrics)
        explain = json.loads(self.admin("/explain?host=svc"))
        self.assertEqual(explain["endpoints"]["destination"], f"{NAME}:{bad.port}")
        addrs = {a["address"]: a for a in explain["endpoints"]["addresses"]}
        self.assertEqual(sorted(addrs), sorted([key, f"{good.ip}:{good.port}"]))
        self.assertTrue(addrs[key]["ejected"])
        self.assertFalse(addrs[f"{good.ip}:{good.port}"]["ejected"])
        # It ends: the address gets its share of calls again.
        wait_for(lambda: not self.outlier_rows()[key]["ejected_workers"], timeout=30, what="the ejection to end")
        self.assertIn(f'mulligan_outlier_ejected{{service="svc",address="{key}"}} 0', self.admin("/metrics"))
        bad.mode = "ok"
        for i in range(4):
            self.assertEqual(self.get(f"/back?i={i}")[0], 200)
        self.assertEqual(bad.count("/back"), 2)

    def test_a_later_ejection_of_the_same_address_lasts_twice_as_long(self):
        bad, good = self.backends(2)
        bad.mode = "503"
        self.dns.set(NAME, [bad.ip, good.ip])
        self.publish(policy(bad.port, retry=NO_RETRY, extra='outlier = { consecutive_failures = 1, ejection = "1s", '
                                                             'max_ejection = "3s", max_ejected = 0.5 }'))
        self.sidecar()
        key = f"{bad.ip}:{bad.port}"
        lengths = []
        for n in range(1, 4):
            # Calls until the bad address answers one (its last ejection has
            # ended): that 503 ejects it again.
            wait_for(lambda: self.get(f"/d?n={n}&t={time.monotonic()}") and bad.count(f"/d?n={n}&") > 0,
                     timeout=30, interval=0.05, what="a call to the bad address")
            row = wait_for(lambda: self.outlier_rows()[key]["ejections"] == n and self.outlier_rows()[key],
                           what=f"ejection {n}")
            lengths.append(row["last_ejection"])
            wait_for(lambda: not self.outlier_rows()[key]["ejected_workers"], timeout=30, interval=0.05,
                     what="the ejection to end")
        self.assertEqual(lengths, ["1s", "2s", "3s"])  # doubled, up to max_ejection

    def test_never_more_than_max_ejected_of_the_addresses(self):
        bs = self.backends(4)
        for b in bs[:3]:
            b.mode = "503"
        self.dns.set(NAME, [b.ip for b in bs])
        self.publish(policy(bs[0].port, retry=NO_RETRY, extra='outlier = { consecutive_failures = 1, ejection = "1m", '
                                              'max_ejection = "1m", max_ejected = 0.5 }'))
        self.sidecar()
        for i in range(40):
            got = self.get(f"/m?i={i}")
        rows = self.outlier_rows()
        ejected = [a for a, r in rows.items() if r["ejected_workers"]]
        if len(ejected) != 2:  # 0.5 of 4
            self.fail(f"ejected {ejected} of {rows}\n" + self.diagnosis(got, "i=39", *bs))
        # The third failing address still gets its share: it may not be ejected.
        third = next(b for b in bs[:3] if f"{b.ip}:{b.port}" not in ejected)
        self.assertGreater(third.count("/m"), 5)

    # -------------------------------------------------------- re-resolution --

    def test_a_new_address_set_is_used_after_the_ttl_and_no_call_waits_for_it(self):
        old, new = self.backends(2)
        self.dns.set(NAME, [old.ip])
        self.publish(policy(old.port))
        self.sidecar("--dns-ttl", "200ms")
        got = self.get("/r?i=first")
        if got[:2] != (200, old.ip):
            self.fail(self.diagnosis(got, "i=first", old, new))
        self.assertEqual(self.dns.a_queries(NAME), 1)
        # The name now has the new address, but the server holds every
        # answer back: once the TTL is over, a call starts the refresh and
        # goes on with the old set, as do all calls after it.
        self.dns.set(NAME, [new.ip])
        self.dns.hold()
        i = 0
        while self.dns.a_queries(NAME) < 2:
            status, backend, _ = self.get(f"/r?i={i}")
            self.assertEqual((status, backend), (200, old.ip))
            i += 1
            time.sleep(0.02)
        for j in range(10):  # the lookup is out and unanswered: these calls did not wait
            self.assertEqual(self.get(f"/r?j={j}")[:2], (200, old.ip))
        self.assertEqual(self.dns.a_queries(NAME), 2)  # one refresh, not one per call
        self.dns.release()
        wait_for(lambda: self.get("/r?k=1")[1] == new.ip, timeout=10, what="calls to the new address")
        for k in range(5):
            self.assertEqual(self.get(f"/r?k={k}")[1], new.ip)

    # ------------------------------------------------------ failed names --

    def test_a_missing_name_is_asked_once_per_2s_and_every_call_gets_the_same_502(self):
        # Failed before the negative cache: every call asked the name server
        # again (10 calls, 10 A queries), so a client looping on a bad name
        # flooded it.
        missing = "missing.test"
        (b,) = self.backends(1)
        self.publish(policy(b.port).replace(NAME, missing))
        self.sidecar("--dns-ttl", "60s")
        start = time.monotonic()
        answers = [self.get(f"/neg?i={i}") for i in range(10)]
        elapsed = time.monotonic() - start
        first = answers[0][2]
        self.assertTrue(first.startswith(b'no destination: cannot resolve "missing.test": '), first)
        for status, _, body in answers:
            self.assertEqual((status, body), (502, first))  # the same answer as the lookup's own
        # A failure is remembered for 2 s: at most one query per 2 s the
        # calls took (a bound that grows with them: no timing assumption).
        self.assertLessEqual(self.dns.a_queries(missing), 1 + int(elapsed // 2) + 1)
        records = wait_for(lambda: (lambda r: r if len(r) == 10 else None)(
            [r for r in self.access_records() if "/neg?" in r["path"]]), what="10 access-log records")
        self.assertEqual({(r["status"], r["sidecar_error"]) for r in records}, {(502, "dns")})
        # Once the name exists, calls reach it (after at most the 2 s).
        self.dns.set(missing, [b.ip])
        wait_for(lambda: self.get("/neg-later")[0] == 200, timeout=20, what="calls to the name once it exists")

    # ------------------------------------------------------------ bounds --

    def test_many_proxy_style_names_never_grow_the_endpoint_sets_or_the_stats_rows_past_the_cap(self):
        # Absolute-form requests ("GET http://h17.many.test:PORT/") to ever
        # new names: each name is an endpoint set of the worker, with /stats
        # rows once it resolves. Before: one set and one row per name ever
        # seen, without bound.
        cap = 1024  # Endpoints::kMaxSets (one worker)
        b, bad = self.backends(2)
        bad.mode = "503"
        self.dns.set_suffix(".many.test", [b.ip])
        # A name whose second address fails, ejected on its first 503: its
        # /metrics series must go with its set.
        self.dns.set("ej.many.test", [b.ip, bad.ip])
        self.publish('version = 1\n[defaults]\nretry = { num_retries = 0 }\n'
                     'outlier = { consecutive_failures = 1, ejection = "1h", max_ejection = "1h" }\n'
                     + policy(b.port).replace("version = 1\n", ""))
        self.sidecar()
        self.assertEqual(sorted(self.get(f"http://ej.many.test:{b.port}/ej?i={i}")[0] for i in range(2)), [200, 503])
        series = f'mulligan_outlier_ejections_total{{service="",address="{bad.ip}:{bad.port}"}} 1'
        self.assertIn(series, self.admin("/metrics"))
        n = cap + cap // 4
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        for i in range(n):
            conn.request("GET", f"http://h{i}.many.test:{b.port}/many?i={i}")
            r = conn.getresponse()
            r.read()
            self.assertEqual((r.status, r.getheader("x-backend")), (200, b.ip), i)
        conn.close()
        self.assertEqual(b.count("/many"), n)
        self.assertEqual(bad.count("/many"), 0)
        stats = json.loads(self.admin("/stats"))
        dests = {e["destination"] for e in stats["endpoints"]}
        self.assertLessEqual(len(dests), cap)
        self.assertIn(f"h{n - 1}.many.test:{b.port}", dests)  # the newest stay
        self.assertNotIn(f"h0.many.test:{b.port}", dests)  # the least recently used went
        sets = stats["endpoint_sets"]
        self.assertEqual(sets["current"], len(dests))
        self.assertEqual(sets["current"] + sets["forgotten"], n + 1)
        self.assertNotIn(f"ej.many.test:{b.port}", dests)
        metrics = self.admin("/metrics")
        self.assertNotIn(series, metrics)  # went with its set (before: every name's series stayed)
        self.assertIn(f"mulligan_endpoint_sets {sets['current']}\n", metrics)
        self.assertIn(f"mulligan_endpoint_sets_forgotten_total {sets['forgotten']}\n", metrics)
        # A forgotten name works again (a new set).
        self.assertEqual(self.get(f"http://h0.many.test:{b.port}/many?again=1")[0], 200)

    def test_a_dual_stack_name_gives_each_pod_one_share_by_its_ipv4_address(self):
        # Two pods: 127.0.0.2 and 127.0.0.3 (A records), the first one also
        # at ::1 (its AAAA record). Before: three addresses in the rotation,
        # the first pod got two shares of three.
        v4 = self.backends(2)
        try:
            v6 = Backend("::1", v4[0].port)
        except OSError as e:
            self.skipTest(f"no IPv6 loopback: {e}")
        self.addCleanup(v6.close)
        self.dns.set(NAME, [v4[0].ip, v4[1].ip, "::1"])
        self.publish(policy(v4[0].port))
        self.sidecar()
        for i in range(30):
            self.assertEqual(self.get(f"/ds?i={i}")[0], 200)
        if self.dns.aaaa_queries == 0:
            # libevent's EVUTIL_AI_ADDRCONFIG asks no AAAA on a host with
            # IPv4 and no global IPv6 address (it counts fc00::/7 as local):
            # the name has no IPv6 address here. The unit test
            # ADualStackNameCountsEachPodOnceByItsIpv4Address covers the rule.
            self.skipTest("this host asks no AAAA records (no global IPv6 address)")
        self.assertEqual([v4[0].count("/ds"), v4[1].count("/ds"), v6.count("/ds")], [15, 15, 0])
        self.assertEqual(sorted(self.outlier_rows()), sorted(f"{b.ip}:{b.port}" for b in v4))

    def test_an_ipv6_only_name_uses_its_ipv6_addresses(self):
        try:
            v6 = Backend("::1")
        except OSError as e:
            self.skipTest(f"no IPv6 loopback: {e}")
        self.addCleanup(v6.close)
        self.dns.set(NAME, ["::1"])
        self.publish(policy(v6.port))
        self.sidecar()
        self.get("/v6")
        if self.dns.aaaa_queries == 0:
            self.skipTest("this host asks no AAAA records (no global IPv6 address)")
        for i in range(3):
            self.assertEqual(self.get(f"/v6?i={i}")[:2], (200, "::1"))
        self.assertEqual(sorted(self.outlier_rows()), [f"[::1]:{v6.port}"])


if __name__ == "__main__":
    unittest.main()
