"""Mulligan's injection rules: the one implementation behind `scripts/inject`
(manifests on disk) and the admission webhook `scripts/k8s/webhook/mulligan-injector`
(pods as the API server creates them).

    docs, warnings = inject_docs(docs, Options())        # YAML documents -> injected documents
    pod, warnings, changed = inject_pod(pod, Options())  # one Pod object (the webhook)
    patch = json_patch(before, after)                    # RFC 6902 operations from before to after

Both raise InjectError, whose message names the workload, the annotation and
the bad item, for a pod that must not be created as written (a malformed
mulligan.io/ annotation). A pod that must not be injected but may run as it
is (hostNetwork, opted out) passes through untouched, with a warning where
the user did not ask for that.

What an injected pod gets, and why in that order:
  - `mulligan-init` (scripts/iptables, NET_ADMIN and NET_RAW only) redirects
    outbound TCP to the sidecar. In legacy mode it is the LAST init container:
    init containers run one after another, and a user init container that ran
    after it would have its calls redirected to a sidecar that does not run
    yet. In native mode it is the first, before the sidecars start.
  - `mulligan-sidecar` listening on 127.0.0.1:15001 and [::1]:15001
    (ip6tables redirects IPv6 to ::1), admin on 0.0.0.0:15000 (the kubelet's
    probes and the scrape reach it on the pod IP; POST /drain answers loopback
    peers only), and `mulligan-agent`, which publishes the policy ConfigMap to
    an in-memory /dev/shm both mount.
  - Native sidecars (init containers with restartPolicy: Always, Kubernetes
    >= 1.29) when asked, and always for pods that run to completion (Jobs,
    CronJobs, restartPolicy Never/OnFailure): the kubelet stops them once the
    app's containers have ended, so the Job completes. Their order is
    agent, sidecar; the sidecar's startupProbe on /healthz (answered once its
    listeners are bound, policy or not) holds every later container until
    it listens. Not /ready: that is 503 until a policy arrives, and a broken
    or missing policy must not keep the app from starting (the sidecar fails
    open with its built-in defaults). The kubelet stops native sidecars in
    reverse order after the app has exited, so no preStop wait is needed.
  - Legacy mode (regular containers): the sidecar is listed first with a
    postStart hook that returns once 127.0.0.1:15001 accepts connections; the
    kubelet starts containers in order and waits for each postStart, so the
    app starts after the sidecar listens (Istio's
    holdApplicationUntilProxyStarts). The hook uses bash's /dev/tcp: the image
    has bash and coreutils, no curl. On stop every container gets SIGTERM at
    once, so the sidecar's preStop sleeps `wait-before-exit-seconds` (default
    5) while the app finishes its last calls; then its SIGTERM drains what is
    in flight for up to --drain-timeout (10 s).
"""
import copy
import ipaddress
import json
import re
from dataclasses import dataclass

DEFAULT_IMAGE = "mulligan:0.1.0"
PROXY_UID = 1337
AGENT_UID = PROXY_UID + 1
OUTBOUND_PORT = 15001
ADMIN_PORT = 15000
DRAIN_TIMEOUT_S = 10          # the sidecar's --drain-timeout default
WAIT_BEFORE_EXIT_S = 5        # legacy mode's preStop sleep default
HOLD_TRIES = 1200             # postStart: 1200 x 0.1 s = 2 minutes, then the kubelet restarts the sidecar
PREFIX = "mulligan.io/"
OURS = ("mulligan-init", "mulligan-sidecar", "mulligan-agent")

# Where the pod template lives, per kind.
POD_SPEC_PATHS = {
    "Pod": [],
    "Deployment": ["spec", "template"],
    "StatefulSet": ["spec", "template"],
    "DaemonSet": ["spec", "template"],
    "ReplicaSet": ["spec", "template"],
    "Job": ["spec", "template"],
    "CronJob": ["spec", "jobTemplate", "spec", "template"],
}
RUN_TO_COMPLETION_KINDS = ("Job", "CronJob")

# Every mulligan.io/ annotation a user may write; anything else under the
# prefix is a typo that would otherwise be ignored silently.
ANNOTATIONS = {
    "inject": "\"false\"/\"disabled\" leaves the workload alone",
    "native-sidecar": "\"true\" or \"false\" (default: true for Jobs, CronJobs and run-to-completion pods)",
    "exclude-outbound-ports": "ports or LOW:HIGH ranges not redirected, e.g. \"5432,6379,8000:8100\"",
    "exclude-outbound-cidrs": "IPv4/IPv6 CIDRs not redirected, e.g. \"10.0.0.0/8,fd00::/8\"",
    "policy-configmap": "the ConfigMap holding policy.toml (default mulligan-policy)",
    "wait-before-exit-seconds": "legacy mode: how long the sidecar outlives the app's SIGTERM (default 5)",
    "injected": "set by the injector",
}

