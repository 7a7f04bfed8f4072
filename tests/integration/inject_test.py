"""scripts/inject: golden files for every workload kind, idempotence, valid
YAML out, the safety rules (hostNetwork, run-to-completion pods, annotation
validation, another mesh), start and stop ordering, IPv6 listeners, scrape
annotations, and kubectl client-side validation where kubectl is installed."""
import os
import shutil
import socket
import subprocess
import unittest

import yaml

from harness import SRC, Case, binary, wait_for

INJECT = os.path.join(SRC, "scripts", "inject")
CASES = os.path.join(SRC, "tests", "inject")
KINDS = ["deployment", "statefulset", "daemonset", "job", "cronjob", "pod", "hostnetwork", "other-mesh",
         "api-server-pods"]


def run(text, *args):
    return subprocess.run([INJECT, "-", *args], input=text, capture_output=True, text=True, timeout=30)


def run_inject(text, *args):
    r = run(text, *args)
    if r.returncode != 0:
        raise AssertionError(r.stderr)
    return r.stdout


def case(name):
    with open(os.path.join(CASES, name + ".yaml")) as f:
        return f.read()


def pod_spec(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def template_meta(doc):
    if doc.get("kind") == "Pod":
        return doc["metadata"]
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    return doc["spec"]["template"]["metadata"]


def names(containers):
    return [c["name"] for c in containers or []]


def deployment(annotations=None, **spec):
    pod = {"containers": [{"name": "app", "image": "example/app:1"}]}
    pod.update(spec)
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                 "template": {"metadata": {"labels": {"app": "checkout"}, "annotations": annotations or {}},
                              "spec": pod}}})


