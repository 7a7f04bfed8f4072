"""Shared helpers for the integration tests: where the binaries are, temp
dirs, unique shared-memory names, and processes that are always cleaned up.

Skips must show (run_suite.py, scripts/test): a test that cannot run here
skips through need_tool() / need_module(), whose reason names the Debian
package that would provide what is missing, so that scripts/test can fail
when that package is one scripts/lib/deps.sh installs. A missing binary of
ours is a failure, never a skip: the build is broken."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("MULLIGAN_BIN_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")
SRC = os.environ.get("MULLIGAN_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")


def binary(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        # Not a skip: a suite that finds no binaries would otherwise "pass".
        raise AssertionError(f"{path} is not built (MULLIGAN_BIN_DIR={BIN})")
    return path


def need_tool(tool, package):
    """The path of `tool`, or skip the test naming the Debian `package` that provides it."""
    path = shutil.which(tool)
    if not path:
        raise unittest.SkipTest(f"{tool} is not installed (Debian package {package})")
    return path


def need_module(module, package):
    """Python module `module`, imported, or skip naming the Debian `package`."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise unittest.SkipTest(f"python module {module} is not installed (Debian package {package})")


def note_skip(test_id, reason):
    """Record that `test_id` skipped something (all of it, or a part its
    suite meant to cover, such as io_uring) in $MULLIGAN_SKIP_LOG, one JSON
    line, for scripts/test's summary. Without the variable: stderr only."""
    rec = {"ctest": os.environ.get("MULLIGAN_CTEST_NAME", ""), "test": test_id, "reason": reason}
    log = os.environ.get("MULLIGAN_SKIP_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
    else:
        import sys
        print(f"skipped: {test_id}: {reason}", file=sys.stderr)


class Case(unittest.TestCase):
    """A test case with a temp dir, a unique shm name and process cleanup."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mulligan-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.shm = f"/mulligan-it-{os.getpid()}-{id(self) & 0xffffff:x}"
        self.addCleanup(self._unlink_shm)
        self.procs = []
        self.addCleanup(self._stop_all)

    def _unlink_shm(self):
        try:
            os.unlink("/dev/shm" + self.shm)
        except FileNotFoundError:
            pass

    def _stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()

    def blackholed_port(self):
        """A loopback port whose accept queue is full: the kernel drops further
        SYNs, so connects hang exactly as to a blackholed address. Cleaned
        up with the test."""
        import socket
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        self.addCleanup(hole.close)
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(hole.getsockname())
            except BlockingIOError:
                pass
            fillers.append(f)
        self.addCleanup(lambda: [f.close() for f in fillers])
        # Waited for, not slept on: the handshakes that fit the queue are
        # done (their sockets writable), so the next SYN is the one dropped.
        import select
        wait_for(lambda: len(select.select([], fillers, [], 0)[1]) >= 1, what="the accept queue full")
        return hole.getsockname()[1]

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p + ".tmp", "w") as f:
            f.write(text)
        os.replace(p + ".tmp", p)
        return p

    def run_cmd(self, *args, timeout=30, env=None):
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)

    def start(self, *args, stderr_file=None, **kw):
        err = open(stderr_file, "w") if stderr_file else subprocess.PIPE
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, **kw)
        if stderr_file:
            err.close()
        self.procs.append(p)
        return p


def wait_for(predicate, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_port_file(path, timeout=10.0):
    def ready():
        try:
            with open(path) as f:
                text = f.read().strip()
            return int(text) if text else None
        except (FileNotFoundError, ValueError):
            return None
    return wait_for(ready, timeout=timeout, what=f"port in {path}")


class Stack(Case):
    """Upstream(s) + agent-published policy + sidecar, all on loopback ports
    picked by the kernel, all cleaned up after the test."""

    _noted_epoll = False

    def start_upstream(self, name="upstream"):
        port_file = self.path(f"{name}.port")
        log = self.path(f"{name}.log")
        self.start(binary("mulligan-test-upstream"), "--listen", "127.0.0.1:0", "--port-file", port_file,
                   "--log", log, "--name", name, "--quiet")
        port = read_port_file(port_file)
        return port, log

    def start_h2_upstream(self, name="h2upstream", max_streams=None):
        """mulligan-h2-upstream (tests/upstreams/h2_upstream.cc): a scriptable
        HTTP/2 peer on nghttp2. Returns (port, log path)."""
        port_file = self.path(f"{name}.port")
        log = self.path(f"{name}.log")
        args = [binary("mulligan-h2-upstream"), "--listen", "127.0.0.1:0", "--port-file", port_file, "--log", log]
        if max_streams:
            args += ["--max-streams", str(max_streams)]
        self.start(*args)
        return read_port_file(port_file), log

    def publish(self, policy_text):
        p = self.write("policy.toml", policy_text)
        r = self.run_cmd(binary("mulligan-agent"), "publish", "--policy", p, "--shm", self.shm)
        self.assertEqual(r.returncode, 0, r.stderr)

    def admin(self, route):
        """The body of a GET of `route` on the sidecar's admin endpoint."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=20)
        c.request("GET", route)
        body = c.getresponse().read().decode()
        c.close()
        return body

    def start_sidecar(self, *extra, prefix=()):
        """The sidecar with `extra` flags; `prefix`: a command it runs under
        (mulligan-deny-syscalls, say)."""
        err = self.path("sidecar.err")
        self.access_log = self.path("access.log")
        proc = self.start(*prefix, binary("mulligan-sidecar"), "--shm", self.shm, "--outbound", "127.0.0.1:0",
                          "--admin", "127.0.0.1:0", "--access-log", self.access_log, "--access-log-filter", "all",
                          *extra, stderr_file=err)

        def listening():
            with open(err) as f:
                text = f.read()
            if proc.poll() is not None:
                raise AssertionError("sidecar exited: " + text)
            out = adm = None
            for line in text.splitlines():
                if "listening outbound " in line:
                    out = line.split("listening outbound ")[1].split()[0]
                if "listening admin " in line:
                    adm = line.split("listening admin ")[1].split()[0]
            return (out, adm) if out and adm else None
        out, adm = wait_for(listening, what="sidecar listening")
        with open(err) as f:
            started = f.read()
        if os.environ.get("MULLIGAN_IO_URING") == "off":
            self.assertIn("sockets receive with epoll", started)  # the run meant to cover the epoll fallback does
            # ... with its sends as that run asked: one send(2) each, or
            # batched through Linux AIO (RuntimeDefault's path), which every
            # Linux this runs on has.
            if os.environ.get("MULLIGAN_AIO") == "off":
                self.assertIn("sends one send(2) each (--aio off)", started)
            else:
                self.assertIn("sends batched through Linux AIO", started)
        elif "io_uring unavailable" in started and not prefix and not Stack._noted_epoll:
            Stack._noted_epoll = True  # once per suite, not once per test
            # The kernel (or a seccomp profile) refused io_uring: this test
            # ran on epoll. Not a failure, but not the coverage asked for.
            note_skip(self.id(), "io_uring refused here, ran on epoll: " +
                      next(l for l in started.splitlines() if "io_uring unavailable" in l).strip())
        self.sidecar_proc = proc
        self.sidecar_err = err
        self.outbound_port = int(out.rsplit(":", 1)[1])
        self.admin_port = int(adm.rsplit(":", 1)[1])
        return proc

    def upstream_log(self, log):
        import json
        try:
            with open(log) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def access_records(self):
        import json
        try:
            with open(self.access_log) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def access_record(self, marker):
        """The last access-log record whose path contains `marker`, waited
        for: lines are written in batches off the request path, a moment
        after the response went out."""
        return wait_for(lambda: [r for r in self.access_records() if marker in r["path"]],
                        what=f"access-log record of {marker}")[-1]
