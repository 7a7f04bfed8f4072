"""The access log (issue 18, "an access log that costs almost nothing"):
which requests get a line (--access-log-filter: `notable`, the default, or
`all`), and what happens when its destination is a pipe that stops reading —
requests are still all answered, lines are dropped and counted
(mulligan_access_log_dropped_total, /stats access_log_dropped), the sidecar
says so once per episode, lines resume when the reader reads again, and a
clean stop writes every line it still holds.

No assertion is about how long something took: "not slowed" is asserted as
"every request answered while nothing reads the log"; the old sidecar, which
wrote each line to stdout from the worker, hangs there instead."""
import fcntl
import http.client
import json
import os
import signal
import subprocess
import threading
import unittest

from harness import Stack, binary, wait_for


def policy(upstream_port):
    return f"""version = 1
[[service]]
name = "flaky"
hosts = ["flaky"]
upstream = "127.0.0.1:{upstream_port}"
retry = {{ retry_on = ["503"], num_retries = 2, backoff_base = "1ms", backoff_max = "2ms" }}
"""


class PipeReader:
    """Reads a pipe on a thread until EOF, from start() on."""

    def __init__(self, fd):
        self.fd = fd
        self.data = bytearray()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        while True:
            b = os.read(self.fd, 65536)
            if not b:
                return
            with self.lock:
                self.data += b

    def lines(self):
        with self.lock:
            text = bytes(self.data).decode()
        return text.split("\n")[:-1]  # whole lines only (a partial tail is still arriving)


