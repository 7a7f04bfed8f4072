"""scripts/inject: golden files for every workload kind, idempotence, valid
YAML out, and kubectl client-side validation where kubectl is installed."""
import os
import shutil
import subprocess
import unittest

import yaml

from harness import SRC

INJECT = os.path.join(SRC, "scripts", "inject")
CASES = os.path.join(SRC, "tests", "inject")
KINDS = ["deployment", "statefulset", "daemonset", "job", "pod"]


def run_inject(text, *args):
    r = subprocess.run([INJECT, "-", *args], input=text, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(r.stderr)
    return r.stdout


class InjectTest(unittest.TestCase):
    def test_golden_files(self):
        update = os.environ.get("MULLIGAN_UPDATE_GOLDEN") == "1"
        for kind in KINDS:
            with self.subTest(kind=kind):
                with open(os.path.join(CASES, kind + ".yaml")) as f:
                    out = run_inject(f.read())
                golden = os.path.join(CASES, "golden", kind + ".yaml")
                if update:
                    with open(golden, "w") as f:
                        f.write(out)
                with open(golden) as f:
                    self.assertEqual(out, f.read(), f"{kind}: run with MULLIGAN_UPDATE_GOLDEN=1 to update")

    def test_injecting_twice_changes_nothing(self):
        for kind in KINDS:
            with open(os.path.join(CASES, kind + ".yaml")) as f:
                once = run_inject(f.read())
            self.assertEqual(run_inject(once), once, kind)

    def pod_specs(self, docs):
        for d in docs:
            kind = d.get("kind")
            if kind == "Pod":
                yield d, d["spec"]
            elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                yield d, d["spec"]["template"]["spec"]

    def test_output_is_yaml_with_the_pieces_in_place(self):
        with open(os.path.join(CASES, "deployment.yaml")) as f:
            docs = list(yaml.safe_load_all(run_inject(f.read())))
        (_, spec), = list(self.pod_specs(docs))
        init = spec["initContainers"][0]
        self.assertEqual(init["name"], "mulligan-init")
        self.assertEqual(init["securityContext"]["capabilities"]["add"], ["NET_ADMIN", "NET_RAW"])
        self.assertIn("5432,6379", init["command"])
        self.assertIn("169.254.169.254/32", init["command"])
        names = [c["name"] for c in spec["containers"]]
        self.assertEqual(names, ["app", "mulligan-sidecar", "mulligan-agent"])
        sidecar = spec["containers"][1]
        self.assertEqual(sidecar["securityContext"]["runAsUser"], 1337)
        self.assertEqual(sidecar["readinessProbe"]["httpGet"]["path"], "/ready")
        vols = {v["name"]: v for v in spec["volumes"]}
        self.assertEqual(vols["mulligan-shm"]["emptyDir"]["medium"], "Memory")
        self.assertEqual(vols["mulligan-policy"]["configMap"]["name"], "mulligan-policy")

    def test_native_sidecars_opt_out_and_other_kinds(self):
        with open(os.path.join(CASES, "daemonset.yaml")) as f:
            (_, spec), = list(self.pod_specs(yaml.safe_load_all(run_inject(f.read()))))
        names = [c["name"] for c in spec["initContainers"]]
        self.assertEqual(names, ["mulligan-init", "mulligan-sidecar", "mulligan-agent", "setup"])
        self.assertEqual(spec["initContainers"][1]["restartPolicy"], "Always")
        self.assertEqual([c["name"] for c in spec["containers"]], ["app"])
        with open(os.path.join(CASES, "pod.yaml")) as f:
            docs = list(yaml.safe_load_all(run_inject(f.read())))
        self.assertIn("mulligan-sidecar", [c["name"] for c in docs[0]["spec"]["containers"]])
        self.assertEqual([c["name"] for c in docs[1]["spec"]["containers"]], ["shell"])  # opted out
        with open(os.path.join(CASES, "job.yaml")) as f:
            docs = list(yaml.safe_load_all(run_inject(f.read())))
        self.assertEqual(docs[1]["kind"], "Service")
        self.assertNotIn("initContainers", docs[1].get("spec", {}))

    def test_bad_yaml_is_a_clear_error(self):
        r = subprocess.run([INJECT, "-"], input="a: [unclosed\n", capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("scripts/inject:", r.stderr)

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not installed: client-side validation skipped")
    def test_kubectl_client_side_validation(self):
        for kind in KINDS:
            path = os.path.join(CASES, "golden", kind + ".yaml")
            r = subprocess.run(["kubectl", "apply", "--dry-run=client", "--validate=false", "-f", path],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0 and ("connection refused" in r.stderr or "unable to recognize" in r.stderr):
                # kubectl resolves kinds through an API server even for --dry-run=client.
                self.skipTest("kubectl cannot validate without an API server, and none runs here")
            self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
