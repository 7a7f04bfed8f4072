"""The admission webhook (scripts/k8s/webhook/mulligan-injector) over TLS:
real AdmissionReview v1 requests, as the API server sends them for a Pod
CREATE, posted with curl against a certificate from gen-certs; the returned
JSONPatch is applied with python3-jsonpatch (an independent RFC 6902
implementation) and the result must equal scripts/inject's golden output for
the same pod. Opt-out, hostNetwork and bad-annotation pods, and the
manifests' safety settings, are checked too."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

import yaml

from harness import SRC

try:
    import jsonpatch
except ImportError:  # python3-jsonpatch, in scripts/lib/deps.sh
    jsonpatch = None

WEBHOOK = os.path.join(SRC, "scripts", "k8s", "webhook")
CASES = os.path.join(SRC, "tests", "inject")
SERVICE_DNS = "mulligan-injector.mulligan-system.svc"  # the name the API server verifies


def admission_review(pod, namespace="shop", operation="CREATE"):
    """An AdmissionReview v1 request in the shape the API server sends."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": (pod.get("metadata") or {}).get("name", ""),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": "5c8a3e1d-0b7f-4f2e-9a6c-1d2e3f4a5b6c",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                    "system:authenticated"]},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def load(name):
    with open(os.path.join(CASES, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


@unittest.skipUnless(jsonpatch, "python3-jsonpatch not installed")
@unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "openssl and curl are needed")
class InjectWebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mulligan-webhook-")
        r = subprocess.run([os.path.join(WEBHOOK, "gen-certs"), "--dir", cls.tmp], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            shutil.rmtree(cls.tmp, True)
            raise AssertionError(r.stderr)
        cls.ca_bundle = r.stdout.strip()
        cls.proc = subprocess.Popen(
            [os.path.join(WEBHOOK, "mulligan-injector"), "--listen", "127.0.0.1:0",
             "--cert", os.path.join(cls.tmp, "tls.crt"), "--key", os.path.join(cls.tmp, "tls.key")],
            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        line = cls.proc.stderr.readline()
        if "listening on https://" not in line:
            cls.tearDownClass()
            raise AssertionError(f"the webhook did not start: {line}")
        cls.port = int(line.rsplit(":", 1)[1])

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.proc.stderr.close()
        shutil.rmtree(cls.tmp, True)

    def curl(self, *args, body=None, path="/inject", verify=True):
        """curl over TLS with the service's DNS name resolved to the webhook,
        so the certificate is checked for the name the API server uses."""
        cmd = ["curl", "-sS", "--max-time", "30", "--resolve", f"{SERVICE_DNS}:{self.port}:127.0.0.1",
               "-w", "\n%{http_code}"]
        if verify:
            cmd += ["--cacert", os.path.join(self.tmp, "ca.crt")]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        r = subprocess.run(cmd + list(args) + [f"https://{SERVICE_DNS}:{self.port}{path}"],
                           input=None if body is None else json.dumps(body), capture_output=True, text=True,
                           timeout=60)
        return r

    def post(self, review):
        r = self.curl(body=review)
        self.assertEqual(r.returncode, 0, r.stderr)
        text, code = r.stdout.rsplit("\n", 1)
        self.assertEqual(code, "200", text)
        out = json.loads(text)
        self.assertEqual(out["apiVersion"], "admission.k8s.io/v1")
        self.assertEqual(out["kind"], "AdmissionReview")
        self.assertEqual(out["response"]["uid"], review["request"]["uid"])
        return out["response"]

    def patched(self, pod, response):
        self.assertTrue(response["allowed"], response)
        self.assertEqual(response["patchType"], "JSONPatch")
        ops = json.loads(base64.b64decode(response["patch"]))
        return jsonpatch.apply_patch(pod, ops), ops

    def test_patched_pods_equal_the_golden_injected_output_of_scripts_inject(self):
        cases = [("pod.yaml", 0, None), ("api-server-pods.yaml", 0, "shop"), ("api-server-pods.yaml", 1, "shop")]
        for name, index, namespace in cases:
            with self.subTest(case=name, index=index):
                pod = load(name)[index]
                golden = load(os.path.join("golden", name))[index]
                result, ops = self.patched(pod, self.post(admission_review(pod, namespace or "default")))
                self.assertEqual(result, golden)
                # Additions, not a rewrite of the pod: the user's containers are never replaced.
                self.assertFalse([op for op in ops if op["op"] in ("replace", "remove")
                                  and op["path"].startswith("/spec/containers")], ops)

    def test_a_job_pod_gets_native_sidecars(self):
        pod = load("api-server-pods.yaml")[1]
        result, _ = self.patched(pod, self.post(admission_review(pod)))
        self.assertEqual([c["name"] for c in result["spec"]["containers"]], ["report"])
        self.assertEqual([c.get("restartPolicy") for c in result["spec"]["initContainers"]],
                         [None, "Always", "Always"])

    def test_an_opted_out_pod_and_an_injected_pod_get_no_patch(self):
        opted_out = load("pod.yaml")[1]
        response = self.post(admission_review(opted_out))
        self.assertTrue(response["allowed"])
        self.assertNotIn("patch", response)
        injected = load(os.path.join("golden", "api-server-pods.yaml"))[0]  # e.g. from a CLI-injected Deployment
        response = self.post(admission_review(injected))
        self.assertTrue(response["allowed"])
        self.assertNotIn("patch", response)

    def test_a_host_network_pod_is_allowed_unchanged_with_a_warning(self):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "node-exporter-", "namespace": "shop"},
               "spec": {"hostNetwork": True, "containers": [{"name": "exporter", "image": "prom/node-exporter"}]}}
        response = self.post(admission_review(pod))
        self.assertTrue(response["allowed"])
        self.assertNotIn("patch", response)
        self.assertEqual(len(response["warnings"]), 1)
        self.assertIn("hostNetwork", response["warnings"][0])
        self.assertIn("Pod/node-exporter-*", response["warnings"][0])

    def test_a_bad_annotation_is_denied_with_the_message(self):
        pod = load("api-server-pods.yaml")[0]
        pod["metadata"]["annotations"]["mulligan.io/exclude-outbound-cidrs"] = "10.0.0.0/33"
        response = self.post(admission_review(pod))
        self.assertFalse(response["allowed"])
        self.assertNotIn("patch", response)
        message = response["status"]["message"]
        self.assertEqual(response["status"]["code"], 400)
        for part in ("Pod/checkout-6d9c7f8b5d-* (of ReplicaSet/checkout-6d9c7f8b5d) in namespace shop",
                     "mulligan.io/exclude-outbound-cidrs", "10.0.0.0/33"):
            self.assertIn(part, message)

    def test_other_operations_and_kinds_are_allowed_untouched(self):
        pod = load("pod.yaml")[0]
        response = self.post(admission_review(pod, operation="UPDATE"))
        self.assertEqual(response, {"uid": response["uid"], "allowed": True})

    def test_tls_only_with_a_certificate_for_the_service_name(self):
        r = self.curl(path="/healthz")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("ok"))
        r = self.curl(path="/healthz", verify=False)  # without the CA: not trusted
        self.assertNotEqual(r.returncode, 0)
        r = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{self.port}/healthz"],
                           capture_output=True, text=True, timeout=30)
        self.assertFalse(r.stdout.startswith("ok"), "plain HTTP must not be served")
        # The caBundle printed is the CA the serving certificate chains to.
        with open(os.path.join(self.tmp, "ca.crt"), "rb") as f:
            self.assertEqual(base64.b64decode(self.ca_bundle), f.read())

    def test_a_renewed_certificate_is_served_without_a_restart(self):
        # As when the Secret is renewed: new files in place (a new CA here, so the difference shows).
        renewed = os.path.join(self.tmp, "renewed")
        r = subprocess.run([os.path.join(WEBHOOK, "gen-certs"), "--dir", renewed], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        saved = os.path.join(self.tmp, "saved")
        os.mkdir(saved)
        names = ("ca.crt", "tls.crt", "tls.key")

        def put(src_dir):
            for name in names:
                shutil.copy(os.path.join(src_dir, name), os.path.join(self.tmp, name + ".new"))
                os.replace(os.path.join(self.tmp, name + ".new"), os.path.join(self.tmp, name))

        for name in names:
            shutil.copy(os.path.join(self.tmp, name), saved)
        self.addCleanup(lambda: (put(saved), self.assertEqual(self.curl(path="/healthz").returncode, 0)))
        put(renewed)
        r = self.curl(path="/healthz")
        self.assertEqual(r.returncode, 0, r.stderr)  # the renewed certificate, trusted by the new CA
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", os.path.join(saved, "ca.crt"),
                            "--resolve", f"{SERVICE_DNS}:{self.port}:127.0.0.1",
                            f"https://{SERVICE_DNS}:{self.port}/healthz"], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, "still the old certificate")

    def test_malformed_reviews_are_400(self):
        r = self.curl(body={"kind": "AdmissionReview"})
        self.assertEqual(r.stdout.rsplit("\n", 1)[1], "400")


