"""mulligan-agent's command line: check, publish, dump and run (file edits,
ConfigMap symlink swaps, broken edits), against real shared memory; and
status, against a live sidecar."""
import json
import re
import os
import signal
import time
import unittest

from harness import Case, SRC, Stack, binary, wait_for

GOOD = """version = 1
[defaults]
request_timeout = "10s"

[[service]]
name = "orders"
hosts = ["orders", "orders.default.svc.cluster.local"]
port = 8080
upstream = "127.0.0.1:9000"
retry = { num_retries = 3 }

  [[service.route]]
  path_prefix = "/api/"
  request_timeout = "{TIMEOUT}"
"""

# Three mistakes; every one must be reported with its line and column.
BROKEN = """version = 1
[defaults]
request_timeout = "ten seconds"

[defaults.retry]
num_retry = 3

[[service]]
name = "orders"
hosts = ["orders"]
port = 70000
"""


# Issue 19's check-only mistakes, one per line (line numbers matter).
HEDGE_BROKEN = """version = 1
[defaults.hedge]
delay = "p98"
max_attempts = 6
max_extra_load = 1.5

[defaults.outlier]
consecutive_failures = 100000
ejection = "10m"
max_ejected = "half"

[[service]]
name = "orders"
hosts = ["orders"]

  [[service.route]]
  path_prefix = "/upload"
  methods = ["POST", "CONNECT"]
  retry = { idempotency_header = "" }
  hedge = { delay = "50ms" }

  [[service.route]]
  path_prefix = "/tunnel"
  hedge = { delay = "p99" }
  methods = ["CONNECT"]
"""

HEDGE_GOOD = """version = 1
[defaults.hedge]
delay = "p99"

[[service]]
name = "orders"
hosts = ["orders"]

  [[service.route]]
  path_prefix = "/upload"
  methods = ["POST"]
  hedge = { delay = "50ms" }

  [[service.route]]
  grpc = "shop.Orders"
  methods = ["POST"]
  retry = { idempotency_header = "", retry_on = ["unavailable"] }
  hedge.delay = "p95"

  [[service.route]]
  path_prefix = "/"
  methods = ["POST"]
  retry = { idempotency_header = "" }
"""

def good(timeout="5s"):
    return GOOD.replace("{TIMEOUT}", timeout)