class AccessLogTest(Stack):
    def start_own_sidecar(self, *extra, stdout=subprocess.DEVNULL, env=None):
        """The sidecar without the harness's `--access-log-filter all`, its
        stdout where the test says."""
        err = self.path("sidecar.err")
        with open(err, "w") as errf:
            p = subprocess.Popen([binary("mulligan-sidecar"), "--shm", self.shm, "--outbound", "127.0.0.1:0",
                                  "--admin", "127.0.0.1:0", *extra],
                                 stdout=stdout, stderr=errf, env=env)
        self.procs.append(p)

        def listening():
            text = open(err).read()
            if p.poll() is not None:
                raise AssertionError("sidecar exited: " + text)
            out = [l.split("listening outbound ")[1].split()[0] for l in text.splitlines() if "listening outbound " in l]
            adm = [l.split("listening admin ")[1].split()[0] for l in text.splitlines() if "listening admin " in l]
            return (out[0], adm[0]) if out and adm else None
        out, adm = wait_for(listening, what="sidecar listening")
        self.sidecar_proc, self.sidecar_err = p, err
        self.outbound_port = int(out.rsplit(":", 1)[1])
        self.admin_port = int(adm.rsplit(":", 1)[1])
        return p

    def get(self, path, host="flaky", conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=20)
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        r.read()
        if conn is None:
            c.close()
        return r.status

    def dropped_metric(self):
        for line in self.admin("/metrics").splitlines():
            if line.startswith("mulligan_access_log_dropped_total "):
                return int(line.split()[1])
        raise AssertionError("no mulligan_access_log_dropped_total in /metrics")

    def stderr_text(self):
        return open(self.sidecar_err).read()

    def test_notable_by_default_logs_retried_local_and_5xx_but_not_a_plain_200(self):
        port, upstream_log = self.start_upstream()
        self.publish(policy(port))
        log = self.path("access.log")
        self.start_own_sidecar("--access-log", log, "--max-upstream-connections", "1")
        self.assertEqual(self.get("/plain?id=plain"), 200)
        self.assertEqual(self.get("/r?fail_first=1&id=retried"), 200)  # 503, retried, 200
        # A local 503: one call holds the only upstream connection, the next
        # is answered by the sidecar itself (x-mulligan-overloaded).
        slow = threading.Thread(target=lambda: self.get("/slow?delay=1s&id=slow"))
        slow.start()
        wait_for(lambda: [x for x in self.upstream_log(upstream_log) if x.get("id") == "slow"],
                 what="the slow call at the upstream")
        self.assertEqual(self.get("/over?id=overflow"), 503)
        slow.join()
        self.assertEqual(self.get("/e?status=500&id=err"), 500)  # not retried (retry_on 503), still notable

        def records():
            try:
                return [json.loads(l) for l in open(log) if l.strip()]
            except FileNotFoundError:
                return []
        # One worker: lines leave in the order the calls ended, so once the
        # last is written, an earlier one that is missing was filtered out.
        recs = wait_for(lambda: [r for r in records() if "id=err" in r["path"]] and records(), what="the 500's line")
        paths = [r["path"].split("?")[0] for r in recs]
        self.assertEqual(paths, ["/r", "/over", "/e"], recs)
        self.assertEqual(recs[0]["attempts"], 2)
        self.assertEqual((recs[1]["status"], recs[1]["sidecar_error"]), (503, "overflow"))
        # The same calls with `all` (here from the environment): every one.
        self.sidecar_proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.sidecar_proc.wait(20), 0)
        os.unlink(log)
        self.start_own_sidecar("--access-log", log, env=dict(os.environ, MULLIGAN_ACCESS_LOG_FILTER="all"))
        self.assertEqual(self.get("/plain2?id=plain2"), 200)
        self.assertEqual(self.get("/r2?fail_first=1&id=retried2"), 200)
        recs = wait_for(lambda: len(records()) >= 2 and records(), what="both lines")
        self.assertEqual([r["path"].split("?")[0] for r in recs], ["/plain2", "/r2"])

    def test_unknown_filter_is_a_usage_error(self):
        r = subprocess.run([binary("mulligan-sidecar"), "--access-log-filter", "some"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--access-log-filter must be all or notable", r.stderr)

    def test_pipe_nobody_reads_costs_dropped_lines_not_requests_then_resumes_and_flushes_at_stop(self):
        port, _ = self.start_upstream()
        self.publish(policy(port))
        rfd, wfd = os.pipe()
        self.addCleanup(os.close, rfd)
        # stdout is the pipe, as a container runtime gives it; every line wanted.
        proc = self.start_own_sidecar(stdout=wfd, env=dict(os.environ, MULLIGAN_ACCESS_LOG_FILTER="all"))
        # The description the sidecar inherited (shared with us, as with a
        # container runtime) stays blocking: the sidecar never sets
        # O_NONBLOCK on it.
        flags = fcntl.fcntl(wfd, fcntl.F_GETFL)
        reader = PipeReader(rfd)
        sent = 0
        # Nobody reads: ~2.5 MB of lines against a 64 KiB pipe and the
        # sidecar's 1 MiB buffer. Every request is still answered.
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=20)
        for i in range(4000):
            self.assertEqual(self.get(f"/stalled/{i}?pad={'p' * 400}", conn=conn), 200)
            sent += 1
        self.assertEqual(fcntl.fcntl(wfd, fcntl.F_GETFL), flags)
        self.assertFalse(flags & os.O_NONBLOCK)
        os.close(wfd)  # ours; the sidecar keeps its copy
        dropped = self.dropped_metric()
        self.assertGreater(dropped, 0)
        self.assertEqual(json.loads(self.admin("/stats"))["access_log_dropped"], dropped)
        wait_for(lambda: "dropping lines" in self.stderr_text(), what="the drop episode logged")
        # The reader reads again: what the sidecar held comes out (every
        # stalled request is a line or a drop), new lines arrive, the
        # episode ends, and each end of it is said once.
        reader.start()
        wait_for(lambda: sum("/stalled/" in l for l in reader.lines()) + dropped == 4000, what="the backlog written")
        for i in range(50):
            self.assertEqual(self.get(f"/after/{i}", conn=conn), 200)
            sent += 1
        wait_for(lambda: sum("/after/" in l for l in reader.lines()) == 50, what="lines after the stall")
        wait_for(lambda: "writing again" in self.stderr_text(), what="the episode's end logged")
        text = self.stderr_text()
        self.assertEqual(text.count("dropping lines"), 1, text)
        self.assertEqual(text.count("writing again"), 1, text)
        # A clean stop writes every line still held: sent = written + dropped.
        for i in range(200):
            self.assertEqual(self.get(f"/final/{i}", conn=conn), 200)
            sent += 1
        conn.close()
        dropped = self.dropped_metric()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(20), 0)
        reader.thread.join(20)  # EOF: the sidecar's end closed at exit
        self.assertFalse(reader.thread.is_alive())
        lines = reader.lines()
        for l in lines:
            json.loads(l)  # whole lines, never two run together
        self.assertEqual(sum("/final/" in l for l in lines), 200)
        self.assertEqual(len(lines) + dropped, sent)


if __name__ == "__main__":
    unittest.main()