class InjectTest(unittest.TestCase):
    def test_golden_files(self):
        update = os.environ.get("MULLIGAN_UPDATE_GOLDEN") == "1"
        for kind in KINDS:
            with self.subTest(kind=kind):
                out = run_inject(case(kind))
                golden = os.path.join(CASES, "golden", kind + ".yaml")
                if update:
                    with open(golden, "w") as f:
                        f.write(out)
                with open(golden) as f:
                    self.assertEqual(out, f.read(), f"{kind}: run with MULLIGAN_UPDATE_GOLDEN=1 to update")

    def test_injecting_twice_changes_nothing(self):
        for kind in KINDS:
            once = run_inject(case(kind))
            self.assertEqual(run_inject(once), once, kind)

    def test_output_is_yaml_with_the_pieces_in_place(self):
        doc, = yaml.safe_load_all(run_inject(case("deployment")))
        spec = pod_spec(doc)
        init = spec["initContainers"][-1]
        self.assertEqual(init["name"], "mulligan-init")
        self.assertEqual(init["securityContext"]["capabilities"]["add"], ["NET_ADMIN", "NET_RAW"])
        self.assertIn("5432,6379", init["command"])
        self.assertIn("169.254.169.254/32", init["command"])
        self.assertEqual(names(spec["containers"]), ["mulligan-sidecar", "mulligan-agent", "app"])
        sidecar = spec["containers"][0]
        self.assertEqual(sidecar["securityContext"]["runAsUser"], 1337)
        self.assertEqual(sidecar["readinessProbe"]["httpGet"]["path"], "/ready")
        vols = {v["name"]: v for v in spec["volumes"]}
        self.assertEqual(vols["mulligan-shm"]["emptyDir"]["medium"], "Memory")
        self.assertEqual(vols["mulligan-policy"]["configMap"]["name"], "mulligan-policy")
        # kubectl logs/exec without -c still reach the app, not the sidecar listed first.
        self.assertEqual(template_meta(doc)["annotations"]["kubectl.kubernetes.io/default-container"], "app")

    def test_native_sidecars_opt_out_and_other_kinds(self):
        doc, = yaml.safe_load_all(run_inject(case("daemonset")))
        spec = pod_spec(doc)
        self.assertEqual(names(spec["initContainers"]), ["mulligan-init", "mulligan-agent", "mulligan-sidecar", "setup"])
        self.assertEqual(spec["initContainers"][2]["restartPolicy"], "Always")
        self.assertEqual(names(spec["containers"]), ["app"])
        docs = list(yaml.safe_load_all(run_inject(case("pod"))))
        self.assertIn("mulligan-sidecar", names(docs[0]["spec"]["containers"]))
        self.assertEqual(names(docs[1]["spec"]["containers"]), ["shell"])  # opted out
        docs = list(yaml.safe_load_all(run_inject(case("job"))))
        self.assertEqual(docs[1]["kind"], "Service")
        self.assertNotIn("initContainers", docs[1].get("spec", {}))

    def test_bad_yaml_is_a_clear_error(self):
        r = run("a: [unclosed\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("scripts/inject:", r.stderr)
        r = run("kind: Deployment\nmetadata: {name: x}\nspec: {template: {spec: 3}}\n")
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertIn("not shaped as Kubernetes writes it", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    # --- safe by construction -------------------------------------------------

    def test_host_network_workload_passes_through_uninjected_with_a_warning(self):
        r = run(case("hostnetwork"))
        self.assertEqual(r.returncode, 0, r.stderr)
        daemonset, web = yaml.safe_load_all(r.stdout)
        original = list(yaml.safe_load_all(case("hostnetwork")))[0]
        self.assertEqual(daemonset, original)  # untouched: no NET_ADMIN init container on the node's network
        self.assertIn("DaemonSet/node-exporter", r.stderr)
        self.assertIn("hostNetwork", r.stderr)
        self.assertIn("mulligan-sidecar", names(pod_spec(web)["containers"]))  # the rest of the bundle is injected

    def test_jobs_and_cronjobs_get_native_sidecars_so_they_complete(self):
        for kind in ("job", "cronjob"):
            with self.subTest(kind=kind):
                doc = next(yaml.safe_load_all(run_inject(case(kind))))
                spec = pod_spec(doc)
                self.assertEqual(len(spec["containers"]), 1, "only the job's own container may be a regular container")
                inits = {c["name"]: c for c in spec["initContainers"]}
                self.assertEqual(inits["mulligan-sidecar"]["restartPolicy"], "Always")
                self.assertEqual(inits["mulligan-agent"]["restartPolicy"], "Always")

    def test_a_bare_pod_that_runs_to_completion_gets_native_sidecars(self):
        pod = yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once"},
                              "spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "t"}]}})
        spec = next(yaml.safe_load_all(run_inject(pod)))["spec"]
        self.assertEqual(names(spec["containers"]), ["task"])

    def test_a_job_forced_into_legacy_sidecars_is_warned_about(self):
        job = case("job").replace("    spec:\n      restartPolicy",
                                  "    metadata:\n      annotations: {mulligan.io/native-sidecar: \"false\"}\n"
                                  "    spec:\n      restartPolicy", 1)
        r = run(job)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Job/nightly-report", r.stderr)
        self.assertIn("never complete unless", r.stderr)
        self.assertIn("/drain", r.stderr)
        spec = pod_spec(next(yaml.safe_load_all(r.stdout)))
        agent = {c["name"]: c for c in spec["containers"]}["mulligan-agent"]
        self.assertEqual(agent["command"][0], "bash")  # follows the sidecar out; run for real below

    def test_bad_annotations_are_refused_naming_workload_annotation_and_item(self):
        bad = [
            ("mulligan.io/exclude-outbound-ports", "5432,redis", "redis"),
            ("mulligan.io/exclude-outbound-ports", "0", "0"),
            ("mulligan.io/exclude-outbound-ports", "65536", "65536"),
            ("mulligan.io/exclude-outbound-ports", "9000:8000", "9000:8000"),
            ("mulligan.io/exclude-outbound-cidrs", "10.0.0.0/33", "10.0.0.0/33"),
            ("mulligan.io/exclude-outbound-cidrs", "10.0.0.0/8,fd00::/129", "fd00::/129"),
            ("mulligan.io/exclude-outbound-cidrs", "fd00:::1/64", "fd00:::1/64"),
            ("mulligan.io/exclude-outbound-cidrs", "300.1.1.1", "300.1.1.1"),
            ("mulligan.io/native-sidecar", "maybe", "maybe"),
            ("mulligan.io/inject", "perhaps", "perhaps"),
            ("mulligan.io/policy-configmap", "Orders_Policy", "Orders_Policy"),
            ("mulligan.io/wait-before-exit-seconds", "-1", "-1"),
            ("mulligan.io/exclude-outbound-port", "5432", "mulligan.io/exclude-outbound-port"),  # a typo
        ]
        for key, value, item in bad:
            with self.subTest(annotation=key, value=value):
                r = run(deployment({key: value}))
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertEqual(r.stdout, "", "nothing for kubectl apply to apply")
                self.assertIn("Deployment/checkout", r.stderr)
                self.assertIn(key, r.stderr)
                self.assertIn(item, r.stderr)

    def test_good_annotation_forms_are_accepted_and_normalised(self):
        out = run_inject(deployment({"mulligan.io/exclude-outbound-ports": " 5432, 8000-8100 ,6379:6380",
                                     "mulligan.io/exclude-outbound-cidrs": "10.0.0.0/8, fd00::/8,192.168.1.7"}))
        init = pod_spec(next(yaml.safe_load_all(out)))["initContainers"][-1]
        cmd = init["command"]
        self.assertEqual(cmd[cmd.index("--exclude-ports") + 1], "5432,8000:8100,6379:6380")
        self.assertEqual(cmd[cmd.index("--exclude-cidrs") + 1], "10.0.0.0/8,fd00::/8,192.168.1.7/32")

    def test_another_mesh_in_the_pod_is_warned_about(self):
        r = run(case("other-mesh"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Pod/meshed", r.stderr)
        self.assertIn("istio-proxy", r.stderr)
        self.assertIn("1337", r.stderr)
        linkerd = deployment({"linkerd.io/inject": "enabled"})
        r = run(linkerd)
        self.assertIn("linkerd.io/inject", r.stderr)

    # --- start and stop ordering ----------------------------------------------

    def test_legacy_mode_user_init_containers_run_before_the_redirect(self):
        web = list(yaml.safe_load_all(run_inject(case("hostnetwork"))))[1]
        self.assertEqual(names(pod_spec(web)["initContainers"]), ["migrate", "mulligan-init"])

    def test_an_init_container_added_after_injection_is_moved_before_the_redirect(self):
        # What the webhook sees when reinvoked after another webhook appended an init container.
        doc = next(yaml.safe_load_all(run_inject(case("deployment"))))
        pod_spec(doc)["initContainers"].append({"name": "vault-agent-init", "image": "vault"})
        again = next(yaml.safe_load_all(run_inject(yaml.safe_dump(doc))))
        self.assertEqual(names(pod_spec(again)["initContainers"]), ["vault-agent-init", "mulligan-init"])
        self.assertEqual(names(pod_spec(again)["containers"]), names(pod_spec(doc)["containers"]))

    def test_legacy_mode_holds_the_app_until_the_sidecar_listens(self):
        spec = pod_spec(next(yaml.safe_load_all(run_inject(case("deployment")))))
        sidecar = spec["containers"][0]
        self.assertEqual(sidecar["name"], "mulligan-sidecar")
        hook = sidecar["lifecycle"]["postStart"]["exec"]["command"]
        # The hook must only use what the image has: bash and coreutils, no curl.
        self.assertEqual(hook[0], "bash")
        self.assertIn("/dev/tcp/127.0.0.1/15001", hook[-1])
        # Run the hook itself against a port of ours: it exits 0 only once
        # something listens there.
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connects are refused
        script = hook[-1].replace("/dev/tcp/127.0.0.1/15001", f"/dev/tcp/127.0.0.1/{port}")
        p = subprocess.Popen(hook[:-1] + [script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertIsNone(p.poll(), "the hook returned before anything listened")
            probe.listen(8)
            self.assertEqual(p.wait(60), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
            probe.close()

    def test_native_mode_starts_the_app_once_the_sidecar_listens_without_waiting_for_a_policy(self):
        spec = pod_spec(next(yaml.safe_load_all(run_inject(case("daemonset")))))
        sidecar = {c["name"]: c for c in spec["initContainers"]}["mulligan-sidecar"]
        # /healthz answers once the outbound listeners are bound; /ready would
        # hold the app until a policy arrives, and forever on a broken one.
        self.assertEqual(sidecar["startupProbe"]["httpGet"], {"path": "/healthz", "port": 15000})
        self.assertNotIn("postStart", sidecar.get("lifecycle", {}))

    def test_legacy_mode_keeps_the_sidecar_up_while_the_app_finishes(self):
        spec = pod_spec(next(yaml.safe_load_all(run_inject(case("deployment")))))
        pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre_stop, ["sleep", "5"])
        spec = pod_spec(next(yaml.safe_load_all(run_inject(
            deployment({"mulligan.io/wait-before-exit-seconds": "12"})))))
        self.assertEqual(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"], ["sleep", "12"])
        # Native sidecars are stopped by the kubelet after the app: no preStop wait.
        spec = pod_spec(next(yaml.safe_load_all(run_inject(case("daemonset")))))
        sidecar = {c["name"]: c for c in spec["initContainers"]}["mulligan-sidecar"]
        self.assertNotIn("preStop", sidecar.get("lifecycle", {}))

    def test_a_grace_period_too_short_for_the_drain_is_warned_about(self):
        r = run(deployment(terminationGracePeriodSeconds=8))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Deployment/checkout", r.stderr)
        self.assertIn("terminationGracePeriodSeconds", r.stderr)
        self.assertEqual(run(deployment()).stderr, "")

    # --- IPv6 and scraping -----------------------------------------------------

    def test_the_sidecar_listens_on_ipv4_and_ipv6_loopback(self):
        spec = pod_spec(next(yaml.safe_load_all(run_inject(case("deployment")))))
        args = spec["containers"][0]["args"]
        outbound = [args[i + 1] for i, a in enumerate(args) if a == "--outbound"]
        self.assertEqual(outbound, ["127.0.0.1:15001", "[::1]:15001"])

    def test_scrape_annotations_point_at_the_sidecar_unless_the_app_has_its_own(self):
        meta = template_meta(next(yaml.safe_load_all(run_inject(case("deployment")))))
        self.assertEqual(meta["annotations"]["prometheus.io/scrape"], "true")
        self.assertEqual(meta["annotations"]["prometheus.io/port"], "15000")
        self.assertEqual(meta["annotations"]["prometheus.io/path"], "/metrics")
        self.assertEqual(meta["labels"]["mulligan.io/injected"], "true")  # what scripts/k8s/podmonitor.yaml selects
        r = run(case("hostnetwork"))
        web = list(yaml.safe_load_all(r.stdout))[1]
        self.assertEqual(template_meta(web)["annotations"]["prometheus.io/port"], "9090")  # the app's own
        self.assertNotIn("prometheus.io/path", template_meta(web)["annotations"])
        self.assertIn("podmonitor", r.stderr)

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



@unittest.skipUnless(hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip"),
                     "needs root and ip netns: the injected commands run in a pod-like network namespace")
class InjectedPodCommandsTest(Case):
    """The injected containers' commands, exactly as the manifest has them,
    run with the real binaries in a fresh network namespace (a pod's own
    loopback, so the manifest's fixed ports are free): the sidecar's args,
    its postStart hook, the startupProbe's and readinessProbe's routes, the
    agent's args, and the drain on SIGTERM."""

    def ns_run(self, *cmd, timeout=30):
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True, text=True,
                              timeout=timeout)

    def http_status(self, path):
        r = self.ns_run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                        f"http://127.0.0.1:15000{path}")
        return r.stdout

    def accepts(self, host):
        return self.ns_run("bash", "-c", f"(exec 3<>/dev/tcp/{host}/15001)").returncode == 0

    def test_the_injected_commands_work_with_the_real_binaries(self):
        sidecar_bin, agent_bin = binary("mulligan-sidecar"), binary("mulligan-agent")
        containers = {c["name"]: c for c in pod_spec(next(yaml.safe_load_all(run_inject(case("deployment")))))
                      ["containers"]}
        self.ns = f"mulligan-inject-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.ns], check=True, timeout=30)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns], timeout=30)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True, timeout=30)
        # /dev/shm is the host's, not the pod's: a unique segment name for both processes.
        own_shm = lambda args: [self.shm if a == "mulligan-policy" else a for a in args]  # noqa: E731

        sidecar = self.start("ip", "netns", "exec", self.ns, sidecar_bin,
                             *own_shm(containers["mulligan-sidecar"]["args"]))
        wait_for(lambda: self.http_status("/healthz") == "200" or sidecar.poll() is not None,
                 timeout=30, what="the sidecar's /healthz")
        if sidecar.poll() is not None:
            self.fail(f"the sidecar refused the injected args: {sidecar.stderr.read()}")
        v4, v6 = self.accepts("127.0.0.1"), self.accepts("::1")
        if v6 and not v4:
            self.skipTest("this mulligan-sidecar keeps only the last --outbound; listening on both loopbacks "
                          "needs the repeatable --outbound (h-resources)")
        self.assertTrue(v4 and v6, f"127.0.0.1:15001 accepts: {v4}, [::1]:15001 accepts: {v6}")

        # The legacy postStart hook returns at once against a listening sidecar.
        hook = containers["mulligan-sidecar"]["lifecycle"]["postStart"]["exec"]["command"]
        r = self.ns_run(*hook, timeout=150)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Before any policy: the startupProbe's route lets the app start, readiness waits.
        self.assertEqual(self.http_status("/healthz"), "200")
        self.assertEqual(self.http_status("/ready"), "503")

        agent_args = containers["mulligan-agent"]["args"]
        policy = self.write("policy.toml", 'version = 1\n[defaults]\nrequest_timeout = "5s"\n')
        agent_args = [policy if a == "/etc/mulligan/policy.toml" else a for a in own_shm(agent_args)]
        self.start("ip", "netns", "exec", self.ns, containers["mulligan-agent"]["command"][0].replace(
            "/usr/local/bin/mulligan-agent", agent_bin), *agent_args)
        wait_for(lambda: self.http_status("/ready") == "200", timeout=30, what="/ready after the agent published")

        sidecar.terminate()  # what the kubelet sends after the preStop wait
        self.assertEqual(sidecar.wait(30), 0)

    def test_a_legacy_job_completes_when_it_drains_the_sidecar(self):
        sidecar_bin, agent_bin = binary("mulligan-sidecar"), binary("mulligan-agent")
        job = case("job").replace("    spec:\n      restartPolicy",
                                  "    metadata:\n      annotations: {mulligan.io/native-sidecar: \"false\"}\n"
                                  "    spec:\n      restartPolicy", 1)
        containers = {c["name"]: c for c in pod_spec(next(yaml.safe_load_all(run_inject(job))))["containers"]}
        self.ns = f"mulligan-inject-{os.getpid()}-job"
        subprocess.run(["ip", "netns", "add", self.ns], check=True, timeout=30)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns], timeout=30)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True, timeout=30)
        own_shm = lambda args: [self.shm if a == "mulligan-policy" else a for a in args]  # noqa: E731
        # Only the outbound address this sidecar surely takes; the IPv6 one is the test above's business.
        sidecar_args = own_shm(containers["mulligan-sidecar"]["args"])
        i = sidecar_args.index("[::1]:15001")
        del sidecar_args[i - 1:i + 1]
        sidecar = self.start("ip", "netns", "exec", self.ns, sidecar_bin, *sidecar_args)
        wait_for(lambda: self.http_status("/healthz") == "200", timeout=30, what="the sidecar's /healthz")
        agent = containers["mulligan-agent"]
        policy = self.write("policy.toml", 'version = 1\n')
        # The container's command and args as written, with the binary and the policy where this host has them.
        argv = [a.replace("/usr/local/bin/mulligan-agent", agent_bin) for a in agent["command"]]
        argv += [policy if a == "/etc/mulligan/policy.toml" else a for a in own_shm(agent["args"])]
        follower = self.start("ip", "netns", "exec", self.ns, *argv)
        wait_for(lambda: self.http_status("/ready") == "200", timeout=30, what="the agent's publish")
        self.assertIsNone(follower.poll())
        # The job's last line: POST /drain from loopback.
        r = self.ns_run("curl", "-s", "-X", "POST", "--max-time", "10", "http://127.0.0.1:15000/drain")
        self.assertEqual(r.stdout, "draining\n")
        self.assertEqual(sidecar.wait(30), 0)
        try:
            self.assertEqual(follower.wait(30), 0)
        except subprocess.TimeoutExpired:
            self.fail("the agent still runs after the sidecar exited: the pod would never complete")


if __name__ == "__main__":
    unittest.main()