class AgentCliTest(Case):
    def setUp(self):
        super().setUp()
        self.agent = binary("mulligan-agent")

    def dump_json(self):
        r = self.run_cmd(self.agent, "dump", "--shm", self.shm, "--format", "json")
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def route_timeout(self, doc):
        return doc["services"][0]["routes"][0]["request_timeout"]

    def test_check_accepts_the_example_policy(self):
        example = os.path.join(SRC, "examples", "policy.toml")
        r = self.run_cmd(self.agent, "check", "--policy", example)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok", r.stdout)

    def test_check_counts_services_and_routes_in_english(self):
        # Before: "ok (1 services, 1 routes)".
        one = self.write("one.toml", GOOD.replace("{TIMEOUT}", "2s"))
        r = self.run_cmd(self.agent, "check", "--policy", one)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"{one}: ok (1 service, 1 route)\n")
        two = self.write("two.toml", GOOD.replace("{TIMEOUT}", "2s") + """
  [[service.route]]
  path_prefix = "/b/"

[[service]]
name = "users"
hosts = ["users"]
upstream = "127.0.0.1:9001"
""")
        r = self.run_cmd(self.agent, "check", "--policy", two)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"{two}: ok (2 services, 2 routes)\n")

    def test_check_reports_every_error_with_file_line_col(self):
        p = self.write("policy.toml", BROKEN)
        r = self.run_cmd(self.agent, "check", "--policy", p)
        self.assertEqual(r.returncode, 1)
        lines = [l for l in r.stderr.splitlines() if l.startswith(p + ":") and l[len(p) + 1].isdigit()]
        self.assertEqual(len(lines), 3, r.stderr)
        self.assertIn(f'{p}:3:19: request_timeout: "ten seconds" is not a duration (use e.g. "500ms", "2s")', lines)
        self.assertTrue(any(l.startswith(f"{p}:6:1:") and '"num_retry"' in l and '"num_retries"' in l for l in lines),
                        lines)
        self.assertTrue(any(l.startswith(f"{p}:11:8:") and "port" in l for l in lines), lines)

    def test_check_reports_hedge_and_outlier_mistakes_with_file_line_col(self):
        p = self.write("policy.toml", HEDGE_BROKEN)
        r = self.run_cmd(self.agent, "check", "--policy", p)
        self.assertEqual(r.returncode, 1)
        lines = [l[len(p) + 1:] for l in r.stderr.splitlines() if l.startswith(p + ":") and l[len(p) + 1].isdigit()]
        self.assertEqual(lines, [
            '3:9: delay: "p98" is not a quantile Mulligan tracks (the quantiles are "p90", "p95", "p99", "p99.9")',
            '4:16: max_attempts: 6 is out of range (2..5)',
            '5:18: max_extra_load: 1.5 is out of range (0..1, e.g. 0.05)',
            '8:24: consecutive_failures: 100000 is out of range (0..1000)',
            '9:12: ejection: "10m" is more than max_ejection (5m)',
            '10:15: max_ejected: "half" is not a number (e.g. 0.5)',
            '20:21: delay: no request of this route can be hedged: its methods (POST, CONNECT) are never retried '
            'while idempotency_header is "" (set one, or leave the delay out)',
            '24:21: delay: no request of this route can be hedged: its methods (CONNECT) are never retried '
            '(leave the delay out)',
        ], r.stderr)

    def test_check_accepts_hedging_wherever_a_request_could_be_retried(self):
        # POST with an idempotency header, a gRPC route (POST only), and a
        # POST route under a hedge delay it inherits: all fine.
        p = self.write("policy.toml", HEDGE_GOOD)
        r = self.run_cmd(self.agent, "check", "--policy", p)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_missing_file_and_usage_errors(self):
        r = self.run_cmd(self.agent, "check", "--policy", self.path("absent.toml"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("absent.toml", r.stderr)
        self.assertIn("No such file", r.stderr)
        self.assertEqual(self.run_cmd(self.agent, "check").returncode, 2)
        self.assertEqual(self.run_cmd(self.agent, "frobnicate").returncode, 2)
        self.assertEqual(self.run_cmd(self.agent, "dump", "--format", "yaml").returncode, 2)
        h = self.run_cmd(self.agent, "--help")
        self.assertEqual(h.returncode, 0)
        self.assertIn("mulligan-agent run", h.stdout)
        v = self.run_cmd(self.agent, "--version")
        self.assertEqual(v.returncode, 0)
        self.assertIn("pfc/3", v.stdout)

    def test_flags_come_from_the_environment_too(self):
        p = self.write("policy.toml", good())
        env = dict(os.environ, MULLIGAN_POLICY=p, MULLIGAN_SHM=self.shm)
        self.assertEqual(self.run_cmd(self.agent, "publish", env=env).returncode, 0)
        self.assertEqual(self.dump_json()["generation"], 1)

    def test_publish_then_dump_round_trips_through_check(self):
        p = self.write("policy.toml", good("7s"))
        r = self.run_cmd(self.agent, "publish", "--policy", p, "--shm", self.shm)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("generation 1", r.stdout)
        toml = self.run_cmd(self.agent, "dump", "--shm", self.shm)
        self.assertEqual(toml.returncode, 0, toml.stderr)
        self.assertIn('request_timeout = "7s"', toml.stdout)
        again = self.write("dumped.toml", toml.stdout)
        r = self.run_cmd(self.agent, "check", "--policy", again)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Republishing the dump gives the same effective table.
        shm2 = self.shm + "-b"
        self.addCleanup(lambda: os.path.exists("/dev/shm" + shm2) and os.unlink("/dev/shm" + shm2))
        self.assertEqual(self.run_cmd(self.agent, "publish", "--policy", again, "--shm", shm2).returncode, 0)
        a = self.dump_json()
        b = json.loads(self.run_cmd(self.agent, "dump", "--shm", shm2, "--format", "json").stdout)
        self.assertEqual(a["services"], b["services"])
        self.assertEqual(a["defaults"], b["defaults"])
        self.assertEqual(self.route_timeout(a), "7s")
        self.assertEqual(a["services"][0]["retry"]["num_retries"], 3)

    def test_broken_policy_never_reaches_shared_memory(self):
        p = self.write("policy.toml", good("7s"))
        self.assertEqual(self.run_cmd(self.agent, "publish", "--policy", p, "--shm", self.shm).returncode, 0)
        self.write("policy.toml", BROKEN)
        r = self.run_cmd(self.agent, "publish", "--policy", p, "--shm", self.shm)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nothing published", r.stderr)
        doc = self.dump_json()
        self.assertEqual(doc["generation"], 1)
        self.assertEqual(self.route_timeout(doc), "7s")

    def test_dump_without_a_segment_says_so(self):
        r = self.run_cmd(self.agent, "dump", "--shm", self.shm)
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.shm, r.stderr)

    def test_segment_on_a_file_path(self):
        p = self.write("policy.toml", good())
        seg = self.path("policy.shm")
        self.assertEqual(self.run_cmd(self.agent, "publish", "--policy", p, "--shm", seg).returncode, 0)
        self.assertEqual(os.stat(seg).st_mode & 0o777, 0o644)
        r = self.run_cmd(self.agent, "dump", "--shm", seg, "--format", "json")
        self.assertEqual(json.loads(r.stdout)["generation"], 1)

    def start_run(self, policy_path):
        log = self.path("agent.log")
        p = self.start(self.agent, "run", "--policy", policy_path, "--shm", self.shm, "--poll-ms", "60000",
                       stderr_file=log)
        return p, log

    def wait_generation(self, g):
        return wait_for(lambda: (self.dump_json() or {}).get("generation") == g, what=f"generation {g}")

    def test_run_follows_edits_and_keeps_the_last_good_table(self):
        p = self.write("policy.toml", good("5s"))
        proc, log = self.start_run(p)
        self.wait_generation(1)
        # An in-place edit (editors differ: here write + rename).
        self.write("policy.toml", good("6s"))
        self.wait_generation(2)
        self.assertEqual(self.route_timeout(self.dump_json()), "6s")
        # A broken edit is logged with its positions and changes nothing.
        self.write("policy.toml", BROKEN)
        wait_for(lambda: "keeping generation 2" in open(log).read(), what="broken edit logged")
        self.assertIn('"ten seconds" is not a duration', open(log).read())
        self.assertEqual(self.dump_json()["generation"], 2)
        # Fixing it publishes again; truncate+write in place this time.
        with open(p, "w") as f:
            f.write(good("8s"))
        self.wait_generation(3)
        self.assertEqual(self.route_timeout(self.dump_json()), "8s")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(5), 0)
        text = open(log).read()
        self.assertIn("published generation 1", text)
        self.assertIn("published generation 3", text)

    def test_run_follows_a_configmap_symlink_swap(self):
        # The layout kubelet makes for a ConfigMap volume:
        #   policy.toml -> ..data/policy.toml,  ..data -> ..2026_11_23_01_00_00.1
        mount = self.path("configmap")
        os.mkdir(mount)
        v1 = os.path.join(mount, "..2026_11_23_01_00_00.1")
        os.mkdir(v1)
        with open(os.path.join(v1, "policy.toml"), "w") as f:
            f.write(good("5s"))
        os.symlink(os.path.basename(v1), os.path.join(mount, "..data"))
        os.symlink("..data/policy.toml", os.path.join(mount, "policy.toml"))
        proc, _ = self.start_run(os.path.join(mount, "policy.toml"))
        self.wait_generation(1)
        # kubelet's atomic update: new dir, ..data_tmp symlink, rename over ..data, remove old dir.
        v2 = os.path.join(mount, "..2026_11_23_01_05_00.2")
        os.mkdir(v2)
        with open(os.path.join(v2, "policy.toml"), "w") as f:
            f.write(good("9s"))
        os.symlink(os.path.basename(v2), os.path.join(mount, "..data_tmp"))
        start = time.monotonic()
        os.rename(os.path.join(mount, "..data_tmp"), os.path.join(mount, "..data"))
        for name in os.listdir(v1):
            os.unlink(os.path.join(v1, name))
        os.rmdir(v1)
        self.wait_generation(2)
        elapsed_ms = (time.monotonic() - start) * 1000
        self.assertEqual(self.route_timeout(self.dump_json()), "9s")
        print(f"\nconfigmap swap -> published in {elapsed_ms:.1f} ms (poll fallback is 60 s here)")
        self.assertLess(elapsed_ms, 30000)  # proves inotify, not the 60 s poll

    def test_restarted_agent_resumes_the_generation_count(self):
        p = self.write("policy.toml", good())
        for _ in range(2):
            self.assertEqual(self.run_cmd(self.agent, "publish", "--policy", p, "--shm", self.shm).returncode, 0)
        proc, _ = self.start_run(p)
        self.wait_generation(3)

    def test_second_agent_on_the_same_segment_is_refused(self):
        p = self.write("policy.toml", good())
        proc, _ = self.start_run(p)
        self.wait_generation(1)
        r = self.run_cmd(self.agent, "publish", "--policy", p, "--shm", self.shm)
        self.assertEqual(r.returncode, 1)
        self.assertIn("another writer", r.stderr)


