#!/usr/bin/env python3
"""scripts/bench's report: raw measurements -> one table, bench/results.md, latency chart.

usage: report.py RAW --out results.md [--png latency.png]

RAW has one measurement per line (written by scripts/bench):
  RUN  case= target= pin= round= requests= duration_us= status= connect= read= write= timeout=
       p50= p99= p999= (us) cpu_s= rss_kib= [machine_busy_s= machine_idle_s= machine_steal_s=]
  DIST case= target= pin= round= P:US ...   latency percentiles of that run
  NA   case= target= reason=                a case a target cannot run
  FAIL case= target= pin= round=            the load generator gave no result
  RSS  target= idle_kib= | hwm_kib=
  IDLE target= before_kib= after_kib= conns= per_conn_bytes= failed=
  GRPC case= target= calls= ok= failed= codes=   gRPC outcomes seen by a grpcio client
  PROP pin= inside_n= inside_p99_ms= ... n= p50_ms= p99_ms= ...
  HEDGE pin= mode=off|on target= delay= max_extra_load= requests= ... p99= (us) client_requests=
       upstream_requests= hedges= hedge_wins=   the hedge case, without and with hedging
  META key=value ...

pin= is "pinned" or "unpinned" (absent in older files: pinned). Every figure
is the median over rounds. Ratios are "x HAProxy / x direct" of the same case
and pinning mode. Internally a target measured in a mode is "TARGET@PIN".
"""
import argparse
import math
import shlex
import statistics
import subprocess
import sys
from collections import defaultdict

CASES = [
    ("h1-keepalive", "HTTP/1.1 keep-alive (wrk)"),
    ("h1-close", "HTTP/1.1 new connection per request (wrk, Connection: close)"),
    ("h1-503", "HTTP/1.1 keep-alive, upstream 10% 503, retries (wrk)"),
    ("h2", "HTTP/2, many streams (h2load)"),
    ("h2-nghttpd", "HTTP/2, many streams, nghttpd as the upstream (h2load)"),
    ("h2-503", "HTTP/2, many streams, upstream 10% 503, retries (h2load)"),
    ("grpc", "gRPC unary (h2load)"),
    ("grpc-unavailable", "gRPC unary, upstream 10% UNAVAILABLE (trailers-only grpc-status 14), retries (h2load)"),
]
# Faulty case -> its no-fault twin (issue 7: >= 0.85x the own no-fault throughput).
FAULT_BASE = {"h1-503": "h1-keepalive", "h2-503": "h2", "grpc-unavailable": "grpc"}
TARGETS = ["direct", "floor", "haproxy", "nginx", "mulligan", "mulligan-all", "mulligan-nolog", "mulligan-epoll"]
MULLIGANS = ["mulligan", "mulligan-all", "mulligan-nolog", "mulligan-epoll"]
TARGET_NAMES = {"direct": "direct", "floor": "floor", "haproxy": "HAProxy", "nginx": "nginx",
                "mulligan": "Mulligan as shipped", "mulligan-all": "Mulligan, every request logged",
                "mulligan-nolog": "Mulligan, log off",
                "mulligan-epoll": "Mulligan, log off, epoll"}
PINS = ["pinned", "unpinned"]


def base(target):
    """"mulligan@pinned" -> "mulligan"."""
    return target.split("@", 1)[0]


def tname(target):
    return TARGET_NAMES.get(base(target), base(target))


