"""HTTP/2 limits of mulligan-sidecar (issue 15, findings 2 and 6), driven with
raw frames over plain sockets (no HTTP/2 library reads or answers on our
behalf, as an attacker's client would not): floods of PING, SETTINGS, empty
DATA and resets, a stream id that goes backwards, an oversized header list,
an upstream that floods, and the abandoned-stream storm (many connections
that each open 100 streams and leave without reading)."""
import json
import os
import socket
import struct
import threading
import time
import unittest
import urllib.request

from h2_storm import PREFACE, frame, literal, request_block, storm
from harness import Stack, wait_for

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
PROTOCOL_ERROR, ENHANCE_YOUR_CALM = 0x1, 0xb


def policy(port, extra=""):
    return f"""version = 1
{extra}
[[service]]
name = "h2"
hosts = ["h2"]
upstream = "127.0.0.1:{port}"
"""


def read_frames(sock, timeout=20):
    """Every frame the peer sends until it closes: [(type, flags, stream,
    payload)]. Raises if the connection is still open after `timeout`."""
    buf = b""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            kind, flags = buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            out.append((kind, flags, stream, buf[9:9 + length]))
            buf = buf[9 + length:]
        left = deadline - time.monotonic()
        if left <= 0:
            kinds = {}
            for f in out:
                kinds[f[0]] = kinds.get(f[0], 0) + 1
            raise AssertionError(f"the connection did not close in {timeout}s; frame types seen: {kinds}")
        sock.settimeout(min(left, 1.0))
        try:
            data = sock.recv(1 << 16)
        except socket.timeout:
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            return out
        buf += data


def goaways(frames):
    """[(last_stream_id, error_code)] of the GOAWAY frames."""
    return [struct.unpack(">II", p[:8]) for k, _, _, p in frames if k == GOAWAY]


def hpack_int(n, prefix):
    """An HPACK integer (RFC 7541 §5.1) with a `prefix`-bit prefix, no flags."""
    top = (1 << prefix) - 1
    if n < top:
        return bytes([n])
    out = [top]
    n -= top
    while n >= 128:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def send_all(sock, data):
    """Writes `data`; the sidecar may close the connection part-way (that is
    what is tested), which is not an error here."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


class SilentUpstream:
    """A TCP listener that accepts and reads but never answers: an HTTP/2
    upstream whose handshake (its SETTINGS) never comes. Counts the
    connections it accepted and those the peer has closed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed = 0
        self.lock = threading.Lock()
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        import selectors
        sel = selectors.DefaultSelector()
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ)
        while not self.stop:
            for key, _ in sel.select(0.1):
                if key.fileobj is self.sock:
                    try:
                        c, _ = self.sock.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
                    with self.lock:
                        self.accepted += 1
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except (BlockingIOError, ConnectionResetError):
                    data = b"" if not isinstance(data, bytes) else data
                    continue
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    with self.lock:
                        self.closed += 1
        for key in list(sel.get_map().values()):
            key.fileobj.close()

    def counts(self):
        with self.lock:
            return self.accepted, self.closed

    def close(self):
        self.stop = True


class FloodingUpstream:
    """An HTTP/2 upstream that answers the sidecar's connection with its
    SETTINGS and then `pings` PINGs, reading nothing more. Records the
    GOAWAY the sidecar sends it."""

    def __init__(self, pings):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.pings = pings
        self.frames = None
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        c, _ = self.sock.accept()
        c.settimeout(10)
        c.recv(24)  # the client preface (at least its start)
        payload = frame(SETTINGS, 0, 0) + b"".join(frame(PING, 0, 0, struct.pack(">Q", i))
                                                    for i in range(self.pings))
        send_all(c, payload)
        try:
            self.frames = read_frames(c, timeout=20)
        except AssertionError:
            self.frames = []
        c.close()

    def close(self):
        self.sock.close()


