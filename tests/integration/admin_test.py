"""The admin endpoint with real clients: curl on every route, Prometheus'
own promtool on /metrics, 405 for wrong methods, POST /drain stops the
sidecar gracefully."""
import json
import shutil
import subprocess
import unittest

from harness import Stack


class AdminTest(Stack):
    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=30)

    def code(self, method, route):
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-X", method, f"http://127.0.0.1:{self.admin_port}{route}")
        return r.stdout

    def setUp(self):
        super().setUp()
        self.port, _ = self.start_upstream()
        self.publish(f'version = 1\n[[service]]\nname = "web"\nhosts = ["web"]\nupstream = "127.0.0.1:{self.port}"\n')
        self.start_sidecar()

    def test_routes_answer_and_wrong_methods_get_405(self):
        from harness import wait_for
        wait_for(lambda: self.code("GET", "/ready") == "200", what="ready")
        self.assertEqual(self.code("GET", "/healthz"), "200")
        self.assertEqual(self.code("GET", "/nope"), "404")
        for route in ("/ready", "/healthz", "/stats", "/metrics"):
            self.assertEqual(self.code("POST", route), "405", route)
            self.assertEqual(self.code("DELETE", route), "405", route)
        self.assertEqual(self.code("GET", "/drain"), "405")

    def test_stats_count_what_happened(self):
        for _ in range(3):
            self.curl("-H", "Host: web", f"http://127.0.0.1:{self.outbound_port}/x?status=503")
        stats = json.loads(self.curl(f"http://127.0.0.1:{self.admin_port}/stats").stdout)
        self.assertEqual(stats["requests"], 3)
        self.assertEqual(stats["responses"]["5xx"], 3)
        self.assertEqual(stats["retries"], 3)  # built-in default: one retry on 503
        self.assertEqual(stats["attempts"], 6)
        self.assertEqual(stats["policy_generation"], 1)

    @unittest.skipUnless(shutil.which("promtool"), "promtool (Debian package prometheus) not installed")
    def test_metrics_pass_promtool(self):
        self.curl("-H", "Host: web", f"http://127.0.0.1:{self.outbound_port}/x")
        text = self.curl(f"http://127.0.0.1:{self.admin_port}/metrics").stdout
        self.assertIn('mulligan_responses_total{service="web",route="",code_class="2xx"} 1', text)
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_post_drain_stops_the_sidecar_cleanly(self):
        self.assertEqual(self.code("POST", "/drain"), "202")
        self.assertEqual(self.sidecar_proc.wait(10), 0)


class CorruptTableTest(Stack):
    def test_a_corrupt_table_is_refused_and_the_last_good_one_keeps_serving(self):
        import mmap
        import struct
        import time
        port, _ = self.start_upstream()
        self.publish(f'version = 1\n[[service]]\nname = "web"\nhosts = ["web"]\nupstream = "127.0.0.1:{port}"\n')
        self.start_sidecar()
        get = lambda: subprocess.run(["curl", "-s", "-H", "Host: web", f"http://127.0.0.1:{self.outbound_port}/x"],
                                     capture_output=True, text=True, timeout=10).stdout
        self.assertEqual(get(), "ok\n")
        # Vandalize the segment as a buggy or dying writer could: flip a byte
        # inside the active table image and announce a new generation.
        with open("/dev/shm" + self.shm, "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
            generation, active = struct.unpack_from("<QI", m, 72)
            offset = struct.unpack_from("<Q", m, 88 + 32 * active + 8)[0]
            m[offset + 200] ^= 0xFF
            struct.pack_into("<Q", m, 72, generation + 1)
            m.close()
        time.sleep(0.6)  # the workers' policy tick notices within 250 ms
        self.assertEqual(get(), "ok\n")  # still routed by the last good table
        stats = json.loads(subprocess.run(["curl", "-s", f"http://127.0.0.1:{self.admin_port}/stats"],
                                          capture_output=True, text=True, timeout=10).stdout)
        self.assertGreaterEqual(stats["policy_refused"], 1)
        self.assertEqual(stats["policy_generation"], 1)
        self.assertIn("checksum mismatch", open(self.sidecar_err).read())