def parse(path):
    recs = []
    for line in open(path):
        toks = shlex.split(line)
        if not toks:
            continue
        kind, fields, points = toks[0], {}, []
        for t in toks[1:]:
            if "=" in t:
                k, _, v = t.partition("=")
                fields[k] = v
            elif ":" in t:
                p, _, v = t.partition(":")
                points.append((float(p), float(v)))
        recs.append((kind, fields, points))
    return recs


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def md_table(head, rows):
    """A markdown table: the header line, its separator, one line per row."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def fnum(v, digits=0):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def fratio(v, base):
    if v is None or not base:
        return "—"
    return f"{v / base:.2f}"


class Report:
    def __init__(self, recs):
        self.meta = {}
        self.runs = defaultdict(list)     # (case, target) -> [RUN fields]
        self.dists = defaultdict(list)    # (case, target) -> [[(p, us)]]
        self.na = {}
        self.fails = defaultdict(int)
        self.rss = defaultdict(dict)
        self.idle = {}
        self.prop = {}                    # pin -> PROP fields
        self.grpc = {}
        self.hedge = defaultdict(dict)     # pin -> mode ("off", "on") -> HEDGE fields
        for kind, f, pts in recs:
            key = (f.get("case"), f.get("target"))
            if kind in ("RUN", "DIST", "FAIL"):
                key = (f.get("case"), f"{f.get('target')}@{f.get('pin', 'pinned')}")
            if kind == "RUN":
                self.runs[key].append({k: (float(v) if k not in ("case", "target", "pin") else v) for k, v in f.items()})
            elif kind == "DIST":
                self.dists[key].append(pts)
            elif kind == "NA":
                self.na[key] = f.get("reason", "n/a")
            elif kind == "FAIL":
                self.fails[key] += 1
            elif kind == "RSS":
                self.rss[f["target"]].update({k: float(v) for k, v in f.items() if k != "target"})
            elif kind == "IDLE":
                self.idle[f["target"]] = {k: float(v) for k, v in f.items() if k != "target"}
            elif kind == "GRPC":
                self.grpc[key] = {k: float(v) for k, v in f.items() if k in ("calls", "ok", "failed")}
            elif kind == "PROP":
                self.prop[f.get("pin", "pinned")] = {k: float(v) for k, v in f.items()
                                                     if not k.startswith("error") and k != "pin"}
            elif kind == "HEDGE":
                self.hedge[f.get("pin", "pinned")][f.get("mode")] = f
            elif kind == "META":
                self.meta.update(f)

    def stats(self, case, target):
        runs = self.runs.get((case, target))
        if not runs:
            return None
        def per_run(r):
            req = r["requests"]
            errs = r["connect"] + r["read"] + r["write"] + r["timeout"]
            return {
                "rps": req / (r["duration_us"] / 1e6) if r["duration_us"] else 0,
                "p50": r["p50"] / 1000, "p99": r["p99"] / 1000, "p999": r["p999"] / 1000,
                "success": (req - r["status"]) / (req + errs) * 100 if req + errs else 0,
                "cpu_us": r["cpu_s"] * 1e6 / req if req else None,
                # The whole machine during the run (every process on every CPU):
                # its busy CPU per request, and the share of CPU time idle.
                "machine_us": r["machine_busy_s"] * 1e6 / req if req and "machine_busy_s" in r else None,
                "idle_pct": (100 * r["machine_idle_s"] / (r["machine_busy_s"] + r["machine_idle_s"] + r["machine_steal_s"])
                             if r.get("machine_busy_s", 0) + r.get("machine_idle_s", 0) > 0 else None),
                # The share the virtual machine's host took ("steal"): time neither busy nor idle here.
                "steal_pct": (100 * r["machine_steal_s"] / (r["machine_busy_s"] + r["machine_idle_s"] + r["machine_steal_s"])
                              if r.get("machine_busy_s", 0) + r.get("machine_idle_s", 0) > 0 else None),
                "steal_retries": r.get("steal_retries", 0),
                "rss_kib": r.get("rss_kib"),
                "requests": req, "errors": errs, "status": r["status"],
            }
        rs = [per_run(r) for r in runs]
        out = {k: med([r[k] for r in rs]) for k in ("rps", "p50", "p99", "p999", "success", "cpu_us", "machine_us",
                                                    "idle_pct", "steal_pct")}
        out["steal_retries"] = int(sum(r["steal_retries"] or 0 for r in rs))
        out["by_round"] = {int(r["round"]): x for r, x in zip(runs, rs)}
        out["rss_kib"] = max((r["rss_kib"] or 0) for r in rs)
        out["min_success"] = min(r["success"] for r in rs)
        out["rounds"] = len(rs)
        out["requests"] = sum(r["requests"] for r in rs)
        out["failed_requests"] = sum(r["status"] + r["errors"] for r in rs)
        if case.startswith("grpc"):
            # h2load sees HTTP statuses; a gRPC failure is HTTP 200 + grpc-status.
            g = self.grpc.get((case, base(target)))
            if g and g["calls"]:
                out["success"] = out["min_success"] = g["ok"] / g["calls"] * 100
                out["requests"], out["failed_requests"] = g["calls"], g["calls"] - g["ok"]
            else:
                out["success"] = out["min_success"] = None
        return out

    def paired(self, case, a, b, key):
        """The ratio a/b of KEY round by round (the same round: the same
        conditions, give or take), as (min, max), or None."""
        sa, sb = self.stats(case, a), self.stats(case, b)
        if not sa or not sb:
            return None
        rs = [sa["by_round"][k][key] / sb["by_round"][k][key]
              for k in sa["by_round"] if k in sb["by_round"] and sb["by_round"][k][key]]
        return (min(rs), max(rs)) if rs else None

    def paired_cases(self, case_a, case_b, target, key="rps"):
        """The ratio case_a/case_b of one target's KEY round by round, as (min, max)."""
        sa, sb = self.stats(case_a, target), self.stats(case_b, target)
        if not sa or not sb or len(sa["by_round"]) < 2:
            return None
        rs = [sa["by_round"][k][key] / sb["by_round"][k][key]
              for k in sa["by_round"] if k in sb["by_round"] and sb["by_round"][k][key]]
        return (min(rs), max(rs)) if rs else None

    def spread(self, case, target, key="rps"):
        """(max - min) / median of KEY over rounds, in %."""
        st = self.stats(case, target)
        if not st or len(st["by_round"]) < 2 or not st[key]:
            return None
        v = [x[key] for x in st["by_round"].values()]
        return (max(v) - min(v)) / st[key] * 100

    def dist(self, case, target):
        runs = self.dists.get((case, target))
        if not runs:
            return []
        by_p = defaultdict(list)
        for pts in runs:
            for p, us in pts:
                by_p[p].append(us)
        return sorted((p, statistics.median(v) / 1000) for p, v in by_p.items())

    # ------------------------------------------------------------ tables
    def pins(self):
        """The pinning modes measured, in PINS order."""
        seen = {base_t.split("@", 1)[1] for (_, base_t) in list(self.runs) + list(self.fails) if "@" in base_t}
        seen |= set(self.prop)
        return [p for p in PINS if p in seen]

    def na_of(self, case, target):
        return self.na.get((case, base(target)))

    def main_rows(self, pin):
        """[(case_title, [cells...])] for every case that has anything in PIN."""
        rows = []
        for case, title in CASES:
            ts = [f"{t}@{pin}" for t in TARGETS]
            if not any((case, t) in self.runs or self.na_of(case, t) or (case, t) in self.fails for t in ts):
                continue
            h, d = self.stats(case, f"haproxy@{pin}"), self.stats(case, f"direct@{pin}")
            for t in ts:
                s = self.stats(case, t)
                if s is None:
                    if self.na_of(case, t):
                        if base(t) in ("nginx", "floor") and not any(
                                (c, t) in self.runs for c, _ in CASES):
                            continue  # not a target of this run at all
                        rows.append((case, [tname(t), f"n/a ({self.na_of(case, t)})"] + [""] * 7))
                    elif (case, t) in self.fails:
                        rows.append((case, [tname(t), "failed (no result from the load generator)"] + [""] * 7))
                    continue

                def cell(key, digits):
                    v = s[key]
                    return f"{fnum(v, digits)} ({fratio(v, h and h[key])} / {fratio(v, d and d[key])})"
                succ = "—" if s["success"] is None else f"{s['success']:.2f}%" if s["success"] < 100 else "100%"
                cpu = "—" if base(t) == "direct" else fnum(s["cpu_us"], 1)
                sp = self.spread(case, t)
                rows.append((case, [tname(t), cell("rps", 0), cell("p50", 3), cell("p99", 3),
                                    cell("p999", 3), succ, cpu, fnum(s["rss_kib"] / 1024 if s["rss_kib"] else None, 1),
                                    "—" if sp is None else f"{sp:.0f}%"]))
        return rows

    HEAD = ["target", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "success", "CPU µs/req", "RSS MiB", "req/s spread"]

    # The issue 18 summary: Mulligan three ways against HAProxy, side by side.
    SUMMARY_CASES = [("h1-keepalive", "HTTP/1.1 keep-alive"), ("h2", "HTTP/2"),
                     ("h2-nghttpd", "HTTP/2, nghttpd upstream"), ("grpc", "gRPC unary")]
    # One column per MULLIGANS entry, in its order (the rows are built from it).
    SUMMARY_HEAD = ["case", "pinning", "HAProxy req/s", "as shipped", "every request logged", "log off",
                    "log off, `--io-uring off`", "p99 ms: HAProxy / shipped / all logged / log off / epoll"]

    def summary_rows(self):
        rows = []
        for case, title in self.SUMMARY_CASES:
            for pin in self.pins():
                h = self.stats(case, f"haproxy@{pin}")
                ms = [self.stats(case, f"{m}@{pin}") for m in MULLIGANS]
                if not h and not any(ms):
                    continue
                cells = [title, pin, fnum(h["rps"]) if h else "—"]
                for m, st in zip(MULLIGANS, ms):
                    if st and h:
                        p = self.paired(case, f"{m}@{pin}", f"haproxy@{pin}", "rps")
                        rng = f" ({p[0]:.2f}–{p[1]:.2f})" if p and st["rounds"] > 1 else ""
                        cells.append(f"{st['rps'] / h['rps']:.2f}×{rng}")
                    elif self.na_of(case, m):
                        cells.append("n/a")
                    else:
                        cells.append("—")
                cells.append(" / ".join(fnum(x["p99"], 2) if x else "—" for x in [h] + ms))
                rows.append(cells)
        return rows

    @staticmethod
    def at_haproxys_idle(h, x):
        """HAProxy's requests/s times (HAProxy's CPU + the rest) / (x's CPU +
        the same rest): what x's CPU per request would reach if everything
        else on the machine cost what it did in HAProxy's run and the CPUs
        idled as much. None without the machine's figures."""
        if not (h and x and h.get("machine_us") and h.get("cpu_us") and x.get("cpu_us")):
            return None
        rest = h["machine_us"] - h["cpu_us"]
        return (h["cpu_us"] + rest) / (x["cpu_us"] + rest) if x["cpu_us"] + rest > 0 else None

    CPU_HEAD = ["case", "pinning", "target", "requests/s", "proxy CPU µs/req", "rest of the machine µs/req",
                "CPUs idle", "CPUs taken by the host (steal)", "runs repeated for steal"]

    def cpu_rows(self):
        """Where the machine's CPUs went in each run of the summary cases."""
        rows = []
        for case, title in self.SUMMARY_CASES:
            for pin in self.pins():
                for t in ["direct", "floor", "haproxy"] + MULLIGANS:
                    x = self.stats(case, f"{t}@{pin}")
                    if not x or x.get("machine_us") is None:
                        continue
                    proxy = None if t == "direct" else x["cpu_us"]
                    rest = x["machine_us"] - (proxy or 0)
                    rows.append([title, pin, tname(t), fnum(x["rps"]), fnum(proxy, 1), fnum(rest, 1),
                                 f"{x['idle_pct']:.0f}%" if x["idle_pct"] is not None else "—",
                                 f"{x['steal_pct']:.0f}%" if x["steal_pct"] is not None else "—",
                                 str(x["steal_retries"])])
        return rows

    def summary_extra(self):
        """Lines under the summary table: idle RSS and propagation p99."""
        out = []
        rss = [(tname(t), self.rss.get(t, {}).get("idle_kib")) for t in ["haproxy"] + MULLIGANS]
        if any(v for _, v in rss):
            out.append("Idle RSS: " + ", ".join(f"{n} {v / 1024:.1f} MiB" for n, v in rss if v) + ".")
        for pin in self.pins():
            p = self.prop.get(pin)
            if p and p.get("inside_n"):
                out.append(f"Policy propagation ({pin}, under load, {p['inside_n']:.0f} publishes, the sidecar's own "
                           f"record): p50 {p['inside_p50_ms']:.3f} ms, p99 {p['inside_p99_ms']:.3f} ms, "
                           f"max {p['inside_max_ms']:.3f} ms.")
        return out

    def issue18_targets(self):
        """[(target text, measured text, verdict)] for issue 18's targets, per pinning mode."""
        out = []

        def verdict(ok, miss):
            return "met" if ok else f"missed: {miss}"

        for pin in self.pins():
            def st(case, t):
                return self.stats(case, f"{t}@{pin}")

            def ratio_line(case, t, name, want):
                m, h = st(case, t), st(case, "haproxy")
                if not (m and h):
                    if self.na_of(case, t):
                        out.append((f"[{pin}] {name} ≥ {want}× HAProxy requests/s", "n/a", self.na_of(case, t)))
                    return
                r = m["rps"] / h["rps"]
                miss = f"needs {want / r - 1:.1%} more requests/s ({h['rps'] * want:,.0f})"
                # A target above what the floor relay (no HTTP at all) reaches in the same run is out of
                # reach for any proxy making the floor's system calls: say so beside the miss.
                f = st(case, "floor")
                if f and f["rps"] / h["rps"] < want:
                    miss += f"; the floor relay reaches {f['rps'] / h['rps']:.2f}× here"
                out.append((f"[{pin}] {name} ≥ {want}× HAProxy requests/s", f"{r:.2f}×", verdict(r >= want, miss)))

            def p99_line(case, t, name):
                m, h = st(case, t), st(case, "haproxy")
                if m and h:
                    r = m["p99"] / h["p99"]
                    out.append((f"[{pin}] {name} p99 ≤ HAProxy's", f"{m['p99']:.3f} vs {h['p99']:.3f} ms ({r:.2f}×)",
                                verdict(r <= 1.0, f"{(r - 1) * 100:.0f}% above")))

            ratio_line("h1-keepalive", "mulligan", "as shipped, HTTP/1.1 keep-alive", 1.3)
            p99_line("h1-keepalive", "mulligan", "as shipped, HTTP/1.1 keep-alive")
            ratio_line("h2", "mulligan", "as shipped, HTTP/2", 1.3)
            p99_line("h2", "mulligan", "as shipped, HTTP/2")
            ratio_line("h2-nghttpd", "mulligan", "as shipped, HTTP/2 (nghttpd upstream)", 1.3)
            ratio_line("grpc", "mulligan", "as shipped, gRPC unary", 2.0)
            ratio_line("h1-keepalive", "mulligan-epoll", "`--io-uring off` (log off), HTTP/1.1 keep-alive", 1.2)
            for case, name in (("h1-keepalive", "HTTP/1.1 keep-alive"), ("h2", "HTTP/2")):
                h = st(case, "haproxy")
                for t in ("floor", "mulligan", "mulligan-epoll"):
                    x = st(case, t)
                    b = self.at_haproxys_idle(h, x)
                    if b is not None:
                        out.append((f"[{pin}] (indicator, not a target) {name}: {tname(t)}'s CPU per request in "
                                    "HAProxy's run", f"{b:.2f}× HAProxy",
                                    "requests/s if the rest of the machine and its idle share were as in HAProxy's "
                                    "run (see \"Where the CPUs went\")"))
            for case, name in (("h1-keepalive", "HTTP/1.1"), ("h2", "HTTP/2")):
                a, b = st(case, "mulligan"), st(case, "mulligan-nolog")
                if a and b:
                    r = a["rps"] / b["rps"]
                    out.append((f"[{pin}] access log's cost, {name}: as shipped within 5% of log off",
                                f"{r:.3f}× of log off", verdict(r >= 0.95, f"costs {1 - r:.1%}")))
                a = st(case, "mulligan-all")
                if a and b:
                    r = a["rps"] / b["rps"]
                    out.append((f"[{pin}] every request logged (--access-log-filter all), {name}",
                                f"{r:.3f}× of log off", "(for information)"))
            p = self.prop.get(pin)
            if p and p.get("inside_n"):
                v = p["inside_p99_ms"]
                out.append((f"[{pin}] policy propagation p99 ≤ 1 ms (under load)", f"{v:.3f} ms",
                            verdict(v <= 1 and not p.get("inside_missing"),
                                    f"{v - 1:.3f} ms over" if v > 1 else
                                    f"{p.get('inside_missing', 0):.0f} publishes without a record")))
        v = self.rss.get("mulligan", {}).get("idle_kib")
        if v:
            v /= 1024
            out.append(("idle RSS ≤ 8 MiB (as shipped)", f"{v:.1f} MiB", verdict(v <= 8, f"{(v - 8) / 8 * 100:.0f}% over")))
        return out

    def targets(self):
        """[(target text, measured text, verdict)] for issue 7's targets (the
        first pinning mode measured; Mulligan as shipped)."""
        out = []
        pins = self.pins()
        if not pins:
            return out
        pin = pins[0]
        M, H, F = f"mulligan@{pin}", f"haproxy@{pin}", f"floor@{pin}"

        def s(case, t):
            return self.stats(case, t)

        def verdict(ok, miss):
            return "met" if ok else f"missed: {miss}"

        def rng(case, other, key):
            p = self.paired(case, M, other, key)
            return f" (rounds {p[0]:.2f}–{p[1]:.2f}×)" if p and len(self.stats(case, M)["by_round"]) > 1 else ""

        m, h = s("h1-keepalive", M), s("h1-keepalive", H)
        if m and h:
            r = m["rps"] / h["rps"]
            out.append(("HTTP/1.1 keep-alive ≥ 1.2× HAProxy requests/s", f"{r:.3f}×" + rng("h1-keepalive", H, "rps"),
                        verdict(r >= 1.2, f"needs {1.2 / r - 1:.1%} more requests/s ({h['rps'] * 1.2:,.0f})")))
            r = m["p99"] / h["p99"]
            out.append(("HTTP/1.1 keep-alive p99 ≤ HAProxy's",
                        f"{m['p99']:.3f} ms vs {h['p99']:.3f} ms ({r:.2f}×)" + rng("h1-keepalive", H, "p99"),
                        verdict(r <= 1.0, f"{(r - 1) * 100:.0f}% above")))
            if m["cpu_us"] and h["cpu_us"]:
                r = m["cpu_us"] / h["cpu_us"]
                out.append(("(indicator, not a target) HTTP/1.1 keep-alive CPU per request vs HAProxy",
                            f"{m['cpu_us']:.1f} vs {h['cpu_us']:.1f} µs ({r:.2f}×)" + rng("h1-keepalive", H, "cpu_us"),
                            "less noisy than requests/s when the machine is shared"))
            f = s("h1-keepalive", F)
            if f:
                r = f["rps"] / h["rps"]
                out.append(("(indicator, not a target) HTTP/1.1 keep-alive: the floor (a byte relay, no HTTP) vs HAProxy",
                            f"{r:.3f}×, Mulligan at {m['rps'] / f['rps']:.2f}× the floor" + (
                                f"; CPU {f['cpu_us']:.1f} µs/req" if f["cpu_us"] else ""),
                            "the most a proxy making the same 4 system calls per request reaches here"))
        for case, name in (("h2", "HTTP/2"), ("grpc", "gRPC unary")):
            m, h = s(case, M), s(case, H)
            if m and h:
                r = m["rps"] / h["rps"]
                out.append((f"{name} ≥ 1.2× HAProxy requests/s", f"{r:.2f}×" + rng(case, H, "rps"),
                            verdict(r >= 1.2, f"needs {1.2 / r - 1:.1%} more requests/s")))
            elif self.na_of(case, M):
                out.append((f"{name} ≥ 1.2× HAProxy requests/s", "n/a", self.na_of(case, M)))
        for fault, base_case in FAULT_BASE.items():
            m, b = s(fault, M), s(base_case, M)
            if self.na_of(fault, M):
                out.append((f"{fault} with retries ≥ 0.85× own no-fault requests/s, 100% success", "n/a",
                            self.na_of(fault, M)))
            if not (m and b):
                continue
            r = m["rps"] / b["rps"]
            p = self.paired_cases(fault, base_case, M)
            out.append((f"{fault} with retries ≥ 0.85× own no-fault ({base_case}) requests/s",
                        f"{r:.2f}×" + (f" (rounds {p[0]:.2f}–{p[1]:.2f}×)" if p else ""),
                        verdict(r >= 0.85, f"needs {0.85 / r - 1:.1%} more requests/s")))
            if m["min_success"] is not None:
                out.append((f"{fault} with retries: 100% success", f"{m['min_success']:.3f}% (worst round)",
                            verdict(m["failed_requests"] == 0,
                                    f"{m['failed_requests']:.0f} of {m['requests']:.0f} requests failed")))
        if "mulligan" in self.idle:
            v = self.idle["mulligan"]["per_conn_bytes"] / 1024
            out.append(("≤ 10 KiB per idle keep-alive connection", f"{v:.1f} KiB",
                        verdict(v <= 10, f"{(v - 10) / 10 * 100:.0f}% over")))
        return [(f"[{pin}] {a}", b, c) for a, b, c in out]

    def resources(self):
        rows = []
        for t in ["haproxy", "nginx"] + MULLIGANS:
            r, i = self.rss.get(t, {}), self.idle.get(t)
            if not r and not i:
                continue
            loaded = max((self.stats(c, f"{t}@{p}") or {}).get("rss_kib") or 0 for c, _ in CASES for p in PINS)
            cpu = []
            for c, _ in CASES:
                st = self.stats(c, f"{t}@{(self.pins() or ['pinned'])[0]}")
                if st and st["cpu_us"] is not None:
                    cpu.append(f"{c} {st['cpu_us']:.1f}")
            rows.append([tname(t),
                         fnum(r.get("idle_kib", 0) / 1024, 1) if "idle_kib" in r else "—",
                         fnum(loaded / 1024, 1) if loaded else "—",
                         fnum(r.get("hwm_kib", 0) / 1024, 1) if "hwm_kib" in r else "—",
                         f"{i['per_conn_bytes'] / 1024:.1f} ({i['conns']:.0f} conns{', %d failed' % i['failed'] if i['failed'] else ''})" if i else "—",
                         ", ".join(cpu) or "—"])
        return rows

    RES_HEAD = ["process", "idle RSS MiB", "loaded RSS MiB", "peak (VmHWM) MiB", "KiB per idle keep-alive conn",
                "CPU µs per request, by case (first pinning mode)"]

    # ------------------------------------------------------------ output
    # Busier than this before the run: other work shared the cores.
    BUSY_BEFORE_PCT = 10.0

    def busy(self):
        """True when other work ran as the benchmark began: the CPUs' busy
        share sampled before the first run (raw files of older runs, without
        it: the 1-minute load average, which lags)."""
        try:
            if "busy_before_pct" in self.meta:
                return float(self.meta["busy_before_pct"]) > self.BUSY_BEFORE_PCT
            return float(self.meta.get("load_before", 0)) > 0.5
        except ValueError:
            return False

    def busy_why(self):
        m = self.meta
        if "busy_before_pct" in m:
            return (f"{m['busy_before_pct']}% of the CPUs' time was in use in the 3 s before the first run "
                    f"(load average {m.get('load_before')} before, {m.get('load_after')} after)")
        return f"load average {m.get('load_before')} before, {m.get('load_after')} after"

    def hedge_rows(self):
        """The hedge case: (pin, row cells) without and with hedging, and the
        verdict on issue 19's target (p99 at least halved for at most 6%
        extra upstream load)."""
        rows = []
        for pin in PINS:
            modes = self.hedge.get(pin)
            if not modes:
                continue
            for mode in ("off", "on"):
                f = modes.get(mode)
                if not f:
                    continue
                client = float(f.get("client_requests", 0))
                up = float(f.get("upstream_requests", 0))
                extra = (up / client - 1) if client else float("nan")
                rows.append((pin, [f"hedging {mode}" + (f" (delay {f.get('delay')}, max_extra_load "
                                                        f"{f.get('max_extra_load')})" if mode == "on" else ""),
                                   f"{float(f.get('requests', 0)):.0f}",
                                   f"{float(f.get('p50', 0)) / 1000:.1f}", f"{float(f.get('p99', 0)) / 1000:.1f}",
                                   f"{float(f.get('p999', 0)) / 1000:.1f}",
                                   f"{client:.0f}", f"{up:.0f}", f"{extra * 100:+.2f}%",
                                   f"{f.get('hedges', '0')} / {f.get('hedge_wins', '0')}"]))
            off, on = modes.get("off"), modes.get("on")
            if off and on and float(off.get("p99", 0)) > 0 and float(on.get("client_requests", 0)) > 0:
                cut = float(on["p99"]) / float(off["p99"])
                extra = float(on["upstream_requests"]) / float(on["client_requests"]) - 1
                ok = cut <= 0.5 and extra <= 0.06
                rows.append((pin, [f"target: p99 at most half, extra load at most 6% — "
                                   f"p99 x{cut:.3f}, extra load {extra * 100:.2f}%: " + ("met" if ok else "NOT met")]))
        return rows

    HEDGE_HEAD = ["run", "requests", "p50 ms", "p99 ms", "p99.9 ms", "client requests", "upstream requests",
                  "extra load", "hedges / won"]

    def text(self):
        lines = []
        summary = self.summary_rows()
        if summary:
            lines.append("Mulligan / HAProxy requests/s (round range), medians")
            widths = [26, 9, 14, 18, 18, 26, 40]
            lines.append("  ".join(h.replace("`", "").ljust(w) for h, w in zip(self.SUMMARY_HEAD, widths)).rstrip())
            for r in summary:
                lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            lines.extend(self.summary_extra())
            lines.append("")
        lines.append("figures: medians over rounds; (x HAProxy / x direct) after each figure")
        widths = [25, 22, 21, 21, 21, 8, 10, 7, 12]

        def fmt(cells):
            return "  ".join(c.ljust(w) if i < 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        for pin in self.pins():
            cur = None
            for case, cells in self.main_rows(pin):
                if case != cur:
                    lines.append("")
                    lines.append(f"{dict(CASES)[case]} — {pin}")
                    lines.append(fmt(self.HEAD))
                    cur = case
                if cells[1].startswith(("n/a", "failed")):
                    lines.append(cells[0].ljust(widths[0]) + "  " + cells[1])
                else:
                    lines.append(fmt(cells))
        res = self.resources()
        if res:
            lines.append("")
            lines.append("memory and CPU")
            for r in res:
                lines.append(f"  {r[0]:<24} idle {r[1]} MiB, loaded {r[2]} MiB, peak {r[3]} MiB, "
                             f"per idle conn {r[4]} KiB; CPU µs/req: {r[5]}")
        for pin, p in self.prop.items():
            lines.append("")
            if p.get("inside_n"):
                lines.append(f"policy propagation ({pin}), the sidecar's record (publish stamp -> first request "
                             f"enforcing it, n={p['inside_n']:.0f}): p50 {p['inside_p50_ms']:.3f} ms, "
                             f"p99 {p['inside_p99_ms']:.3f} ms, max {p['inside_max_ms']:.3f} ms; "
                             f"publishes without a record: {p.get('inside_missing', 0):.0f}")
            lines.append(f"policy propagation ({pin}), client's view (n={p.get('n', 0):.0f}, under load): p50 "
                         f"{p.get('p50_ms', 0):.2f} ms, p99 {p.get('p99_ms', 0):.2f} ms, max {p.get('max_ms', 0):.2f} ms; "
                         f"stale answers after publish returned: {p.get('stale', 0):.0f}; failed: {p.get('failed', 0):.0f}; "
                         f"same request without a publish: p50 {p.get('rtt_p50_ms', 0):.2f} ms, p99 {p.get('rtt_p99_ms', 0):.2f} ms")
        hedge = self.hedge_rows()
        if hedge:
            lines.append("")
            lines.append("hedging: upstream answers 5% of calls after 1 s (h2load --h1, keep-alive)")
            for pin, cells in hedge:
                lines.append(f"  {pin:<9} " + "  ".join(cells))
        for title, t in (("issue 18 targets", self.issue18_targets()), ("issue 7 targets", self.targets())):
            if t:
                lines.append("")
                lines.append(title)
                for a, b, c in t:
                    lines.append(f"  {a:<80} {b:<34} {c}")
        return "\n".join(lines)

    def markdown(self, png_name):
        m = self.meta
        L = []
        L.append("# Benchmark results")
        L.append("")
        L.append(f"Written by `{m.get('command', 'scripts/bench')}`; do not edit by hand. "
                 "Every figure is the median over rounds; after each figure, its ratio "
                 "to HAProxy and to direct in the same case and pinning mode: `(× HAProxy / × direct)`.")
        L.append("")
        warn = []
        if m.get("quick") == "1":
            warn.append("a `--quick` run (1 s per run, 1 round): it checks the harness, its figures are not results")
        if self.busy():
            warn.append(f"the machine was busy ({self.busy_why()}): "
                        "other processes shared these cores, so the figures are noisy; re-measure on a quiet machine")
        for w in warn:
            L.append(f"> **Note:** {w}.")
            L.append("")
        summary = self.summary_rows()
        if summary:
            L.append("## Mulligan against HAProxy, side by side")
            L.append("")
            L.append("One worker thread each, in one run, medians over rounds; Mulligan's requests/s over HAProxy's "
                     "in the same case and mode (in brackets: the lowest and highest of the rounds, each round "
                     "against HAProxy's in that round). *As shipped*: default flags, the JSON access log on stdout, "
                     "a FIFO read by another process (as a container runtime reads it); *every request logged*: "
                     "the same with `--access-log-filter all`; *log off*: "
                     "`--access-log off`; *epoll*: `--access-log off --io-uring off`, the path a pod runs under "
                     "Kubernetes' `RuntimeDefault` seccomp profile. *Pinned*: the load generator on CPU "
                     f"{m.get('cpu_load')}, the proxy on CPU {m.get('cpu_proxy')}, the upstream on CPU "
                     f"{m.get('cpu_upstream')}; "
                     "*unpinned*: the scheduler places every process.")
            L.append("")
            L.extend(md_table(self.SUMMARY_HEAD, summary))
            L.append("")
            for line in self.summary_extra():
                L.append(f"- {line}")
            L.append("")
        t18 = self.issue18_targets()
        if t18:
            L.append("## Issue 18 targets")
            L.append("")
            L.append("| target | measured | verdict |")
            L.append("|---|---|---|")
            for a, b, c in t18:
                L.append(f"| {a} | {b} | {c} |")
            L.append("")
        cpu = self.cpu_rows()
        if cpu:
            L.append("## Where the CPUs went")
            L.append("")
            L.append("Per request, from /proc over each run (medians over rounds): the proxy's own CPU time, the rest "
                     "of the machine's busy CPU time (the load generator, the upstream, the access log's reader and "
                     "anything else running), and the share of the CPUs' time left idle. Requests/s is about "
                     "(CPUs × (1 − idle)) / (proxy + rest): unpinned, the load generator and the upstream share the "
                     "proxy's two CPUs and cost as much per request as a proxy does, so a cheaper proxy gains less "
                     "than its own saving, and the scheduler's idle share moves requests/s as much as the proxy does. "
                     "The targets' indicator lines apply each proxy's CPU per request to HAProxy's run. Steal: "
                     f"the share the virtual machine's host took; a run that lost more than "
                     f"{self.meta.get('max_steal_pct', '10')}% was run again (up to "
                     f"{self.meta.get('steal_retries', '2')} times), its last try recorded.")
            L.append("")
            L.extend(md_table(self.CPU_HEAD, cpu))
            L.append("")
        L.append("## Machine and settings")
        L.append("")
        L.append(f"- {m.get('cpus')} CPUs ({m.get('cpu_model')}), {m.get('memory')}, {m.get('kernel')}")
        L.append(f"- HAProxy {m.get('haproxy')}, nginx {m.get('nginx')}, wrk {m.get('wrk')}, h2load {m.get('h2load')}; "
                 f"Mulligan {m.get('mulligan')} ({m.get('build')} build)")
        L.append(f"- {m.get('duration')} s per run, {m.get('rounds')} rounds per pinning mode "
                 f"({m.get('pins', 'pinned')}), the order of the targets rotating each round; "
                 f"wrk -t1 -c{m.get('conns')}; h2load -t1 -c{m.get('h2_conns')} -m{m.get('streams')}")
        L.append(f"- pinned mode: load generator on CPU {m.get('cpu_load')}, proxy (and the access log's reader) on "
                 f"{m.get('cpu_proxy')}, upstream on {m.get('cpu_upstream')}; unpinned: every process on every CPU; "
                 "every proxy with one worker thread; loopback")
        L.append("- floor: `mulligan-bench-floor` (bench/floor_relay.cc), a byte relay with one upstream connection per "
                 "client connection, no HTTP, no retries: one read and one write per message each way, the system calls "
                 "an epoll proxy makes; keep-alive case only")
        n = m.get("retries", "5")  # runs before the setting was recorded used 5
        L.append(f"- equivalent retry/timeout settings: up to {n} immediate retries on connect failure, reset, 502, 503, 504; "
                 "1 s connect timeout; 15 s request timeout; keep-alive to the upstream "
                 f"(HAProxy `retries {n}` + `retry-on`, nginx `proxy_next_upstream ... http_503` over the upstream listed "
                 f"{int(n) + 1} times, Mulligan `num_retries = {n}` with `backoff_base = backoff_max = \"1us\"`)")
        L.append("- upstreams: `mulligan-test-upstream` (HTTP/1.1, `?status=503:10`), `mulligan-h2-upstream` "
                 "(`tests/upstreams/h2_upstream.cc`; HTTP/2 `ok\\n`, `?status=503:10`; gRPC: echoes the framed message with a "
                 "`grpc-status: 0` trailer, `?grpc_status=14:10` answers 10% trailers-only UNAVAILABLE), and for the "
                 "`h2-nghttpd` case nghttpd (nghttp2-server, one worker, no TLS) serving `ok\\n` from a file")
        L.append("")
        L.append("## Throughput and latency")
        for pin in self.pins():
            L.append("")
            L.append(f"### {pin.capitalize()}")
            cur = None
            for case, cells in self.main_rows(pin):
                if case != cur:
                    L.append("")
                    L.append(f"**{dict(CASES)[case]}**")
                    L.append("")
                    L.append("| " + " | ".join(self.HEAD) + " |")
                    L.append("|" + "---|" * len(self.HEAD))
                    cur = case
                L.append("| " + " | ".join(cells) + " |")
        L.append("")
        L.append("CPU µs/req: the process's user + system time over the run divided by the requests it served "
                 "(all threads; clock-tick resolution; for Mulligan as shipped, without the access log's reader). "
                 "RSS: VmRSS sampled in the middle of the run. "
                 "Spread: (max − min) / median of requests/s over the rounds, a measure of the noise. "
                 "Success: responses below 400 over all responses and socket errors; for gRPC, calls with grpc-status 0 "
                 "over all calls, from a separate run of grpcio calls (bench/grpc_status.py) after the load. Latency is the load "
                 "generator's: request sent to response received (wrk excludes connect time, also in the "
                 "connection-per-request case).")
        L.append("")
        if png_name:
            L.append(f"![latency distribution]({png_name})")
        else:
            L.append("(No latency chart: gnuplot was not installed; `apt-get install gnuplot-nox` and run again.)")
        L.append("")
        res = self.resources()
        if res:
            L.append("## Memory and CPU")
            L.append("")
            L.extend(md_table(self.RES_HEAD, res))
            L.append("")
            L.append("Idle RSS: right after start, policy loaded, no traffic. Per idle keep-alive connection: "
                     "(VmRSS with N more idle keep-alive connections, each having served one request − VmRSS before) / N, "
                     "measured before any load. Loaded: the largest mid-run VmRSS. nginx preallocates its "
                     "`worker_connections` (4096 here), which sets most of its idle RSS.")
            L.append("")
        if self.prop:
            L.append("## Policy propagation")
            L.append("")
            L.append("Publishes, alternating a service's upstream, while wrk loads Mulligan as shipped. *The sidecar's record*: from the agent's publish stamp "
                     "(taken in the segment just before the new generation is announced) to the worker loading the "
                     "table for the first request after it — that request enforces it (`/stats` "
                     "`policy.propagation.last_us`, `/metrics` `mulligan_policy_propagation_seconds`). *The client's "
                     "view*: from `mulligan-agent publish` returning (its process exit included) to the answer of the "
                     "first request answered by the new upstream, that request's own round trip included.")
            L.append("")
            L.append("| pinning | sidecar's record p50 / p99 / max ms | publishes without a record | client's view p50 / p99 / max ms | same request, no publish (p50 / p99 ms) | stale answers after publish returned |")
            L.append("|---|---|---|---|---|---|")
            for pin in PINS:
                p = self.prop.get(pin)
                if not p:
                    continue
                inside = (f"{p['inside_p50_ms']:.3f} / {p['inside_p99_ms']:.3f} / {p['inside_max_ms']:.3f}"
                          if p.get("inside_n") else "—")
                L.append(f"| {pin} | {inside} | {p.get('inside_missing', 0):.0f} | "
                         f"{p.get('p50_ms', 0):.2f} / {p.get('p99_ms', 0):.2f} / {p.get('max_ms', 0):.2f} | "
                         f"{p.get('rtt_p50_ms', 0):.2f} / {p.get('rtt_p99_ms', 0):.2f} | {p.get('stale', 0):.0f} |")
            L.append("")
        hedge = self.hedge_rows()
        if hedge:
            L.append("## Hedging")
            L.append("")
            L.append("The upstream answers 5% of calls after 1 s (`?delay=1s:5`), the rest at once; h2load --h1 (one request in flight per "
                     "connection) through one Mulligan to two services on that upstream, one without hedging and one with `hedge = { delay = "
                     "\"50ms\", max_attempts = 2, max_extra_load = 0.06 }`. *Extra load*: upstream requests (its "
                     "`/__stats`) over client requests (the sidecar's `mulligan_requests_total`), minus 1. Issue 19's "
                     "target: p99 cut by at least half for at most 6% extra upstream load.")
            L.append("")
            L.append("| pinning | " + " | ".join(self.HEDGE_HEAD) + " |")
            L.append("|" + "---|" * (len(self.HEDGE_HEAD) + 1))
            for pin, cells in hedge:
                L.append(f"| {pin} | " + " | ".join(cells) + " |")
            L.append("")
        t = self.targets()
        if t:
            L.append("## Issue 7 targets (Mulligan as shipped)")
            L.append("")
            L.append("| target | measured | verdict |")
            L.append("|---|---|---|")
            for a, b, c in t:
                L.append(f"| {a} | {b} | {c} |")
            L.append("")
        return "\n".join(L)

    def chart(self, png):
        """Latency distributions, one panel per case, the first pinning mode."""
        pins = self.pins()
        if not pins:
            return False
        pin = pins[0]
        panels = [(c, title) for c, title in CASES if any(self.dists.get((c, f"{t}@{pin}")) for t in TARGETS)]
        if not panels:
            return False
        cols = 2 if len(panels) > 1 else 1
        rows = math.ceil(len(panels) / cols)
        g = [f"set terminal pngcairo size {640 * cols},{380 * rows} font 'sans,9'",
             f"set output '{png}'",
             f"set multiplot layout {rows},{cols} title 'Latency distribution, {pin} (medians over rounds)'",
             "set logscale y", "set ylabel 'latency ms'", "set xlabel 'percentile'",
             "set xtics ('0' 0, '50' 0.301, '90' 1, '99' 2, '99.9' 3, '99.99' 4)",
             "set xrange [0:4.1]", "set grid", "set key bottom right"]
        colors = {"direct": "#777777", "floor": "#bbbbbb", "haproxy": "#1f77b4", "nginx": "#2ca02c",
                  "mulligan": "#d62728", "mulligan-all": "#8c564b", "mulligan-nolog": "#ff7f0e", "mulligan-epoll": "#9467bd"}
        for c, title in panels:
            plots = []
            for t in TARGETS:
                d = [(p, ms) for p, ms in self.dist(c, f"{t}@{pin}") if p < 100 and ms > 0]
                if not d:
                    continue
                name = f"$d_{c.replace('-', '_')}_{t.replace('-', '_')}"
                g.append(f"{name} << EOD")
                g.extend(f"{-math.log10(1 - p / 100):.5f} {ms:.4f}" for p, ms in d)
                g.append("EOD")
                plots.append(f"{name} using 1:2 with linespoints lw 2 pt 7 ps 0.5 lc rgb '{colors[t]}' title '{TARGET_NAMES[t]}'")
            g.append(f"set title '{title}'")
            g.append("plot " + ", ".join(plots))
        g.append("unset multiplot")
        try:
            subprocess.run(["gnuplot"], input="\n".join(g) + "\n", text=True, check=True)
            return True
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"report: gnuplot failed: {e}", file=sys.stderr)
            return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--out", required=True)
    ap.add_argument("--png")
    a = ap.parse_args()
    r = Report(parse(a.raw))
    print(r.text())
    import os
    png_name = ""
    if a.png and r.chart(a.png):
        png_name = os.path.basename(a.png)
    with open(a.out, "w") as f:
        f.write(r.markdown(png_name) + "\n")
    print(f"\nwritten: {a.out}" + (f", {a.png}" if a.png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
