"""docs/ against the code it describes (issue 20): the metric families a
live sidecar exposes against docs/metrics.md, a real access-log line against
docs/access-log.md, both binaries' --help against docs/cli.md, every relative
link of README.md and docs/ against the files of the repository, and the
policy schema (docs/policy.schema.json, generated: see scripts/gen-docs)
against real validators — taplo (npm @taplo/cli, what VS Code's Even Better
TOML runs) and python3-jsonschema on the TOML read by tomllib: every valid
policy of examples/ and of the tests validates, invalid ones are refused by
the schema AND by `mulligan-agent check`, and the rules docs/policy.md says
only `check` enforces are indeed beyond the schema."""
import collections
import glob
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
import unittest
import urllib.request

import harness
from harness import Stack, binary

SOURCE = os.environ.get("MULLIGAN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DOCS = os.path.join(SOURCE, "docs")
SCHEMA = os.path.join(DOCS, "policy.schema.json")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def md_tables(text):
    """Every row of every Markdown table as a list of cells (header rows
    included, separator rows dropped). A "\\|" stays inside its cell."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.fullmatch(r"\|[-| :]+\|", line):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(cells)
    return rows


def code_spans(cell):
    return re.findall(r"`([^`]+)`", cell)


# ------------------------------------------------------------ /metrics --

def documented_metrics():
    """{family: (type, {label names})} from the tables of docs/metrics.md whose
    header is | metric | type | labels | meaning |."""
    out = {}
    for row in md_tables(read(os.path.join(DOCS, "metrics.md"))):
        if len(row) != 4 or not row[0].startswith("`mulligan_"):
            continue
        name = code_spans(row[0])[0]
        out[name] = (row[1], set(code_spans(row[2])))
    return out


def exposed_metrics(text):
    """{family: (type, {label names over its samples})} from an exposition."""
    types, labels = {}, collections.defaultdict(set)
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        name = m.group(1)
        family = next((f for f in (name, re.sub(r"_(bucket|sum|count)$", "", name)) if f in types), name)
        labels[family].update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
    return {n: (t, labels[n]) for n, t in types.items()}


POLICY = """version = 1
[[service]]
name = "web"
hosts = ["web"]
upstream = "127.0.0.1:{port}"
retry = {{ num_retries = 1, backoff_base = "1ms", backoff_max = "2ms" }}

  [[service.route]]
  path_prefix = "/api/"
"""


class LiveSidecarDocsTest(Stack):
    def setUp(self):
        super().setUp()
        port, _ = self.start_upstream()
        self.publish(POLICY.format(port=port))
        self.start_sidecar()
        # A retried request (503 once, then 200) and a plain one: every
        # per-route family then has samples, the retry reasons included.
        for path in ("/api/x?fail_first=1&id=docs", "/other"):
            req = urllib.request.Request(f"http://127.0.0.1:{self.outbound_port}{path}", headers={"Host": "web"})
            try:
                urllib.request.urlopen(req, timeout=30).read()
            except urllib.error.HTTPError as e:
                e.read()
        harness.wait_for(lambda: len(self.access_records()) >= 2, what="two access-log lines")

    def test_metrics_page_lists_exactly_the_families_types_and_labels_exposed(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=10) as r:
            exposed = exposed_metrics(r.read().decode())
        documented = documented_metrics()
        self.assertGreater(len(exposed), 20)
        self.assertEqual(sorted(set(exposed) - set(documented)), [],
                         "exposed by /metrics but missing from docs/metrics.md")
        self.assertEqual(sorted(set(documented) - set(exposed)), [],
                         "in docs/metrics.md but not exposed by /metrics")
        for name, (kind, labels) in exposed.items():
            doc_kind, doc_labels = documented[name]
            self.assertEqual(kind, doc_kind, f"{name}: type")
            self.assertEqual(sorted(labels - doc_labels), [], f"{name}: labels exposed but not documented")
            if labels:  # a family with samples has every documented label
                self.assertEqual(sorted(doc_labels - labels), [], f"{name}: labels documented but not exposed")

    def test_access_log_page_lists_exactly_the_fields_of_a_real_line(self):
        rows = [r for r in md_tables(read(os.path.join(DOCS, "access-log.md"))) if len(r) == 3]
        documented = [code_spans(r[0])[0] for r in rows if code_spans(r[0])]
        for rec in self.access_records():
            keys = list(rec)
            self.assertEqual([k for k in keys if k not in documented], [], "fields missing from docs/access-log.md")
            # Every documented field is on every line, but grpc_status (gRPC calls only).
            self.assertEqual([k for k in documented if k not in keys], ["grpc_status"])
            self.assertEqual(keys, [k for k in documented if k in keys], "docs/access-log.md lists them in order")
        self.assertEqual(self.access_records()[0]["retry_reasons"], "503")


# ------------------------------------------------------------- --help --

class HelpTest(unittest.TestCase):
    def test_every_flag_and_variable_of_help_is_in_the_command_line_reference(self):
        cli = read(os.path.join(DOCS, "cli.md"))
        rows = md_tables(cli)
        documented_flags = {m for r in rows for c in r[:1] for s in code_spans(c) for m in re.findall(r"--[a-z-]+", s)}
        for name in ("mulligan-agent", "mulligan-sidecar"):
            r = subprocess.run([binary(name), "--help"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", r.stdout))
            variables = set(re.findall(r"MULLIGAN_[A-Z_]+", r.stdout))
            self.assertGreater(len(flags), 4, r.stdout)
            self.assertEqual(sorted(flags - documented_flags), [], f"{name} --help flags missing from docs/cli.md")
            self.assertEqual(sorted(v for v in variables if f"`{v}`" not in cli), [],
                             f"{name} --help variables missing from docs/cli.md")
        agent_help = subprocess.run([binary("mulligan-agent"), "--help"], capture_output=True, text=True).stdout
        for command in re.findall(r"^  mulligan-agent (\w+)", agent_help, re.M):
            self.assertIn(f"| `{command}` |", cli, f"mulligan-agent {command} is not described in docs/cli.md")


# -------------------------------------------------------------- links --

def github_slug(heading):
    s = re.sub(r"<[^>]+>", "", heading).strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    text = read(path)
    found = set(re.findall(r'<a id="([^"]+)"', text))
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(github_slug(line.lstrip("#")))
    return found


class LinksTest(unittest.TestCase):
    def test_every_relative_link_of_readme_and_docs_resolves_in_a_clone(self):
        pages = [os.path.join(SOURCE, "README.md")] + sorted(glob.glob(os.path.join(DOCS, "*.md")))
        self.assertGreater(len(pages), 6)
        checked = 0
        for page in pages:
            text = re.sub(r"```.*?```", "", read(page), flags=re.S)
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", target):
                    continue  # a web page, not a file of the repository
                where = f"{os.path.relpath(page, SOURCE)}: {target}"
                path, _, anchor = target.partition("#")
                resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                root = os.path.normpath(SOURCE)
                self.assertTrue(resolved == root or resolved.startswith(root + os.sep),
                                f"{where} leaves the repository")
                self.assertTrue(os.path.exists(resolved), f"{where} does not exist")
                if anchor and resolved.endswith(".md"):
                    self.assertIn(anchor, anchors(resolved), f"{where}: no such heading")
                checked += 1
        self.assertGreater(checked, 30)

    def test_readme_links_the_docs_and_not_the_contract_outside_the_repository(self):
        readme = read(os.path.join(SOURCE, "README.md"))
        self.assertNotIn("../shared", readme)
        for page in ("docs/README.md", "docs/policy.md", "docs/admin-api.md", "docs/metrics.md",
                     "docs/access-log.md", "docs/cli.md", "docs/operations.md"):
            self.assertIn(f"]({page}", readme)


# ------------------------------------------------------------- schema --

def taplo():
    prefix = os.environ.get("MULLIGAN_NPM_PREFIX") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mulligan", "npm")
    for candidate in (os.path.join(prefix, "node_modules", ".bin", "taplo"),):
        if os.access(candidate, os.X_OK):
            return candidate
    from shutil import which
    return which("taplo")


def harvested_test_policies():
    """The policies the integration tests publish: their modules' POLICY
    strings and policy() helpers, filled with a port. {name: text}."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = {}
    fill = collections.defaultdict(lambda: "9")
    for path in sorted(glob.glob(os.path.join(here, "*_test.py"))):
        module_name = os.path.basename(path)[:-3]
        if module_name == "docs_test":
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception:  # a suite whose imports (grpc, h2, ...) are missing here
            continue
        for attr, value in vars(module).items():
            if "policy" not in attr.lower():
                continue
            text = None
            if isinstance(value, str) and "version = 1" in value:
                text = value.format_map(fill) if re.search(r"\{[a-z_]+\}", value) else value
            elif inspect.isfunction(value) and value.__module__ == module_name:
                params = [p for p in inspect.signature(value).parameters.values() if p.default is p.empty]
                try:
                    text = value(*[9] * len(params))
                except Exception:
                    continue
            if isinstance(text, str) and "[" in text:
                out[f"{module_name}.{attr}"] = text
    return out


# Each refused by the schema and by `mulligan-agent check`: the schema can
# say what is wrong with these, and must.
INVALID = {
    "unknown key": '[defaults]\nconect_timeout = "1s"\n',
    "unknown top-level key": 'verison = 1\n',
    "version 2": "version = 2\n",
    "duration without unit": "[defaults]\nrequest_timeout = 5\n",
    "duration in words": '[defaults]\nrequest_timeout = "ten seconds"\n',
    "negative duration": '[defaults]\nread_timeout = "-1s"\n',
    "num_retries above 25": "[defaults.retry]\nnum_retries = 26\n",
    "num_retries a string": '[defaults.retry]\nnum_retries = "3"\n',
    "unknown retry_on name": '[defaults.retry]\nretry_on = ["5xx", "bogus"]\n',
    "retry_on status 600": '[defaults.retry]\nretry_on = ["600"]\n',
    "retry_on status 99": "[defaults.retry]\nretry_on = [99]\n",
    "non-retriable gRPC code": '[defaults.retry]\nretry_on = ["not-found"]\n',
    "retry_on not an array": '[defaults.retry]\nretry_on = "5xx"\n',
    "retry_after not boolean": '[defaults.retry]\nretry_after = "yes"\n',
    "idempotency header not a token": '[defaults.retry]\nidempotency_header = "idempotency key"\n',
    "idempotency header too long": '[defaults.retry]\nidempotency_header = "' + "x" * 64 + '"\n',
    "size in words": '[defaults.retry]\nmax_buffered_body = "lots"\n',
    "size integer too large": "[defaults.retry]\nmax_buffered_body = 67108865\n",
    "retry_ratio above 10": "[defaults.budget]\nretry_ratio = 11\n",
    "min_retries_per_second negative": "[defaults.budget]\nmin_retries_per_second = -1\n",
    "deadline field in retry": '[defaults.retry]\npropagate = true\n',
    "service without name": '[[service]]\nhosts = ["a"]\n',
    "service without hosts": '[[service]]\nname = "a"\n',
    "service with empty hosts": '[[service]]\nname = "a"\nhosts = []\n',
    "service name upper case": '[[service]]\nname = "Orders"\nhosts = ["a"]\n',
    "port 0": '[[service]]\nname = "a"\nhosts = ["a"]\nport = 0\n',
    "upstream without port": '[[service]]\nname = "a"\nhosts = ["a"]\nupstream = "orders"\n',
    "budget on a route": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\npath_prefix = "/"\n'
                         'budget = { retry_ratio = 0.1 }\n',
    "idle_timeout on a route": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\npath_prefix = "/"\n'
                               'idle_timeout = "1s"\n',
    "route without match": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\nmethods = ["GET"]\n',
    "route with two matches": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\npath_prefix = "/"\n'
                              'path_exact = "/x"\n',
    "path without slash": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\npath_prefix = "api"\n',
    "path_exact with query": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\npath_exact = "/a?b"\n',
    "bad grpc name": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\ngrpc = "pkg..Svc"\n',
    "lower-case method": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\npath_prefix = "/"\n'
                         'methods = ["get"]\n',
    "empty methods": '[[service]]\nname = "a"\nhosts = ["a"]\n[[service.route]]\npath_prefix = "/"\nmethods = []\n',
    "service as a table": '[service]\nname = "a"\nhosts = ["a"]\n',
    "fresh_connection not boolean": "[defaults.retry]\nfresh_connection = 1\n",
    "hedge quantile that does not exist": '[defaults.hedge]\ndelay = "p98"\n',
    "hedge delay in words": '[defaults.hedge]\ndelay = "soon"\n',
    "hedge max_attempts above 5": "[defaults.hedge]\nmax_attempts = 6\n",
    "hedge max_attempts 1": "[defaults.hedge]\nmax_attempts = 1\n",
    "hedge max_extra_load above 1": "[defaults.hedge]\nmax_extra_load = 1.5\n",
    "outlier max_ejected a string": '[defaults.outlier]\nmax_ejected = "half"\n',
    "outlier consecutive_failures absurd": "[defaults.outlier]\nconsecutive_failures = 100000\n",
    "hedge field in outlier": '[defaults.outlier]\ndelay = "p99"\n',
}


class SchemaTest(harness.Case):
    @classmethod
    def setUpClass(cls):
        try:
            import jsonschema
        except ImportError:
            raise unittest.SkipTest("python3-jsonschema is not installed (Debian package python3-jsonschema)")
        cls.schema = json.loads(read(SCHEMA))
        jsonschema.Draft7Validator.check_schema(cls.schema)
        cls.validator = jsonschema.Draft7Validator(cls.schema)

    def schema_errors(self, text):
        return [e.message for e in self.validator.iter_errors(tomllib.loads(text))]

    def check(self, name, text):
        path = self.write(re.sub(r"\W+", "_", name) + ".toml", text)
        return self.run_cmd(binary("mulligan-agent"), "check", "--policy", path)

    def taplo_refused(self, policies):
        """Lints every policy with taplo in one run (node starts slowly);
        returns the names of those it refused."""
        paths = {}
        for name, text in policies.items():
            d = self.path("taplo-" + str(len(paths)))
            os.makedirs(d)
            paths[os.path.join(d, "policy.toml")] = name
            with open(os.path.join(d, "policy.toml"), "w") as f:
                f.write(text)
        r = subprocess.run([taplo(), "lint", "--schema", "file://" + os.path.abspath(SCHEMA), *paths],
                           capture_output=True, text=True, timeout=120)
        refused = {paths[p] for p in re.findall(r'invalid file .*?path="([^"]+)"', r.stdout + r.stderr)}
        self.assertEqual(r.returncode != 0, bool(refused), r.stdout + r.stderr)
        return refused

    def valid_policies(self):
        out = {}
        for path in sorted(glob.glob(os.path.join(SOURCE, "examples", "*.toml"))):
            out[os.path.relpath(path, SOURCE)] = read(path)
        configmap = read(os.path.join(SOURCE, "scripts", "k8s", "policy-configmap.yaml"))
        block = re.search(r"policy\.toml: \|\n((?:    .*\n|\n)+)", configmap)
        self.assertIsNotNone(block, "the ConfigMap's policy.toml")
        out["scripts/k8s/policy-configmap.yaml"] = re.sub(r"^    ", "", block.group(1), flags=re.M)
        for path in sorted(glob.glob(os.path.join(SOURCE, "tests", "fuzz", "corpus", "policy_compiler", "*"))):
            out[os.path.relpath(path, SOURCE)] = read(path)
        out.update(harvested_test_policies())
        # Valid means: the agent compiles it (some fuzz seeds are errors on purpose).
        valid = {n: t for n, t in out.items() if self.check(n, t).returncode == 0}
        self.assertIn("examples/policy.toml", valid)
        self.assertGreaterEqual(len([n for n in valid if n.count(".") == 1 and "_test." in n]), 8,
                                f"harvested test policies: {sorted(valid)}")
        return valid

    def test_examples_and_test_policies_validate_with_jsonschema(self):
        policies = self.valid_policies()
        for name, text in policies.items():
            self.assertEqual(self.schema_errors(text), [], name)

    def test_examples_and_test_policies_validate_with_taplo(self):
        if not taplo():
            self.skipTest("taplo (npm @taplo/cli) is missing: scripts/lib/deps.sh mulligan_install_npm_tools")
        self.assertEqual(sorted(self.taplo_refused(self.valid_policies())), [])

    def test_example_names_the_schema_for_editors_and_taplo_follows_it(self):
        example = read(os.path.join(SOURCE, "examples", "policy.toml"))
        self.assertTrue(example.startswith("#:schema ../docs/policy.schema.json\n"))
        if not taplo():
            self.skipTest("taplo (npm @taplo/cli) is missing: scripts/lib/deps.sh mulligan_install_npm_tools")
        # Without --schema, taplo finds the schema through the directive: an
        # unknown key in a copy beside the example is refused.
        # The same layout in a temporary directory: examples/ beside docs/.
        os.makedirs(self.path("examples"))
        os.makedirs(self.path("docs"))
        with open(self.path("docs/policy.schema.json"), "w") as f:
            f.write(read(SCHEMA))
        broken = self.write("examples/policy.toml", example + '\n[[service]]\nname = "b"\nhosts = ["b"]\nbogus_key = 1\n')
        r = subprocess.run([taplo(), "lint", broken], capture_output=True, text=True, timeout=60, cwd="/")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("bogus_key", r.stdout + r.stderr)

    def test_invalid_policies_are_refused_by_schema_and_check(self):
        for name, text in INVALID.items():
            with self.subTest(name):
                self.assertNotEqual(self.check(name, text).returncode, 0, f"check accepted: {name}")
                self.assertNotEqual(self.schema_errors(text), [], f"jsonschema accepted: {name}")
        if not taplo():
            self.skipTest("taplo (npm @taplo/cli) is missing: only jsonschema checked the invalid policies")
        self.assertEqual(sorted(set(INVALID) - self.taplo_refused(INVALID)), [], "taplo accepted these")

    def test_rules_the_docs_call_check_only_pass_the_schema_and_fail_check(self):
        section = read(os.path.join(DOCS, "policy.md")).split("## What only `check` finds", 1)[1].split("\n## ")[0]
        examples = [re.sub(r"^  ", "", b, flags=re.M) for b in re.findall(r"```toml\n(.*?)  ```", section, re.S)]
        self.assertGreaterEqual(len(examples), 8)
        for i, text in enumerate(examples):
            with self.subTest(text):
                self.assertEqual(self.schema_errors(text), [], "the schema refuses it: not check-only after all")
                r = self.check(f"check_only_{i}", text)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
