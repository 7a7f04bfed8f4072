"""scripts/k8s/grafana-dashboard.json asks Prometheus only for what a live
sidecar's /metrics really exposes: every metric an expression names is a
family of the exposition (promtool-checked), and every label it filters or
groups by is a label of that metric (or one Prometheus' Kubernetes scrape
adds). A renamed metric or label breaks this test, not a user's dashboard."""
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import SRC, Stack, wait_for

DASHBOARD = os.path.join(SRC, "scripts", "k8s", "grafana-dashboard.json")
# Labels the scrape adds (kubernetes_sd relabelling, PodMonitor), not the sidecar.
SCRAPE_LABELS = {"namespace", "pod", "instance", "job", "container"}
POLICY = """version = 1
[[service]]
name = "web"
hosts = ["web"]
upstream = "127.0.0.1:{port}"
retry = {{ num_retries = 1, backoff_base = "1ms", backoff_max = "2ms" }}
"""
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless"}


def exposition_labels(text):
    """{metric name: set of label names} from Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out.setdefault(name, set())
            if kind == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    out.setdefault(name + suffix, set())
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if m:
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            out.setdefault(m.group(1), set()).update(labels)
    return out


def expressions(dashboard):
    """Every PromQL expression in the dashboard: panel targets (rows
    included) and templating queries."""
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))
    walk(dashboard["panels"])
    for v in dashboard["templating"]["list"]:
        if v.get("type") == "query":
            exprs.append(v["query"]["query"] if isinstance(v["query"], dict) else v["query"])
    return exprs


def problems(expr, exposed):
    """What in `expr` the exposition does not back; [] when all is real."""
    found = []
    metrics = set(re.findall(r"\bmulligan_[a-z0-9_]+\b", expr))
    if not metrics:
        found.append(f"names no mulligan metric: {expr}")
    for name in metrics:
        if name not in exposed:
            found.append(f"{name} is not exposed by /metrics")
    known = set().union(*(exposed.get(n, set()) for n in metrics)) | SCRAPE_LABELS
    used = set()
    for sel in re.findall(r"\{([^}]*)\}", expr):
        used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel))
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        used |= {l.strip() for l in group.split(",") if l.strip()}
    for m in re.finditer(r"label_values\(\s*(mulligan_[a-z0-9_]+)(?:\{[^}]*\})?\s*,\s*([a-zA-Z_]+)\s*\)", expr):
        used.add(m.group(2))
    for label in used - PROMQL_WORDS:
        if label not in known:
            found.append(f"label {label!r} is not on {sorted(metrics)}")
    if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        found.append(f"unbalanced brackets: {expr}")
    for legend in re.findall(r"\{\{\s*(\w+)\s*\}\}", expr):
        found.append(f"a legend template inside an expression: {legend}")
    return found


class GrafanaDashboardTest(Stack):
    def exposition(self):
        port, _ = self.start_upstream()
        self.publish(POLICY.format(port=port))
        self.start_sidecar()
        # A retried 503 so that every labelled family has samples.
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: web",
                            f"http://127.0.0.1:{self.outbound_port}/x?status=503"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout, "503")

        def fetch():
            t = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{self.admin_port}/metrics"],
                               capture_output=True, text=True, timeout=20).stdout
            return t if 'mulligan_retries_total{service="web"' in t else None
        return wait_for(fetch, what="retries in /metrics")

    def test_every_expression_names_only_exposed_metrics_and_labels(self):
        text = self.exposition()
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        exposed = exposition_labels(text)
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        exprs = expressions(dashboard)
        self.assertGreaterEqual(len(exprs), 15)
        found = [p for e in exprs for p in problems(e, exposed)]
        self.assertEqual(found, [])
        # What the dashboard is for: each of these is charted.
        joined = "\n".join(exprs)
        for needed in ("mulligan_retries_total", "mulligan_retries_refused_total", "mulligan_timeouts_total",
                       "mulligan_upstream_latency_seconds_bucket", "mulligan_policy_agent_refused"):
            self.assertIn(needed, joined)
        self.assertRegex(joined, r"sum by \(service, reason\) \(rate\(mulligan_retries_total")

        # The checker is not vacuous: the mistakes it exists for are caught.
        for bad in ['rate(mulligan_retries_totl{service=~"$service"}[5m])',
                    'sum by (code) (rate(mulligan_responses_total[5m]))',
                    'sum by (service) (rate(mulligan_timeouts_total{kind="request",route_name="x"}[5m]))',
                    'label_values(mulligan_requests_total, reason)',
                    'rate(up[5m])']:
            self.assertNotEqual(problems(bad, exposed), [], bad)

    def test_dashboard_is_importable_json_with_unique_panel_ids(self):
        with open(DASHBOARD) as f:
            d = json.load(f)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(d["uid"], "mulligan-sidecar")
        for p in d["panels"]:
            if p["type"] != "row":
                self.assertEqual(p["datasource"]["uid"], "${datasource}")
                self.assertTrue(p["targets"])


if __name__ == "__main__":
    unittest.main()