TRUE_WORDS = ("true", "enabled", "yes", "on", "1")
FALSE_WORDS = ("false", "disabled", "no", "off", "0")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Another mesh's pieces: injecting a second proxy and a second set of
# iptables rules into a pod that has one makes both misbehave.
OTHER_MESH_CONTAINERS = {
    "istio-proxy": "Istio", "istio-init": "Istio", "istio-validation": "Istio",
    "linkerd-proxy": "Linkerd", "linkerd-init": "Linkerd", "linkerd-network-validator": "Linkerd",
}
OTHER_MESH_ANNOTATIONS = {
    "sidecar.istio.io/status": None,         # Istio injected this pod
    "sidecar.istio.io/inject": TRUE_WORDS,   # Istio's webhook will inject it
    "linkerd.io/proxy-version": None,        # Linkerd injected this pod
    "linkerd.io/inject": ("enabled", "ingress"),
}


class InjectError(Exception):
    """A workload that must not be applied as written; the message says which and why."""


@dataclass
class Options:
    image: str = DEFAULT_IMAGE
    mode: str = "auto"                  # auto | native | legacy
    policy_configmap: str = "mulligan-policy"


def pod_template(doc):
    path = POD_SPEC_PATHS.get(doc.get("kind")) if isinstance(doc, dict) else None
    if path is None:
        return None
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, dict) else None


def describe(doc, namespace=None):
    """Kind/name (in namespace NS), as kubectl prints it; for a pod the API
    server has not named yet, its generateName and owner."""
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    owner = ""
    if not name:
        name = (meta.get("generateName") or "") + "*"
        refs = meta.get("ownerReferences") or []
        if refs:
            owner = f" (of {refs[0].get('kind')}/{refs[0].get('name')})"
    ns = meta.get("namespace") or namespace
    return f"{doc.get('kind')}/{name}{owner}" + (f" in namespace {ns}" if ns else "")


class _Workload:
    """One pod template, the document it came from, and the name messages use for it."""

    def __init__(self, doc, template, namespace):
        self.doc = doc
        self.template = template
        self.name = describe(doc, namespace)
        self.kind = doc.get("kind")
        self.spec = template.setdefault("spec", {})

    def annotations(self):
        # The template's annotations win over the workload's own (kept for
        # manifests written before the template was the documented place);
        # the webhook sees only the pod.
        merged = dict((self.doc.get("metadata") or {}).get("annotations") or {})
        merged.update((self.template.get("metadata") or {}).get("annotations") or {})
        return merged

    def error(self, key, value, why):
        return InjectError(f"{self.name}: annotation {PREFIX}{key}: {json.dumps(str(value))} {why}")


def _flag(w, key, value):
    v = str(value).strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    raise w.error(key, value, "is neither true nor false")


def _ports(w, value):
    out = []
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(r"(\d+)(?:[:-](\d+))?", item)
        low, high = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
        if not m or not (1 <= low <= 65535 and 1 <= high <= 65535):
            raise w.error("exclude-outbound-ports", value,
                          f"has \"{item}\", which is not a port (1-65535) or a range LOW:HIGH")
        if low > high:
            raise w.error("exclude-outbound-ports", value, f"has \"{item}\", a range whose low end is above its high end")
        out.append(str(low) if low == high else f"{low}:{high}")
    return ",".join(out)


def _cidrs(w, value):
    out = []
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            # strict=False: host bits are masked, as iptables does.
            net = ipaddress.ip_network(item, strict=False)
        except ValueError as e:
            raise w.error("exclude-outbound-cidrs", value,
                          f"has \"{item}\", which is not an IPv4 or IPv6 address or CIDR ({e})") from None
        out.append(str(net))
    return ",".join(out)


