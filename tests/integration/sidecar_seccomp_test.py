"""The sidecar under seccomp profiles that refuse what it would use.

Kubernetes' RuntimeDefault profile (containerd's and Docker's default one,
which the restricted Pod Security Standard requires) refuses io_uring and
allows Linux AIO; a stricter custom profile may refuse both. Either way the
sidecar must fall back, say once at start which path it runs and why, and
serve. Here it runs under mulligan-deny-syscalls (tests/tools: a seccomp
filter answering EPERM, as a runtime's profile does), and its log, /stats
and keep-alive traffic through it are checked."""
import http.client
import json
import unittest

from harness import Stack, binary

IO_URING = "io_uring_setup,io_uring_enter,io_uring_register"


class SeccompTest(Stack):
    def serve_under(self, denied):
        """The sidecar under a filter refusing `denied`, a service to the test
        upstream, 200 keep-alive GETs through it: returns (log, /stats)."""
        port, _ = self.start_upstream()
        self.publish(f"""version = 1
[[service]]
name = "svc"
hosts = ["svc"]
upstream = "127.0.0.1:{port}"
""")
        self.start_sidecar(prefix=(binary("mulligan-deny-syscalls"), denied))
        conn = http.client.HTTPConnection("127.0.0.1", self.outbound_port, timeout=30)
        for i in range(200):
            conn.request("GET", f"/seccomp?i={i}", headers={"Host": "svc"})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200, i)
        conn.close()
        with open(self.sidecar_err) as f:
            log = f.read()
        stats = json.loads(self.admin("/stats"))
        return log, stats

    def test_a_profile_refusing_io_uring_gets_epoll_with_sends_batched_through_aio(self):
        # RuntimeDefault's case.
        log, stats = self.serve_under(IO_URING)
        self.assertIn("io_uring unavailable (", log)
        self.assertIn("sockets receive with epoll, sends batched through Linux AIO", log)
        self.assertEqual(log.count("io_uring unavailable"), 1, log)  # said once
        self.assertEqual((stats["io_uring_workers"], stats["aio_workers"]), (0, 1))

    def test_a_profile_refusing_io_uring_and_aio_gets_one_send_each(self):
        log, stats = self.serve_under(IO_URING + ",io_setup,io_submit")
        self.assertIn("sends one send(2) each (Linux AIO unavailable: io_setup: Operation not permitted)", log)
        self.assertEqual((stats["io_uring_workers"], stats["aio_workers"]), (0, 0))


if __name__ == "__main__":
    unittest.main()
