"""A policy file the agent refuses is visible where people look: the
sidecar's /config (last_refused, agent_refused), /stats, the / page and
/metrics, read from the shared segment (the agent records its last refusal
there; nothing is published). A later good edit is enforced and the refusal
stays as history, marked superseded. And a sidecar facing a segment of an
older layout says so."""
import json
import mmap
import os
import re
import struct
import subprocess
import unittest

from harness import Stack, binary, wait_for

GOOD = """version = 1
[[service]]
name = "web"
hosts = ["web"]
upstream = "127.0.0.1:{port}"
request_timeout = "{timeout}"
"""

# Line 6, column 19: the value; line 7, column 11: the unknown key.
BROKEN = """version = 1
[[service]]
name = "web"
hosts = ["web"]
upstream = "127.0.0.1:{port}"
request_timeout = "ten seconds"
retry = {{ num_retry = 2 }}
"""


def http_get(port, path, host=None):
    args = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]
    if host:
        args += ["-H", f"Host: {host}"]
    r = subprocess.run(args + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise AssertionError(f"curl {path}: {r.stderr}")
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def get_json(port, path):
    code, body = http_get(port, path)
    assert code == 200, (path, code, body)
    return json.loads(body)


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class AgentRefusalTest(Stack):
    def start_agent(self, policy_path):
        log = self.path("agent.log")
        self.start(binary("mulligan-agent"), "run", "--policy", policy_path, "--shm", self.shm, "--poll-ms", "200",
                   stderr_file=log)
        return log

    def enforced_generation(self):
        # The sidecar loads a new generation on its next request.
        http_get(self.outbound_port, "/", host="web")
        return get_json(self.admin_port, "/config")["generation"]

    def test_refused_edit_shows_in_config_stats_page_and_metrics_then_stays_as_history(self):
        port, _ = self.start_upstream()
        policy = self.write("policy.toml", GOOD.format(port=port, timeout="5s"))
        self.start_agent(policy)
        self.start_sidecar()
        wait_for(lambda: self.enforced_generation() == 1, what="generation 1 enforced")
        config = get_json(self.admin_port, "/config")
        self.assertIsNone(config["last_refused"])
        self.assertIsNone(config["agent_refused"])
        metrics = http_get(self.admin_port, "/metrics")[1]
        self.assertEqual(metric(metrics, "mulligan_policy_agent_refused_total"), 0)
        self.assertEqual(metric(metrics, "mulligan_policy_agent_refused"), 0)

        # A broken edit: the agent refuses it, the sidecar says so.
        self.write("policy.toml", BROKEN.format(port=port))
        config = wait_for(lambda: (lambda c: c if c["last_refused"] else None)(get_json(self.admin_port, "/config")),
                          what="refusal in /config")
        r = config["last_refused"]
        self.assertEqual(r["by"], "agent")
        self.assertEqual(r["file"], policy)
        self.assertEqual((r["line"], r["column"]), (6, 19))
        self.assertIn('"ten seconds" is not a duration', r["message"])
        self.assertEqual(r["why"], f"{policy}:6:19: {r['message']}")
        self.assertEqual(r["errors"], 2)
        self.assertEqual(r["count"], 1)
        self.assertEqual(r["kept_generation"], 1)
        self.assertFalse(r["superseded"])
        self.assertRegex(r["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(config["agent_refused"], r)
        self.assertEqual(config["generation"], 1)  # the old table stays enforced
        self.assertEqual(get_json(self.admin_port, "/stats")["policy"]["agent_refused"], r)
        metrics = http_get(self.admin_port, "/metrics")[1]
        self.assertEqual(metric(metrics, "mulligan_policy_agent_refused_total"), 1)
        self.assertEqual(metric(metrics, "mulligan_policy_agent_refused"), 1)
        self.assertEqual(metric(metrics, "mulligan_policy_agent_last_refused_timestamp_seconds"), r["unix_ms"] // 1000)
        self.assertEqual(metric(metrics, "mulligan_policy_refused_total"), 0)  # the sidecar refused no table
        page = http_get(self.admin_port, "/")[1]
        self.assertIn(f"{policy}:6:19: request_timeout: &quot;ten seconds&quot; is not a duration", page)
        self.assertIn("generation 1 stays enforced until the file is fixed", page)
        self.assertIn("(and 1 more)", page)
        self.assertEqual(self.enforced_generation(), 1)

        # A good edit is published and enforced; the refusal is history.
        self.write("policy.toml", GOOD.format(port=port, timeout="7s"))
        wait_for(lambda: self.enforced_generation() == 2, what="generation 2 enforced")
        config = get_json(self.admin_port, "/config")
        self.assertEqual(config["table"]["services"][0]["request_timeout"], "7s")
        r2 = config["last_refused"]
        self.assertTrue(r2["superseded"])
        self.assertEqual({k: v for k, v in r2.items() if k != "superseded"},
                         {k: v for k, v in r.items() if k != "superseded"})
        metrics = http_get(self.admin_port, "/metrics")[1]
        self.assertEqual(metric(metrics, "mulligan_policy_agent_refused_total"), 1)
        self.assertEqual(metric(metrics, "mulligan_policy_agent_refused"), 0)
        self.assertIn("since superseded by a later generation", http_get(self.admin_port, "/")[1])

        # A second broken edit counts again.
        self.write("policy.toml", "version = 1\n[defaults]\nconect_timeout = \"1s\"\n")
        r3 = wait_for(lambda: (lambda c: c if c["count"] == 2 else None)(
            get_json(self.admin_port, "/config")["last_refused"]), what="second refusal")
        self.assertEqual((r3["line"], r3["column"], r3["kept_generation"], r3["superseded"]), (3, 1, 2, False))
        self.assertIn('did you mean "connect_timeout"', r3["message"])

    def test_one_shot_publish_records_a_refusal_only_in_an_existing_segment(self):
        broken = self.write("broken.toml", BROKEN.format(port=1))
        agent = binary("mulligan-agent")
        r = self.run_cmd(agent, "publish", "--policy", broken, "--shm", self.shm)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists("/dev/shm" + self.shm))  # nothing created only to say so

        port, _ = self.start_upstream()
        self.publish(GOOD.format(port=port, timeout="5s"))
        self.start_sidecar()
        wait_for(lambda: self.enforced_generation() == 1, what="generation 1 enforced")
        r = self.run_cmd(agent, "publish", "--policy", broken, "--shm", self.shm)
        self.assertEqual(r.returncode, 1)
        refused = get_json(self.admin_port, "/config")["last_refused"]
        self.assertEqual((refused["by"], refused["file"], refused["line"]), ("agent", broken, 6))

    def test_unreadable_policy_file_is_a_refusal_of_the_whole_file(self):
        port, _ = self.start_upstream()
        policy = self.write("policy.toml", GOOD.format(port=port, timeout="5s"))
        self.start_agent(policy)
        self.start_sidecar()
        wait_for(lambda: self.enforced_generation() == 1, what="generation 1 enforced")
        os.unlink(policy)
        refused = wait_for(lambda: get_json(self.admin_port, "/config")["last_refused"], what="refusal")
        self.assertEqual((refused["line"], refused["column"]), (0, 0))
        self.assertEqual(refused["why"], f"{policy}: cannot read: No such file or directory")


class OlderSegmentTest(Stack):
    def test_sidecar_facing_an_older_abi_segment_says_the_agent_is_older(self):
        port, _ = self.start_upstream()
        self.publish(GOOD.format(port=port, timeout="5s"))
        with open("/dev/shm" + self.shm, "r+b") as f:  # what an ABI 1 agent leaves
            m = mmap.mmap(f.fileno(), 0)
            struct.pack_into("<I", m, 8, 1)
            m.close()
        self.start_sidecar()
        http_get(self.outbound_port, "/", host="web")  # passes through on the built-in defaults
        config = wait_for(lambda: (lambda c: c if c["last_refused"] else None)(get_json(self.admin_port, "/config")),
                          what="refusal")
        self.assertFalse(config["enforced"])
        self.assertEqual(config["last_refused"]["by"], "sidecar")
        self.assertIn("segment ABI version 1, this build reads 3 (the segment's writer, mulligan-agent, is older",
                      config["last_refused"]["why"])
        self.assertEqual(http_get(self.admin_port, "/ready")[0], 503)
        metrics = http_get(self.admin_port, "/metrics")[1]
        self.assertEqual(metric(metrics, "mulligan_policy_refused_total"), 1)


if __name__ == "__main__":
    unittest.main()