def _settings(w, options):
    """The validated mulligan.io/ settings of a workload; InjectError on the first bad one."""
    ann = w.annotations()
    for key in ann:
        if key.startswith(PREFIX) and key[len(PREFIX):] not in ANNOTATIONS:
            known = ", ".join(PREFIX + k for k in ANNOTATIONS if k != "injected")
            raise InjectError(f"{w.name}: unknown annotation {key} (known: {known})")
    get = lambda k, d=None: ann.get(PREFIX + k, d)  # noqa: E731
    s = {"inject": _flag(w, "inject", get("inject", "true"))}
    if not s["inject"]:
        return s  # opted out: the rest is not ours to judge
    native = get("native-sidecar")
    s["native"] = None if native is None else _flag(w, "native-sidecar", native)
    s["ports"] = _ports(w, get("exclude-outbound-ports", ""))
    s["cidrs"] = _cidrs(w, get("exclude-outbound-cidrs", ""))
    cm = str(get("policy-configmap", options.policy_configmap)).strip()
    if len(cm) > 253 or not DNS1123_SUBDOMAIN.match(cm):
        raise w.error("policy-configmap", cm, "is not a ConfigMap name (lower-case letters, digits, '-' and '.')")
    s["configmap"] = cm
    wait = str(get("wait-before-exit-seconds", WAIT_BEFORE_EXIT_S)).strip()
    if not re.fullmatch(r"\d+", wait) or int(wait) > 3600:
        raise w.error("wait-before-exit-seconds", wait, "is not a whole number of seconds from 0 to 3600")
    s["wait"] = int(wait)
    return s


def _containers(spec):
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def _other_mesh_warnings(w):
    found = []
    for c in _containers(w.spec):
        mesh = OTHER_MESH_CONTAINERS.get(c.get("name"))
        if mesh:
            found.append(f"container {c.get('name')} ({mesh})")
    meta = w.template.get("metadata") or {}
    for where in (meta.get("annotations") or {}, meta.get("labels") or {}):
        for key, values in OTHER_MESH_ANNOTATIONS.items():
            if key in where and (values is None or str(where[key]).lower() in values):
                found.append(f"{key}: {where[key]}")
    pod_uid = (w.spec.get("securityContext") or {}).get("runAsUser")
    for c in w.spec.get("containers") or []:
        uid = (c.get("securityContext") or {}).get("runAsUser", pod_uid)
        if uid == PROXY_UID and c.get("name") not in OURS:
            found.append(f"container {c.get('name')} runs as uid {PROXY_UID}, the uid the redirect exempts "
                         f"(Istio's proxy uses it): its calls bypass Mulligan")
    if not found:
        return []
    return [f"{w.name}: another mesh is in this pod ({'; '.join(found)}); Mulligan's redirect and the other "
            f"proxy's will fight over the pod's traffic. Inject one mesh only, or exclude one's ports from the other."]


def _is_run_to_completion(w):
    return w.kind in RUN_TO_COMPLETION_KINDS or w.spec.get("restartPolicy") in ("Never", "OnFailure")


def init_container(image, exclude_ports, exclude_cidrs):
    cmd = ["/usr/local/bin/mulligan-iptables", "--proxy-port", str(OUTBOUND_PORT), "--proxy-uid", str(PROXY_UID)]
    if exclude_ports:
        cmd += ["--exclude-ports", exclude_ports]
    if exclude_cidrs:
        cmd += ["--exclude-cidrs", exclude_cidrs]
    return {
        "name": "mulligan-init",
        "image": image,
        "command": cmd,
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}, "limits": {"cpu": "100m", "memory": "50Mi"}},
    }


def hold_until_listening_command():
    """The legacy postStart: returns once the outbound listener accepts a
    connection. bash's /dev/tcp and coreutils' sleep: what the image has."""
    script = (f"for i in $(seq {HOLD_TRIES}); do "
              f"(exec 3<>/dev/tcp/127.0.0.1/{OUTBOUND_PORT}) 2>/dev/null && exit 0; sleep 0.1; done; "
              f"echo 'mulligan-sidecar did not listen on 127.0.0.1:{OUTBOUND_PORT}' >&2; exit 1")
    return ["bash", "-c", script]


def sidecar_container(image, native, wait_before_exit):
    c = {
        "name": "mulligan-sidecar",
        "image": image,
        # Both loopbacks: iptables redirects IPv4 to 127.0.0.1, ip6tables IPv6 to ::1.
        "args": ["--outbound", f"127.0.0.1:{OUTBOUND_PORT}", "--outbound", f"[::1]:{OUTBOUND_PORT}",
                 "--admin", f"0.0.0.0:{ADMIN_PORT}", "--shm", "mulligan-policy"],
        "ports": [{"name": "mulligan-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": ADMIN_PORT}, "periodSeconds": 2,
                           "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": ADMIN_PORT}, "periodSeconds": 10},
        "securityContext": {
            "runAsUser": PROXY_UID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "50m", "memory": "16Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "mulligan-shm", "mountPath": "/dev/shm"}],
    }
    if native:
        # /healthz answers once the outbound listeners are bound (they are
        # bound before the admin server starts); later init containers and
        # the app wait for it.
        c["startupProbe"] = {"httpGet": {"path": "/healthz", "port": ADMIN_PORT}, "periodSeconds": 1,
                             "failureThreshold": 120}
        c["restartPolicy"] = "Always"
    else:
        lifecycle = {"postStart": {"exec": {"command": hold_until_listening_command()}}}
        if wait_before_exit:
            lifecycle["preStop"] = {"exec": {"command": ["sleep", str(wait_before_exit)]}}
        c["lifecycle"] = lifecycle
    return c


