"""Policy propagation as the sidecar records it (issue 18): a sidecar started
after the policy was published is ready as soon as its admin answers, and
each later publish is timed from the agent's stamp in the segment (or the
first request's start, when later) to the moment a request could enforce it
(/stats policy.propagation, /metrics mulligan_policy_propagation_seconds),
once, by the first request that enforces it — also when the idle tick
loaded the table before that request came (then 0: nobody waited). No timed
assertions: each check waits on a condition or reads what one request left
behind."""
import http.client
import json
import time

from harness import Stack, wait_for


POLICY = 'version = 1\n[[service]]\nname = "web"\nhosts = ["web"]\nupstream = "127.0.0.1:{port}"\n'


class PolicyPropagationTest(Stack):
    def admin_get(self, route):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            c.request("GET", route)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def healthz_answers(self):
        try:
            return self.admin_get("/healthz")[0] == 200
        except OSError:
            return False

    def get_web(self):
        """One request through the sidecar; returns the upstream's name."""
        c = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=10)
        try:
            c.request("GET", "/", headers={"Host": "web"})
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            return r.getheader("x-upstream-name")
        finally:
            c.close()

    def propagation(self):
        return json.loads(self.admin_get("/stats")[1])["policy"]["propagation"]

    def test_sidecar_started_after_the_publish_is_ready_as_soon_as_its_admin_answers(self):
        # Failed before the fix: workers loaded the table on the first request
        # or on their 250 ms idle tick, so /ready said 503 "no policy loaded"
        # for its first ~250 ms although the table had long been published.
        port, _ = self.start_upstream()
        self.publish(POLICY.format(port=port))
        for workers in ("1", "2"):
            with self.subTest(workers=workers):
                proc = self.start_sidecar("--workers", workers)
                wait_for(self.healthz_answers, what="/healthz")
                self.assertEqual(self.admin_get("/ready"), (200, "ready\n"))
                # Loading the table at start is no propagation observation.
                self.assertEqual(self.propagation()["count"], 0)
                proc.terminate()
                proc.wait(10)

    def stats_policy(self):
        return json.loads(self.admin_get("/stats")[1])["policy"]

    def test_first_request_after_a_publish_records_its_propagation(self):
        ports = {}
        ports["A"], _ = self.start_upstream("A")
        ports["B"], _ = self.start_upstream("B")
        self.publish(POLICY.format(port=ports["A"]))
        self.start_sidecar("--workers", "1")
        wait_for(self.healthz_answers, what="/healthz")
        self.assertEqual(self.get_web(), "A")
        self.assertEqual(self.propagation()["count"], 0)

        # Publish, then one request at once, a few times. The idle tick
        # (every 250 ms) may load the table between the two: the request
        # still records it, once. Failed before the fix now and then (1
        # publish in 100 under bench/propagation.py): nothing was recorded
        # when the tick came first.
        current, p = "A", None
        for _ in range(5):
            want = "B" if current == "A" else "A"
            count = self.propagation()["count"]
            before_us = time.time_ns() // 1000
            self.publish(POLICY.format(port=ports[want]))
            after_us = time.time_ns() // 1000
            self.assertEqual(self.get_web(), want)  # the next request enforces the new generation
            current = want
            p = self.propagation()
            self.assertEqual(p["count"], count + 1)
            self.assertEqual(p["last_generation"], self.stats_policy()["generation"])
            self.assertEqual(self.get_web(), want)
            self.assertEqual(self.propagation()["count"], count + 1)  # once per generation
        self.assertIsNotNone(p)
        generation = self.stats_policy()["generation"]
        self.assertEqual(p["last_generation"], generation)
        # The agent's stamp is the moment it published, inside the publish call.
        self.assertGreaterEqual(p["last_published_unix_us"], before_us)
        self.assertLessEqual(p["last_published_unix_us"], after_us)
        self.assertGreaterEqual(p["last_us"], 0)
        self.assertEqual(sum(b["count"] for b in p["buckets"]), p["count"])

        metrics = self.admin_get("/metrics")[1]
        samples = dict(l.rsplit(" ", 1) for l in metrics.splitlines() if l and not l.startswith("#"))
        self.assertEqual(samples["mulligan_policy_propagation_seconds_count"], str(p["count"]))
        self.assertEqual(samples['mulligan_policy_propagation_seconds_bucket{le="+Inf"}'], str(p["count"]))
        self.assertAlmostEqual(float(samples["mulligan_policy_propagation_last_seconds"]), p["last_us"] / 1e6, places=5)

    def test_a_table_the_idle_tick_loaded_is_recorded_as_0_by_the_first_request(self):
        # Failed before the fix: the tick loaded generation 2, the request
        # after it found it loaded, and generation 2 never got a record.
        port, _ = self.start_upstream()
        self.publish(POLICY.format(port=port))
        self.start_sidecar("--workers", "1")
        wait_for(self.healthz_answers, what="/healthz")
        # No request: the tick loads generation 2; no request enforced it yet.
        self.publish(POLICY.format(port=port))
        wait_for(lambda: self.stats_policy()["generation"] == 2, what="the idle tick loading generation 2")
        self.assertEqual(self.propagation()["count"], 0)
        self.assertIsNone(self.propagation()["last_us"])
        # The first request enforces it: it waited for nothing.
        self.get_web()
        p = self.propagation()
        self.assertEqual(p["count"], 1)
        self.assertEqual(p["last_generation"], 2)
        self.assertEqual(p["last_us"], 0)
        self.get_web()
        self.assertEqual(self.propagation()["count"], 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