class Http2LimitsTest(Stack):
    def setUp(self):
        super().setUp()
        self.up_port, self.up_log = self.start_h2_upstream()
        self.publish(policy(self.up_port))
        self.start_sidecar()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(PREFACE + frame(SETTINGS, 0, 0))
        return s

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats", timeout=5) as r:
            return json.loads(r.read())

    def metric(self, name, labels):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        for line in text.splitlines():
            if line.startswith(f"{name}{{{labels}}} "):
                return int(line.split()[-1])
        return None

    def assertGoaway(self, frames, code, *reasons, side="downstream"):
        """One GOAWAY with `code` before the close, counted and logged once
        under one of `reasons` (a flood of ACKs the client does not read
        can trip nghttp2's queue limit, outbound-flood, before our own
        rate limit, depending on how the bytes arrive)."""
        g = goaways(frames)
        self.assertTrue(g, f"no GOAWAY before the close; {len(frames)} frames")
        self.assertEqual(g[-1][1], code, f"GOAWAY error code {g[-1][1]}, wanted {code}")
        counted = {r: self.metric("mulligan_http2_goaways_total", f'side="{side}",reason="{r}"') for r in reasons}
        self.assertEqual(sum(counted.values()), 1, counted)
        with open(self.sidecar_err) as f:
            text = f.read()
        self.assertEqual(sum(text.count(f": {r}, GOAWAY") for r in reasons), 1, text)  # logged once

    # --- floods (finding 6) ---

    def test_H2_PingFloodNeverReadGetsGoawayEnhanceYourCalm(self):
        s = self.connect()
        send_all(s, b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(20000)))
        frames = read_frames(s)
        self.assertGoaway(frames, ENHANCE_YOUR_CALM, "ping-flood", "outbound-flood")
        acks = sum(1 for k, fl, _, _ in frames if k == PING and fl & ACK)
        self.assertLess(acks, 20000)

    def test_H2_SettingsFloodNeverReadGetsGoawayEnhanceYourCalm(self):
        s = self.connect()
        send_all(s, frame(SETTINGS, 0, 0) * 20000)
        self.assertGoaway(read_frames(s), ENHANCE_YOUR_CALM, "settings-flood", "outbound-flood")

    def test_H2_EmptyDataFramesGetGoawayEnhanceYourCalm(self):
        s = self.connect()
        head = literal(2, "POST") + literal(6, "http") + literal(4, "/upload?id=empty") + literal(1, "h2")
        send_all(s, frame(HEADERS, END_HEADERS, 1, head) + frame(DATA, 0, 1) * 10000)
        frames = read_frames(s)
        self.assertGoaway(frames, ENHANCE_YOUR_CALM, "empty-frames")

    def test_H2_StreamIdGoingBackwardsGetsGoawayProtocolError(self):
        s = self.connect()
        send_all(s, frame(HEADERS, END_STREAM | END_HEADERS, 5, request_block("/a?id=five", "h2")) +
                 frame(HEADERS, END_STREAM | END_HEADERS, 3, request_block("/b?id=three", "h2")))
        frames = read_frames(s)
        self.assertGoaway(frames, PROTOCOL_ERROR, "stream-id")
        self.assertFalse(any(r.get("id") == "three" for r in self.upstream_log(self.up_log)))

    def test_H2_RapidResetGetsGoawayEnhanceYourCalm(self):
        s = self.connect()
        out = []
        for i in range(3000):
            sid = 2 * i + 1
            out.append(frame(HEADERS, END_STREAM | END_HEADERS, sid, request_block(f"/r?delay=2000&id=rr{i}", "h2")))
            out.append(frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8)))  # CANCEL
        send_all(s, b"".join(out))
        self.assertGoaway(read_frames(s), ENHANCE_YOUR_CALM, "rapid-reset")

    def test_H2_HeaderListAboveTheLimitIsAnswered431AndTheConnectionStays(self):
        # DESIGN/README: MAX_HEADER_LIST_SIZE from --max-header-bytes (64 KiB),
        # 431 beyond it. 20 fields of 4 KiB (80 KiB) in 16 KiB frames.
        s = self.connect()
        block = request_block("/big?id=big", "h2")
        for i in range(20):
            name = f"x-big-{i}".encode()
            block += b"\x00" + bytes([len(name)]) + name + hpack_int(4096, 7) + b"v" * 4096
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        data = frame(HEADERS, END_STREAM if len(chunks) > 1 else END_STREAM | END_HEADERS, 1, chunks[0])
        for i, c in enumerate(chunks[1:], 1):
            data += frame(CONTINUATION, END_HEADERS if i == len(chunks) - 1 else 0, 1, c)
        data += frame(HEADERS, END_STREAM | END_HEADERS, 3, request_block("/small?id=small", "h2"))
        send_all(s, data)
        # Both streams are answered on the same connection: 431, then 200.
        statuses = {}
        buf = b""
        deadline = time.monotonic() + 10
        while len(statuses) < 2 and time.monotonic() < deadline:
            s.settimeout(1)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            self.assertTrue(chunk, f"the connection closed; statuses so far {statuses}")
            buf += chunk
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                length = int.from_bytes(buf[:3], "big")
                kind, stream, payload = buf[3], int.from_bytes(buf[5:9], "big"), buf[9:9 + length]
                buf = buf[9 + length:]
                if kind == HEADERS and stream not in statuses:
                    # The sidecar's first HPACK field is :status, static-table
                    # indexed (0x88 200 ... 0x8e 500) or a literal (431).
                    statuses[stream] = payload[:8]
        self.assertEqual(set(statuses), {1, 3}, statuses)
        self.assertIn(b"431", statuses[1])
        self.assertEqual(statuses[3][0], 0x88)  # :status 200

    # --- the abandoned-stream storm (finding 2) ---

    def test_H2Storm_AbandonedStreamsFreeTheirMemory(self):
        before = vm_kib(self.sidecar_proc.pid, "VmRSS")
        connects = 0
        for _ in range(2):
            self.assertEqual(storm(self.outbound_port, 200, 100), 200)
            wait_for(lambda: self.stats()["downstream_active"] == 0, timeout=60, what="every connection closed")
            # 20,000 streams went nowhere near 200 upstream connections: calls
            # in flight to one destination are capped (1024) and one
            # connection carries 100 of them. (Whether round 2 reuses round
            # 1's depends on whether they were ready before their clients left.)
            st = self.stats()
            self.assertLessEqual(st["upstream_connects"] - connects, 12, st)
            connects = st["upstream_connects"]
        after = vm_kib(self.sidecar_proc.pid, "VmRSS")
        peak = vm_kib(self.sidecar_proc.pid, "VmHWM")
        print(f"storm 2 x 200 x 100: VmRSS {before} KiB before, {after} KiB after, VmHWM {peak} KiB")
        if not sanitized(self.sidecar_proc.pid):
            self.assertLess(after, 40 * 1024, f"RSS {after} KiB after the storm (before: {before} KiB)")
            self.assertLess(peak, 64 * 1024, f"peak RSS {peak} KiB")