def follow_sidecar_command():
    """The agent of a legacy-mode pod that runs to completion: it runs until
    the sidecar has exited (the job ended it with POST /drain), then ends
    too, so that the pod completes. bash's /dev/tcp watches the admin port."""
    script = ("/usr/local/bin/mulligan-agent \"$@\" & agent=$!; trap 'kill $agent' TERM; seen=0; "
              "while kill -0 $agent 2>/dev/null; do "
              f"if (exec 3<>/dev/tcp/127.0.0.1/{ADMIN_PORT}) 2>/dev/null; then seen=1; "
              "elif [ $seen = 1 ]; then kill $agent; wait $agent; exit 0; fi; sleep 1; done; wait $agent")
    return ["bash", "-c", script, "mulligan-agent"]


def agent_container(image, native, follow_sidecar=False):
    c = {
        "name": "mulligan-agent",
        "image": image,
        "command": follow_sidecar_command() if follow_sidecar else ["/usr/local/bin/mulligan-agent"],
        "args": ["run", "--policy", "/etc/mulligan/policy.toml", "--shm", "mulligan-policy"],
        "securityContext": {
            "runAsUser": AGENT_UID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [
            {"name": "mulligan-shm", "mountPath": "/dev/shm"},
            {"name": "mulligan-policy", "mountPath": "/etc/mulligan", "readOnly": True},
        ],
    }
    if native:
        c["restartPolicy"] = "Always"
    return c


def _reorder_injected(w):
    """An injected pod that another admission webhook changed after us (the
    webhook is reinvoked): in legacy mode an init container added after
    mulligan-init would run with the redirect on and no proxy, so
    mulligan-init moves back to the end. Returns True when it moved."""
    inits = list(w.spec.get("initContainers") or [])
    names = [c.get("name") for c in inits]
    native = any(c.get("name") == "mulligan-sidecar" for c in inits)
    if native or "mulligan-init" not in names or names[-1] == "mulligan-init":
        return False
    i = names.index("mulligan-init")
    w.spec["initContainers"] = inits[:i] + inits[i + 1:] + [inits[i]]
    return True


def _inject_workload(w, options):
    """Injects one pod template in place. Returns (changed, warnings)."""
    s = _settings(w, options)
    if not s["inject"]:
        return False, []
    if w.spec.get("hostNetwork") is True:
        return False, [f"{w.name}: not injected: hostNetwork: true. The pod shares the node's network namespace, "
                       f"so mulligan-init's rules would redirect the node's own traffic (Linkerd refuses such "
                       f"pods, Istio skips them). It is passed through unchanged."]
    if any(c.get("name") in ("mulligan-init", "mulligan-sidecar") for c in _containers(w.spec)):
        return _reorder_injected(w), []  # already injected: injecting twice changes nothing
    warnings = _other_mesh_warnings(w)

    if options.mode == "native":
        native = True
    elif options.mode == "legacy":
        native = False
    elif s["native"] is not None:
        native = s["native"]
    else:
        native = _is_run_to_completion(w)
    follow = not native and _is_run_to_completion(w)
    if follow:
        warnings.append(f"{w.name}: runs to completion with legacy sidecars: the pod will never complete unless "
                        f"its container ends with `curl -X POST http://127.0.0.1:{ADMIN_PORT}/drain` (the sidecar "
                        f"exits, and the agent follows it). Native sidecars (Kubernetes >= 1.29) need nothing.")

    image = options.image
    init = init_container(image, s["ports"], s["cidrs"])
    sidecar = sidecar_container(image, native, s["wait"])
    agent = agent_container(image, native, follow_sidecar=follow)
    user_inits = list(w.spec.get("initContainers") or [])
    user_containers = list(w.spec.get("containers") or [])
    if native:
        w.spec["initContainers"] = [init, agent, sidecar] + user_inits
    else:
        w.spec["initContainers"] = user_inits + [init]
        w.spec["containers"] = [sidecar, agent] + user_containers

    grace = w.spec.get("terminationGracePeriodSeconds")
    needed = DRAIN_TIMEOUT_S + (0 if native else s["wait"])
    if isinstance(grace, int) and grace < needed:
        how = "its drain" if native else f"the preStop wait ({s['wait']} s) and its drain"
        warnings.append(f"{w.name}: terminationGracePeriodSeconds {grace} is shorter than the sidecar's stop "
                        f"({how}, up to {DRAIN_TIMEOUT_S} s): the kubelet may kill it while the app's last calls "
                        f"are in flight; {needed} s or more is safe.")

    volumes = list(w.spec.get("volumes") or [])
    volumes.append({"name": "mulligan-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}})
    volumes.append({"name": "mulligan-policy", "configMap": {"name": s["configmap"]}})
    w.spec["volumes"] = volumes

    meta = w.template.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[PREFIX + "injected"] = "true"
    if not native and user_containers:
        # The sidecar is listed first: kubectl logs/exec without -c still
        # reach the app.
        annotations.setdefault("kubectl.kubernetes.io/default-container", user_containers[0].get("name"))
    if any(k.startswith("prometheus.io/") for k in annotations):
        warnings.append(f"{w.name}: keeps its own prometheus.io/* annotations (the app's metrics); scrape the "
                        f"sidecar's /metrics with scripts/k8s/podmonitor.yaml (port mulligan-admin) instead.")
    else:
        annotations["prometheus.io/scrape"] = "true"
        annotations["prometheus.io/port"] = str(ADMIN_PORT)
        annotations["prometheus.io/path"] = "/metrics"
    meta["annotations"] = annotations
    labels = dict(meta.get("labels") or {})
    labels[PREFIX + "injected"] = "true"
    meta["labels"] = labels
    return True, warnings


def inject_docs(docs, options=None):
    """Injects every workload among YAML documents (List items included);
    other kinds pass through. Returns (new documents, warnings); raises
    InjectError for the first workload that must not be applied as written."""
    options = options or Options()
    out, warnings = [], []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            doc = copy.deepcopy(doc)
            doc["items"], more = inject_docs(doc["items"], options)
            warnings += more
            out.append(doc)
            continue
        if pod_template(doc) is not None:
            doc = copy.deepcopy(doc)
            _, more = _inject_workload(_Workload(doc, pod_template(doc), None), options)
            warnings += more
        out.append(doc)
    return out, warnings


def inject_pod(pod, options=None, namespace=None):
    """Injects one Pod object (as an admission request carries it). Returns
    (new pod, warnings, changed); raises InjectError."""
    pod = copy.deepcopy(pod)
    pod.setdefault("kind", "Pod")
    changed, warnings = _inject_workload(_Workload(pod, pod, namespace), options or Options())
    return pod, warnings, changed


def _pointer(path):
    # RFC 6901 section 3: "~" is "~0" and "/" is "~1" (annotation keys have "/").
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(before, after, path=()):
    """RFC 6902 operations that turn `before` into `after`: objects key by key,
    arrays by their common head and tail with additions and removals in
    between (so inserting containers is a few "add"s, not a rewrite)."""
    if isinstance(before, dict) and isinstance(after, dict):
        ops = []
        for k in before:
            if k not in after:
                ops.append({"op": "remove", "path": _pointer(path + (k,))})
        for k, v in after.items():
            if k not in before:
                ops.append({"op": "add", "path": _pointer(path + (k,)), "value": v})
            else:
                ops += json_patch(before[k], v, path + (k,))
        return ops
    if isinstance(before, list) and isinstance(after, list):
        head = 0
        while head < min(len(before), len(after)) and before[head] == after[head]:
            head += 1
        tail = 0
        while (tail < min(len(before), len(after)) - head
               and before[len(before) - 1 - tail] == after[len(after) - 1 - tail]):
            tail += 1
        old, new = before[head:len(before) - tail], after[head:len(after) - tail]
        ops = []
        both = min(len(old), len(new))
        for i in range(both):
            ops += json_patch(old[i], new[i], path + (head + i,))
        for i in reversed(range(both, len(old))):
            ops.append({"op": "remove", "path": _pointer(path + (head + i,))})
        for i in range(both, len(new)):
            ops.append({"op": "add", "path": _pointer(path + (head + i,)), "value": new[i]})
        return ops
    if before == after and type(before) is type(after):
        return []
    return [{"op": "replace", "path": _pointer(path), "value": after}]