class InjectorManifestTest(unittest.TestCase):
    """scripts/k8s/injector.yaml: the settings the README explains."""

    def test_webhook_configuration(self):
        with open(os.path.join(SRC, "scripts", "k8s", "injector.yaml")) as f:
            docs = {d["kind"]: d for d in yaml.safe_load_all(f) if d}
        mwc = docs["MutatingWebhookConfiguration"]
        self.assertEqual(len(mwc["webhooks"]), 2)  # by namespace label, or by pod label
        for hook in mwc["webhooks"]:
            self.assertEqual(hook["failurePolicy"], "Ignore")
            self.assertEqual(hook["sideEffects"], "None")
            self.assertEqual(hook["admissionReviewVersions"], ["v1"])
            self.assertEqual(hook["reinvocationPolicy"], "IfNeeded")
            self.assertLessEqual(hook["timeoutSeconds"], 10)
            self.assertEqual(hook["clientConfig"]["service"]["path"], "/inject")
            self.assertEqual(hook["rules"][0]["operations"], ["CREATE"])
            self.assertEqual(hook["rules"][0]["resources"], ["pods"])
            excluded = [e for e in hook["namespaceSelector"]["matchExpressions"]
                        if e["key"] == "kubernetes.io/metadata.name"]
            self.assertEqual(excluded[0]["operator"], "NotIn")
            self.assertIn("kube-system", excluded[0]["values"])
            self.assertIn(docs["Service"]["metadata"]["namespace"], excluded[0]["values"])
        deployment = docs["Deployment"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS")


if __name__ == "__main__":
    unittest.main()