class Http2AbandonedConnectsTest(Stack):
    """Streams whose clients leave while their upstream connection is still
    being made: the connection is given up, not completed for nothing."""

    def test_H2Storm_ConnectionsForStreamsThatLeftAreClosed(self):
        up = SilentUpstream()
        self.addCleanup(up.close)
        # A long connect timeout: only the sidecar's noticing that nobody
        # waits any more can close these connections within the test.
        self.publish(policy(up.port, '[defaults]\nconnect_timeout = "60s"'))
        self.start_sidecar()
        self.assertEqual(storm(self.outbound_port, 200, 100), 200)
        wait_for(lambda: self.stats()["downstream_active"] == 0, timeout=60, what="every client connection closed")
        accepted, _ = up.counts()
        self.assertLessEqual(accepted, 12, "upstream connections opened for 200 x 100 abandoned streams")
        wait_for(lambda: up.counts()[1] == up.counts()[0], timeout=20,
                 what=f"the sidecar closing the upstream connections nobody waits for ({up.counts()})")

    def test_H2ToH2_UpstreamPingFloodGetsGoawayAndTheCallFails(self):
        up = FloodingUpstream(20000)
        self.addCleanup(up.close)
        self.publish(policy(up.port, '[defaults.retry]\nnum_retries = 0'))
        self.start_sidecar()
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) +
                  frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block("/x?id=up", "h2")))
        wait_for(lambda: up.frames is not None, timeout=30, what="the upstream's connection to end")
        g = goaways(up.frames)
        self.assertTrue(g, "the sidecar sent the flooding upstream no GOAWAY")
        self.assertEqual(g[-1][1], ENHANCE_YOUR_CALM)
        counted = [self.metric("mulligan_http2_goaways_total", f'side="upstream",reason="{r}"')
                   for r in ("ping-flood", "outbound-flood")]
        self.assertEqual(sum(counted), 1, counted)

    def test_H2load_CallsInFlightPerDestinationAreCapped(self):
        import shutil
        import subprocess
        if not shutil.which("h2load"):
            self.skipTest("h2load (nghttp2-client) is not installed")
        port, log = self.start_h2_upstream(max_streams=10)
        self.publish(policy(port))
        self.start_sidecar("--max-upstream-connections", "30")
        # 100 calls at once, each held 3 s upstream: 30 go (on 3 connections of
        # 10 streams), 70 are answered 503 by the sidecar at once.
        r = subprocess.run(["h2load", "-n", "100", "-c", "1", "-m", "100", "-H", ":authority: h2",
                            f"http://127.0.0.1:{self.outbound_port}/held?delay=3000"],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("status codes: 30 2xx, 0 3xx, 0 4xx, 70 5xx", r.stdout, r.stdout + r.stderr)
        st = self.stats()
        self.assertEqual(st["upstream_overflow"], 70, st)
        self.assertLessEqual(st["upstream_connects"], 3, st)
        self.assertEqual(len(self.upstream_log(log)), 30)

    stats = Http2LimitsTest.stats
    metric = Http2LimitsTest.metric


if __name__ == "__main__":
    unittest.main()