STATUS_POLICY = """version = 1
[[service]]
name = "flaky"
hosts = ["flaky"]
upstream = "127.0.0.1:{port}"
retry = {{ num_retries = 2, backoff_base = "1ms", backoff_max = "2ms" }}
  [[service.route]]
  path_prefix = "/slow/"
  request_timeout = "150ms"
"""


class StatusTest(Stack):
    """`mulligan-agent status` against a live sidecar: what it enforces, the
    agent's refusal, and per service and route what it did."""

    def status(self, *extra):
        return self.run_cmd(binary("mulligan-agent"), "status", "--admin", f"127.0.0.1:{self.admin_port}", *extra)

    def call(self, path):
        import subprocess
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: flaky",
                            f"http://127.0.0.1:{self.outbound_port}{path}"], capture_output=True, text=True, timeout=20)
        return r.stdout

    def test_status_prints_generation_source_refusal_and_per_route_counters(self):
        port, _ = self.start_upstream()
        self.publish(STATUS_POLICY.format(port=port))
        self.start_sidecar()
        self.assertEqual(self.call("/x?status=503"), "503")          # 2 retries, then exhausted
        self.assertEqual(self.call("/slow/x?delay=1s"), "504")       # a request timeout on route 0
        broken = self.write("policy.toml", "version = 1\n[defaults]\nretry = { num_retries = -1 }\n")
        self.assertEqual(self.run_cmd(binary("mulligan-agent"), "publish", "--policy", broken,
                                      "--shm", self.shm).returncode, 1)

        r = self.status()
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn(f"sidecar   127.0.0.1:{self.admin_port} (ready)", out)
        self.assertIn(f"policy    generation 1 from {self.path('policy.toml')}, enforced since ", out)
        self.assertRegex(out, r"refused   policy file refused by the agent: " + re.escape(broken) + r":3:\d+: ")
        self.assertIn("generation 1 stays enforced until the file is fixed (1 file refused in all)", out)
        self.assertIn("traffic   2 requests, 2 retries, 1 refused retry, 1 timeout", out)
        rows = {tuple(l.split()[:2]): l.split() for l in out.splitlines() if l.startswith("flaky ")}
        level = rows[("flaky", "(service")]
        self.assertEqual(level[3:8], ["1", "1", "2", "1", "0"])  # requests 5xx retries refused timeouts
        self.assertIn("retried on 503:2; refused by retries-exhausted:1", out)
        route = rows[("flaky", "0:")]
        self.assertEqual(route[5:10], ["1", "1", "0", "0", "1"])
        self.assertIn("timeouts request:1", out)

        # MULLIGAN_ADMIN works as --admin does.
        env = dict(os.environ, MULLIGAN_ADMIN=f"127.0.0.1:{self.admin_port}")
        r2 = self.run_cmd(binary("mulligan-agent"), "status", env=env)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertIn("generation 1", r2.stdout)

    def test_status_without_a_sidecar_fails_and_says_where_it_looked(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        r = self.run_cmd(binary("mulligan-agent"), "status", "--admin", f"127.0.0.1:{port}")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"127.0.0.1:{port}: Connection refused", r.stderr)


if __name__ == "__main__":
    unittest.main()
