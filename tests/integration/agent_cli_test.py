"""mulligan-agent's command line: check, publish, dump and run (file edits,
ConfigMap symlink swaps, broken edits), against real shared memory."""
import json
import os
import signal
import time
import unittest

from harness import Case, SRC, binary, wait_for

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
        self.assertIn("pfc/1", v.stdout)

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


if __name__ == "__main__":
    unittest.main()
