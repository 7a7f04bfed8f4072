"""bench/report.py, scripts/bench's report, on synthetic raw measurements
(issue 18): the figures a reader judges the targets by — the CPUs' idle and
stolen shares, the runs repeated because the virtual machine's host took the
CPUs, and a miss the floor relay could not have met either — come out of the
raw lines as they should."""
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("MULLIGAN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
REPORT = os.path.join(SOURCE, "bench", "report.py")


def run_line(target, rps, cpu_us, busy_s, idle_s, steal_s, retries=None, round_=1, pin="unpinned"):
    """One RUN record of a 1 s keep-alive run at rps requests/s."""
    fields = (f"RUN case=h1-keepalive target={target} pin={pin} round={round_} requests={rps} "
              f"duration_us=1000000 status=0 connect=0 read=0 write=0 timeout=0 p50=1000.0 p99=3000.0 "
              f"p999=5000.0 cpu_s={cpu_us * rps / 1e6:.3f} rss_kib=6000 machine_busy_s={busy_s} "
              f"machine_idle_s={idle_s} machine_steal_s={steal_s}")
    return fields + (f" steal_retries={retries}" if retries is not None else "")


class BenchReportTest(unittest.TestCase):
    def report(self, lines, meta="load_before=0.1 load_after=0.1"):
        with tempfile.TemporaryDirectory() as d:
            raw = os.path.join(d, "raw.txt")
            with open(raw, "w") as f:
                f.write("\n".join(lines + [f"META cpus=2 {meta} max_steal_pct=10 steal_retries=2"]) + "\n")
            out = os.path.join(d, "results.md")
            subprocess.run([sys.executable, REPORT, raw, "--out", out], check=True, capture_output=True, text=True)
            with open(out) as f:
                return f.read()

    @staticmethod
    def row(text, start):
        return next(line for line in text.splitlines() if line.startswith(start))

    def test_the_cpu_table_gives_the_idle_and_stolen_shares_and_the_repeated_runs(self):
        text = self.report([
            run_line("haproxy", 25000, 35.0, 1.70, 0.20, 0.10, retries=0),
            run_line("mulligan", 30000, 25.0, 1.60, 0.30, 0.10, retries=1),
            run_line("mulligan", 31000, 25.0, 1.60, 0.30, 0.10, retries=2, round_=2),
            run_line("haproxy", 26000, 35.0, 1.70, 0.20, 0.10, retries=0, round_=2),
        ])
        self.assertIn("| HTTP/1.1 keep-alive | unpinned | HAProxy | 25,500 | 35.0 |", text)
        mulligan = self.row(text, "| HTTP/1.1 keep-alive | unpinned | Mulligan as shipped |")
        # 0.30 s idle and 0.10 s stolen of 2.0 s; 1 + 2 runs repeated over the two rounds.
        self.assertTrue(mulligan.endswith("| 15% | 5% | 3 |"), mulligan)
        self.assertIn("was run again (up to 2 times)", text)

    def test_raw_files_of_older_runs_without_repeats_still_read(self):
        text = self.report([run_line("haproxy", 25000, 35.0, 1.70, 0.20, 0.10),
                            run_line("mulligan", 30000, 25.0, 1.60, 0.30, 0.10)])
        self.assertTrue(self.row(text, "| HTTP/1.1 keep-alive | unpinned | Mulligan as shipped |")
                        .endswith("| 0 |"))

    def test_a_miss_the_floor_relay_could_not_meet_either_says_so(self):
        text = self.report([run_line("haproxy", 25000, 35.0, 1.9, 0.1, 0.0),
                            run_line("floor", 27000, 23.0, 1.7, 0.3, 0.0),
                            run_line("mulligan", 27500, 25.0, 1.7, 0.3, 0.0),
                            run_line("mulligan-epoll", 26000, 29.0, 1.8, 0.2, 0.0)])
        shipped = self.row(text, "| [unpinned] as shipped, HTTP/1.1 keep-alive ≥ 1.3× HAProxy requests/s |")
        self.assertIn("missed: needs 18.2% more requests/s (32,500); the floor relay reaches 1.08× here", shipped)
        epoll = self.row(text, "| [unpinned] `--io-uring off` (log off), HTTP/1.1 keep-alive ≥ 1.2× HAProxy")
        self.assertIn("the floor relay reaches 1.08× here", epoll)

    def test_a_miss_the_floor_relay_would_have_met_says_nothing_of_it(self):
        text = self.report([run_line("haproxy", 25000, 35.0, 1.9, 0.1, 0.0),
                            run_line("floor", 40000, 23.0, 1.7, 0.3, 0.0),
                            run_line("mulligan", 27500, 25.0, 1.7, 0.3, 0.0)])
        shipped = self.row(text, "| [unpinned] as shipped, HTTP/1.1 keep-alive ≥ 1.3× HAProxy requests/s |")
        self.assertIn("missed: needs 18.2% more requests/s", shipped)
        self.assertNotIn("floor relay", shipped)

    def test_busy_is_judged_by_the_cpus_before_the_run_not_the_lagging_load_average(self):
        lines = [run_line("haproxy", 25000, 35.0, 1.9, 0.1, 0.0), run_line("mulligan", 30000, 25.0, 1.7, 0.3, 0.0)]
        # An earlier benchmark's load average, but idle CPUs when this one began: quiet.
        quiet = self.report(lines, meta="load_before=1.10 load_after=1.78 busy_before_pct=1.2")
        self.assertNotIn("the machine was busy", quiet)
        busy = self.report(lines, meta="load_before=0.2 load_after=1.9 busy_before_pct=46.0")
        self.assertIn("the machine was busy (46.0% of the CPUs' time was in use in the 3 s before the first run", busy)
        # Raw files of older runs have only the load average: it still decides.
        older = self.report(lines, meta="load_before=1.10 load_after=1.78")
        self.assertIn("the machine was busy (load average 1.10 before, 1.78 after)", older)


if __name__ == "__main__":
    unittest.main()
