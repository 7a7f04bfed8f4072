"""HTTP/2 connection-level behaviour of mulligan-sidecar seen by a real
HTTP/2 client library (Debian's python3-h2), where nghttp and curl give no
handle on single frames: PING is answered, the SETTINGS the sidecar offers,
a client's RST_STREAM and GOAWAY, and the sidecar's own GOAWAY when it
drains — with the in-flight call finishing either way."""
import signal
import socket
import threading
import time
import unittest

from harness import Stack, wait_for

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    import hpack
    import hyperframe.frame
except ImportError:  # CI installs python3-h2 (scripts/lib/deps.sh)
    h2 = None


def policy(port):
    return f"""version = 1
[[service]]
name = "h2"
hosts = ["h2"]
upstream = "127.0.0.1:{port}"
"""


class Client:
    """One h2c (prior knowledge) connection driven frame by frame."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.events = []
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "h2"),
                                     (":path", path)], end_stream=True)
        self.flush()
        return sid

    def pump(self, until, timeout=10):
        """Reads frames until `until(events)` is true; returns the events."""
        deadline = time.monotonic() + timeout
        while not until(self.events):
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"no such event before {'close' if self.closed else 'timeout'}: "
                                     f"{self.events}")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                self.closed = True
                continue
            for ev in self.conn.receive_data(data):
                self.events.append(ev)
                if isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.flush()
        return self.events

    def close(self):
        self.sock.close()

    def frames_until_close(self, timeout=10):
        """After a GOAWAY python3-h2's state machine refuses every frame (it
        treats GOAWAY as the end), though RFC 9113 §6.8 lets streams below the
        last stream id finish. So from here frames are split by hyperframe
        and header blocks decoded by hpack (the libraries python3-h2 itself
        uses), with the connection's HPACK state carried over. Returns
        [(frame, headers or None)] up to the close."""
        decoder = hpack.Decoder()
        decoder.header_table = self.conn.decoder.header_table
        buf = b""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while len(buf) >= 9:
                frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + length:
                    break
                frame.parse_body(memoryview(buf[9:9 + length]))
                buf = buf[9 + length:]
                headers = None
                if isinstance(frame, hyperframe.frame.HeadersFrame):
                    headers = dict(decoder.decode(frame.data, raw=True))
                out.append((frame, headers))
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return out
            buf += data
        raise AssertionError(f"the connection did not close: {out}")


def of(events, kind, stream_id=None):
    return [e for e in events if isinstance(e, kind) and (stream_id is None or e.stream_id == stream_id)]


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class Http2FramesTest(Stack):
    def setUp(self):
        super().setUp()
        port, self.up_log = self.start_h2_upstream()
        self.publish(policy(port))
        self.start_sidecar()

    def client(self):
        c = Client(self.outbound_port)
        self.addCleanup(c.close)
        return c

    def test_H2_SettingsAreOfferedAndPingIsAnswered(self):
        c = self.client()
        c.pump(lambda ev: of(ev, h2.events.RemoteSettingsChanged))
        settings = of(c.events, h2.events.RemoteSettingsChanged)[0].changed_settings
        self.assertEqual(settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value, 256)
        self.assertIn(h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE, settings)
        c.conn.ping(b"mulligan")
        c.flush()
        c.pump(lambda ev: of(ev, h2.events.PingAckReceived))
        self.assertEqual(of(c.events, h2.events.PingAckReceived)[0].ping_data, b"mulligan")

    def test_H2ToH2_ClientResetCancelsOnlyItsStream(self):
        c = self.client()
        slow = c.request("/slow?delay=3000&id=cancelled")
        fast = c.request("/fast?id=kept")
        c.pump(lambda ev: of(ev, h2.events.StreamEnded, fast))
        c.conn.reset_stream(slow)
        c.flush()
        # The connection still carries new calls after the reset.
        again = c.request("/again?id=after")
        c.pump(lambda ev: of(ev, h2.events.StreamEnded, again))
        status = dict(of(c.events, h2.events.ResponseReceived, again)[0].headers)[b":status"]
        self.assertEqual(status, b"200")
        seen = {r["id"]: r for r in wait_for(
            lambda: len(self.upstream_log(self.up_log)) >= 3 and self.upstream_log(self.up_log), what="log")}
        self.assertEqual(seen["cancelled"]["outcome"], "reset")  # the upstream stream was reset too

    def test_H2ToH2_ClientGoawayLetsTheInFlightCallFinish(self):
        c = self.client()
        c.pump(lambda ev: of(ev, h2.events.RemoteSettingsChanged))
        sid = c.request("/inflight?delay=300&id=g1")
        c.conn.close_connection(last_stream_id=0)  # the client leaves; it opens nothing new
        c.flush()
        frames = c.frames_until_close()
        heads = [h for f, h in frames if h and f.stream_id == sid]
        self.assertEqual(heads[0][b":status"], b"200", frames)
        self.assertTrue(any(f.stream_id == sid and "END_STREAM" in f.flags for f, _ in frames),
                        "the in-flight call did not finish")

    def test_H2_DrainSendsGoawayAndFinishesTheInFlightCall(self):
        c = self.client()
        c.pump(lambda ev: of(ev, h2.events.RemoteSettingsChanged))
        sid = c.request("/inflight?delay=1000&id=d1")
        # The sidecar has the call (the upstream answers only after 1 s).
        wait_for(lambda: self.admin_stats().get("attempts", 0) >= 1, what="the call upstream")
        self.assertFalse(self.upstream_seen_request("d1"))
        self.sidecar_proc.send_signal(signal.SIGTERM)
        frames = c.frames_until_close()
        goaways = [f for f, _ in frames if isinstance(f, hyperframe.frame.GoAwayFrame)]
        self.assertTrue(goaways, frames)
        self.assertEqual(goaways[0].error_code, 0)  # NO_ERROR: a graceful stop
        self.assertGreaterEqual(goaways[0].last_stream_id, sid)
        heads = [h for f, h in frames if h and f.stream_id == sid]
        self.assertEqual(heads[0][b":status"], b"200", frames)
        self.assertTrue(any(f.stream_id == sid and "END_STREAM" in f.flags for f, _ in frames))
        self.assertEqual(self.sidecar_proc.wait(10), 0)

    def test_H2ToH2_ManyResponseHeadsAtOnceEachKeepTheirOwnFields(self):
        # The sidecar hands response heads to nghttp2 without a copy
        # (NGHTTP2_NV_FLAG_NO_COPY_*): their storage must live until the
        # HEADERS frame is packed, which happens later, after the heads of
        # the other answers that arrived in the same read were submitted
        # too. Storage given back early would be reused by those: heads with
        # another stream's content-length (issue 18).
        c = self.client()
        c.pump(lambda ev: of(ev, h2.events.RemoteSettingsChanged))
        sizes = {c.request(f"/heads?size={n}&id=h{n}"): n for n in range(1, 81)}
        c.pump(lambda ev: all(of(ev, h2.events.StreamEnded, s) for s in sizes), timeout=30)
        for sid, n in sizes.items():
            head = dict(of(c.events, h2.events.ResponseReceived, sid)[0].headers)
            self.assertEqual(head[b":status"], b"200", (sid, head))
            self.assertEqual(head[b"content-length"], str(n).encode(), (sid, head))
            self.assertEqual(head[b"x-upstream-name"], b"h2-upstream", (sid, head))
            self.assertEqual(sum(len(e.data) for e in of(c.events, h2.events.DataReceived, sid)), n)

    def test_H2ToH2_ConnectionErrorCancelsEveryInFlightCallUpstream(self):
        # The client breaks the connection (RFC 9113 §5.1.1: a HEADERS frame
        # on a stream id it used before): the sidecar's GOAWAY must reach
        # every stream in flight, and each one's upstream stream be reset —
        # not one left running (a walk over the session's streams: issue 18
        # moved them from a map to a list).
        c = self.client()
        c.pump(lambda ev: of(ev, h2.events.RemoteSettingsChanged))
        slow = [c.request(f"/slow?delay=60000&id=w{i}") for i in range(6)]
        fast = c.request("/fast?id=wfast")
        # Answered after the slow HEADERS went out on the same upstream
        # connection: the upstream has every slow stream now.
        c.pump(lambda ev: of(ev, h2.events.StreamEnded, fast))
        self.assertTrue(all(not of(c.events, h2.events.StreamEnded, s) for s in slow))
        # HEADERS (END_STREAM | END_HEADERS) on the finished stream `fast`.
        c.sock.sendall(hyperframe.frame.HeadersFrame(fast, b"\x82", flags=["END_HEADERS", "END_STREAM"]).serialize())
        frames = c.frames_until_close(timeout=30)
        goaways = [f for f, _ in frames if isinstance(f, hyperframe.frame.GoAwayFrame)]
        self.assertTrue(goaways and goaways[0].error_code == 1, frames)  # PROTOCOL_ERROR
        reset = wait_for(lambda: {r["id"] for r in self.upstream_log(self.up_log) if r["outcome"] == "reset"}
                         >= {f"w{i}" for i in range(6)} and self.upstream_log(self.up_log), timeout=30,
                         what="every slow upstream stream reset")
        self.assertFalse([r for r in reset if r["id"].startswith("w") and r["outcome"] == "answered"
                          and r["id"] != "wfast"])

    def admin_stats(self):
        import json
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats", timeout=5) as r:
            return json.loads(r.read())

    def upstream_seen_request(self, ident):
        return any(r.get("id") == ident for r in self.upstream_log(self.up_log))


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class Http2IdleTimeoutTest(Stack):
    """The policy's idle_timeout closes a silent h2c connection, however its
    preface came: the sidecar reads once right after accept, and a preface
    found there (the usual case) used to leave the connection with no idle
    timeout at all; only one that came later (and was waited for) had one."""

    def setUp(self):
        super().setUp()
        port, self.up_log = self.start_h2_upstream()
        self.publish(policy(port) + '\n[defaults]\nidle_timeout = "500ms"\n')
        self.start_sidecar()
        wait_for(lambda: self.admin_stats().get("policy_generation") == 1, what="the policy loaded")

    admin_stats = Http2FramesTest.admin_stats

    def client_with_preface_there_at_accept(self):
        # Stopped, the sidecar accepts nothing: the handshake completes in the
        # kernel and the preface waits in the socket for the read after accept.
        self.sidecar_proc.send_signal(signal.SIGSTOP)
        try:
            c = Client(self.outbound_port)
        finally:
            self.sidecar_proc.send_signal(signal.SIGCONT)
        self.addCleanup(c.close)
        return c

    def test_H2_SilentConnectionIsClosedAfterTheIdleTimeout(self):
        c = self.client_with_preface_there_at_accept()
        c.pump(lambda ev: of(ev, h2.events.RemoteSettingsChanged))
        c.frames_until_close(timeout=20)  # before: never closed
        self.assertTrue(c.closed)

    def test_H2ToH2_CallLongerThanTheIdleTimeoutIsNotCutThenTheConnectionIs(self):
        c = self.client_with_preface_there_at_accept()
        sid = c.request("/slow?delay=1500&id=long")
        c.pump(lambda ev: of(ev, h2.events.StreamEnded, sid), timeout=20)
        status = dict(of(c.events, h2.events.ResponseReceived, sid)[0].headers)[b":status"]
        self.assertEqual(status, b"200")
        c.frames_until_close(timeout=20)  # then silent: closed
        self.assertTrue(c.closed)


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class Http2UpstreamLostTest(Stack):
    """The upstream connection dies with many streams on it: every attempt
    on it must hear of it (and be retried or fail), none left waiting."""

    def setUp(self):
        super().setUp()
        port, self.up_log = self.start_h2_upstream()
        self.up_proc = self.procs[-1]
        # A long request timeout: a call whose attempt was not told would
        # hang far beyond the test's wait, not end with 504 in time.
        self.publish(policy(port) + '[defaults]\nrequest_timeout = "300s"\n'
                     '[defaults.retry]\nnum_retries = 2\nbackoff_base = "1ms"\nbackoff_max = "1ms"\n')
        self.start_sidecar()

    def test_H2ToH2_UpstreamConnectionLostEndsEveryCallOnIt(self):
        c = Client(self.outbound_port)
        self.addCleanup(c.close)
        c.pump(lambda ev: of(ev, h2.events.RemoteSettingsChanged))
        slow = [c.request(f"/slow?delay=300000&id=l{i}") for i in range(6)]
        fast = c.request("/fast?id=lfast")
        c.pump(lambda ev: of(ev, h2.events.StreamEnded, fast))
        self.up_proc.kill()  # the upstream connection ends (EOF/reset) with six streams open on it
        self.up_proc.wait(10)
        c.pump(lambda ev: all(of(ev, h2.events.StreamEnded, s) or of(ev, h2.events.StreamReset, s) for s in slow),
               timeout=60)
        for s in slow:
            heads = of(c.events, h2.events.ResponseReceived, s)
            self.assertTrue(heads, f"stream {s}: {c.events}")
            self.assertNotEqual(dict(heads[0].headers)[b":status"], b"504")


class StallingUpstream:
    """An h2c upstream on python3-h2 in a thread of the test that, after
    answering /warm (or after reading the first /held, which it answers only
    once answer_held is set), stops reading its socket until resume(). Its
    windows are as large as HTTP/2 allows, so what the sidecar sends it
    (stall(): request bodies) backs up in the kernel's buffers (a few MB),
    then in the sidecar's output (up to its high-water mark), then in
    nghttp2's queue, where request HEADERS then wait unpacked. Records every
    request's header list as it arrived, and answers each once it ended
    (200, "ok")."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accepted socket
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.heads = {}  # stream id -> [(name, value)] as received
        self.paused = threading.Event()
        self.resumed = threading.Event()
        self.answer_held = threading.Event()
        self.held = None  # the /held stream, unanswered
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def resume(self):
        self.resumed.set()

    def close(self):
        self.stop.set()
        self.resumed.set()
        self.thread.join(10)
        self.lsock.close()

    def run(self):
        try:
            self.lsock.settimeout(0.1)
            while not self.stop.is_set():
                try:
                    sock, _ = self.lsock.accept()
                except socket.timeout:
                    continue
                with sock:
                    self.serve(sock)
                return
        except Exception as e:  # reported by the test
            self.error = repr(e)

    def serve(self, sock):
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.initiate_connection()
        conn.increment_flow_control_window(2**31 - 1 - 65535)  # the connection's window too
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.1)

        def answer(sid):
            # (trailer: a field the sidecar drops although HTTP/2 allows it)
            conn.send_headers(sid, [(":status", "200"), ("content-length", "2"), ("trailer", "x-none"),
                                    ("x-up", "Kept As Sent")])
            conn.send_data(sid, b"ok", end_stream=True)
            sock.sendall(conn.data_to_send())

        while not self.stop.is_set():
            if self.held is not None and self.answer_held.is_set():
                answer(self.held)  # written while nothing is read
                self.held = None
            if self.paused.is_set() and not self.resumed.is_set():
                self.resumed.wait(0.1)
                continue
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    head = [(bytes(k), bytes(v)) for k, v in ev.headers]
                    self.heads[ev.stream_id] = head
                    path = dict(head).get(b":path", b"")
                    if path.startswith(b"/held") and not self.paused.is_set():
                        self.held = ev.stream_id
                        self.paused.set()  # from now on, read nothing until resume()
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id != self.held:
                    if dict(self.heads.get(ev.stream_id, [])).get(b":path") == b"/warm":
                        self.paused.set()  # (before the answer: the test sees it paused once answered)
                    answer(ev.stream_id)
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)


def pad(i):
    """A header value of 2,000 bytes unique to request `i`."""
    import hashlib
    seed, out = str(i).encode(), b""
    while len(out) < 2000:
        seed = hashlib.sha256(seed).hexdigest().encode()
        out += seed
    return out[:2000]


def send_get(c, i, path="/q"):
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "h2"),
                              (":path", f"{path}?id={i}"), ("x-id", str(i)), ("x-pad", pad(i))], end_stream=True)
    return sid


def stall(c, first_id, streams=24, size=256 * 1024):
    """POSTs `streams` bodies of `size` bytes (6 MiB: more than the kernel
    buffers of a loopback connection hold) towards a StallingUpstream that
    reads nothing: what the sidecar takes from here on waits in its own
    output and in nghttp2. Returns {stream id: i}."""
    sids = {}
    chunk = b"b" * 16384
    for k in range(streams):
        i = first_id + k
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "h2"),
                                  (":path", f"/body?id={i}"), ("x-id", str(i)), ("x-pad", pad(i))])
        c.flush()
        # The sidecar's credit: its SETTINGS, then WINDOW_UPDATEs as it
        # takes the bodies (each at most its stream window).
        c.pump(lambda ev: c.conn.local_flow_control_window(sid) >= size, timeout=30)
        for at in range(0, size, len(chunk)):
            c.conn.send_data(sid, chunk, end_stream=at + len(chunk) >= size)
        c.flush()
        sids[sid] = i
    return sids


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class Http2QueuedRequestHeadsTest(Stack):
    """The sidecar hands request heads to nghttp2 without a copy
    (NGHTTP2_NV_FLAG_NO_COPY_*): the fields must stay, unchanged, until
    nghttp2 packs the HEADERS frame, which for an upstream that does not
    read comes long after the submit, after other requests (and the
    attempts of cancelled calls) took and gave back header storage, and
    after their attempts may be gone (issue 18)."""

    def setUp(self):
        super().setUp()
        self.up = StallingUpstream()
        self.addCleanup(self.up.close)
        self.publish(policy(self.up.port))
        self.start_sidecar()

    def check_heads(self, heads):
        """Each head the upstream got is one request's own fields (a hedge's
        head is its call's again); returns {i: [upstream stream ids]}."""
        seen = {}
        for up_sid, head in heads.items():
            fields = dict(head)
            if fields[b":path"] == b"/warm":
                continue
            i = int(fields[b"x-id"])
            self.assertTrue(fields[b":path"].endswith(f"?id={i}".encode()), head)
            self.assertEqual(fields[b":authority"], b"h2", head)
            self.assertEqual(fields[b"x-pad"], pad(i), f"request {i}: another request's bytes")
            self.assertEqual([k for k, _ in head].count(b"x-pad"), 1, head)
            seen.setdefault(i, []).append(up_sid)
        return seen

    def test_H2ToH2_RequestFieldsAreForwardedAsRfc9113SaysWithoutBeingLoweredOrFilteredAgain(self):
        # A head that came over HTTP/2 skips the lower-casing and the
        # connection-specific filter (nghttp2 checked both): Host still goes
        # (:authority carries it), TE: trailers stays, the attempt's own
        # x-envoy-attempt-count replaces the client's.
        c = Client(self.outbound_port)
        self.addCleanup(c.close)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "h2"),
                                  (":path", "/plain?id=1"), ("host", "h2"), ("te", "trailers"),
                                  ("x-envoy-attempt-count", "99"), ("x-keep", "Kept As Sent"),
                                  ("proxy-authorization", "Basic c2lkZWNhcjpvbmx5"), ("trailer", "x-none")],
                            end_stream=True)
        c.flush()
        events = c.pump(lambda ev: of(ev, h2.events.StreamEnded, sid))
        head = next(h for h in dict(self.up.heads).values() if dict(h)[b":path"] == b"/plain?id=1")
        names = [k for k, _ in head]
        self.assertNotIn(b"host", names, head)
        # Meant for the sidecar / not forwarded by it, over HTTP/1 or HTTP/2 alike.
        self.assertNotIn(b"proxy-authorization", names, head)
        self.assertNotIn(b"trailer", names, head)
        # The response the other way: the same fields dropped, the rest as sent.
        resp = dict((bytes(k), bytes(v)) for k, v in of(events, h2.events.ResponseReceived, sid)[0].headers)
        self.assertNotIn(b"trailer", resp, resp)
        self.assertEqual(resp.get(b"x-up"), b"Kept As Sent", resp)
        self.assertEqual([v for k, v in head if k == b"te"], [b"trailers"], head)
        self.assertEqual([v for k, v in head if k == b"x-envoy-attempt-count"], [b"1"], head)
        self.assertEqual([v for k, v in head if k == b"x-keep"], [b"Kept As Sent"], head)
        self.assertEqual([k for k in names if k.startswith(b":")], [b":method", b":scheme", b":authority", b":path"])

    def test_H2ToH2_RequestHeadsQueuedBehindAStalledUpstreamKeepTheirFieldsThroughCancels(self):
        c = Client(self.outbound_port)
        self.addCleanup(c.close)
        warm = c.request("/warm")
        c.pump(lambda ev: of(ev, h2.events.StreamEnded, warm))
        self.assertTrue(self.up.paused.is_set())
        sids = stall(c, 1000)
        # Heads that wait in nghttp2's queue, unpacked.
        sids.update({send_get(c, i): i for i in range(60)})
        c.flush()
        # Every other one of the later calls is cancelled by the client
        # while its HEADERS wait upstream; new calls come after, taking
        # header storage as their heads are built.
        cancelled = {sid for sid, i in sids.items() if 20 <= i < 60 and i % 2 == 0}
        for sid in sorted(cancelled):
            c.conn.reset_stream(sid)
        sids.update({send_get(c, i): i for i in range(60, 70)})
        c.conn.ping(b"queued!!")
        c.flush()
        # The PING is answered after the frames before it were processed.
        c.pump(lambda ev: of(ev, h2.events.PingAckReceived))
        self.up.resume()
        kept = [sid for sid in sids if sid not in cancelled]
        c.pump(lambda ev: all(of(ev, h2.events.StreamEnded, s) for s in kept), timeout=60)
        self.assertIsNone(self.up.error)
        for sid in kept:
            self.assertEqual(dict(of(c.events, h2.events.ResponseReceived, sid)[0].headers)[b":status"], b"200")
        # What reached the upstream, each head as its client sent it.
        seen = self.check_heads(dict(self.up.heads))
        self.assertFalse({i: s for i, s in seen.items() if len(s) > 1}, "sent twice")
        self.assertEqual({sids[s] for s in kept} - set(seen), set(), "kept calls missing upstream")


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class Http2QueuedLoserHeadTest(Stack):
    """A hedge whose HEADERS still wait in nghttp2's queue when the first
    attempt's answer wins: the loser is left to finish (no RST_STREAM: the
    orphan rule) and freed, and its HEADERS go out later — with its own
    fields, which the session must still hold (issue 18)."""

    def setUp(self):
        super().setUp()
        self.up = StallingUpstream()
        self.addCleanup(self.up.close)
        # (fresh_connection off: the hedge goes on the one connection.)
        self.publish(policy(self.up.port) + '[defaults]\nhedge = { delay = "1s", max_attempts = 2, '
                     'max_extra_load = 1.0 }\n[defaults.retry]\nfresh_connection = false\n')
        self.start_sidecar()

    admin_stats = Http2FramesTest.admin_stats
    check_heads = Http2QueuedRequestHeadsTest.check_heads

    def test_H2ToH2_HedgeLoserFreedWhileItsHeadersWaitSendsItsOwnFieldsLater(self):
        c = Client(self.outbound_port)
        self.addCleanup(c.close)
        held = send_get(c, 500, "/held")
        c.flush()
        wait_for(lambda: self.up.paused.is_set(), what="the upstream holding the first call")
        # Bodies (not hedged: POST) that fill the connection upstream: the
        # held call's hedge, a second on, queues behind them in nghttp2.
        bodies = stall(c, 1000)
        wait_for(lambda: self.admin_stats().get("hedges", 0) >= 1, what="the held call hedged")
        # The first attempt's answer wins; its hedge is left to finish.
        self.up.answer_held.set()
        c.pump(lambda ev: of(ev, h2.events.StreamEnded, held), timeout=30)
        self.assertEqual(dict(of(c.events, h2.events.ResponseReceived, held)[0].headers)[b":status"], b"200")
        # New calls build their heads in header storage given back meanwhile.
        later = [send_get(c, i) for i in range(100, 140)]
        c.conn.ping(b"queued!!")
        c.flush()
        c.pump(lambda ev: of(ev, h2.events.PingAckReceived))
        self.up.resume()
        c.pump(lambda ev: all(of(ev, h2.events.StreamEnded, s) for s in list(bodies) + later), timeout=60)
        self.assertIsNone(self.up.error)
        seen = wait_for(lambda: len(self.check_heads(dict(self.up.heads)).get(500, [])) >= 2
                        and self.check_heads(dict(self.up.heads)), timeout=30, what="the hedge's head upstream")
        self.assertEqual(len(seen[500]), 2, "the held call and its hedge")
        self.assertEqual((set(bodies.values()) | set(range(100, 140))) - set(seen), set())


if __name__ == "__main__":
    unittest.main()
