"""Checks rendered Kubernetes manifests (deploy/k8s) against the code.

    python3 scripts/k8s_consistency.py RENDERED.yaml BIN_DIR

BIN_DIR holds the built binaries (the services and `capi`).

- every queue a KEDA ScaledObject names exists in the bus topology
  (`capi topology`), and is consumed by the Deployment it scales; every
  consumer stage has a ScaledObject, the gateway an HPA on CPU;
- every CAPI_* variable a Deployment sets is a real setting of its service:
  the service binary itself judges, `SERVICE --check-config` with exactly
  that environment (unknown keys, slipped section names, bad values, and settings of
  sections the service does not read are refused);
- every probe, container port, scrape annotation and Service targetPort is
  the port the service listens on (its CAPI_HTTP__PORT);
- readiness is /ready and liveness /health; every Deployment has a PDB and
  a termination grace period covering the drain; every Secret, ConfigMap,
  TriggerAuthentication and Service referred to exists.

Prints one line per problem and exits 1 if there is any. Needs PyYAML (the
kubernetes-validate package brings it).
"""
import base64
import json
import os
import subprocess
import sys

SERVICES = ("webhook-gateway", "chatbot-service", "qualification-agent", "capi-sender", "reports")
# runtime::Runtime::run_until_stopped: 30 s for tasks, 5 s to close the broker connection.
DRAIN_SECONDS = 35
DEFAULT_PREFIX = "capi"


def index(objects):
    by_kind = {}
    for o in objects:
        if o:
            by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    return by_kind


def secret_value(secret, key):
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    if key in secret.get("data", {}):
        return base64.b64decode(secret["data"][key]).decode()
    return None


def container_env(container, kinds, where, problems):
    """The container's environment as the kubelet would build it."""
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            cm = kinds.get("ConfigMap", {}).get(source["configMapRef"]["name"])
            if cm is None:
                problems.append(f"{where}: envFrom ConfigMap {source['configMapRef']['name']} does not exist")
                continue
            env.update(cm.get("data", {}))
        if "secretRef" in source:
            secret = kinds.get("Secret", {}).get(source["secretRef"]["name"])
            if secret is None:
                problems.append(f"{where}: envFrom Secret {source['secretRef']['name']} does not exist")
                continue
            for key in list(secret.get("stringData", {})) + list(secret.get("data", {})):
                env[key] = secret_value(secret, key)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            r = ref["secretKeyRef"]
            secret = kinds.get("Secret", {}).get(r["name"])
            value = secret_value(secret, r["key"]) if secret else None
            if value is None:
                problems.append(f"{where}: {var['name']} refers to Secret {r['name']} key {r['key']}, which does not exist")
                continue
            env[var["name"]] = value
        elif "configMapKeyRef" in ref:
            r = ref["configMapKeyRef"]
            cm = kinds.get("ConfigMap", {}).get(r["name"])
            if cm is None or r["key"] not in cm.get("data", {}):
                problems.append(f"{where}: {var['name']} refers to ConfigMap {r['name']} key {r['key']}, which does not exist")
                continue
            env[var["name"]] = cm["data"][r["key"]]
    return env


def service_of(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    args = containers[0].get("args") or containers[0].get("command") or []
    return args[0] if args else None


def check_config(bin_dir, service, env):
    """The service's own verdict on an environment: None when valid, else its message."""
    clean = {k: v for k, v in env.items() if k.startswith("CAPI_")}
    clean["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    run = subprocess.run([os.path.join(bin_dir, service), "--check-config"], env=clean,
                         capture_output=True, text=True, timeout=60)
    return None if run.returncode == 0 else (run.stderr.strip() or run.stdout.strip())


def port_of(container, port):
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def topology_from(bin_dir):
    """`capi topology --prefix P`: the queues the code declares under a prefix."""
    def topology(prefix):
        run = subprocess.run([os.path.join(bin_dir, "capi"), "topology", "--prefix", prefix],
                             capture_output=True, text=True, timeout=60, check=True)
        return json.loads(run.stdout)
    return topology


def check(objects, topology, bin_dir=None):
    """Problems found; `topology(prefix)` gives the bus topology, `bin_dir`
    (optional) the service binaries that judge each Deployment's settings."""
    problems = []
    kinds = index(objects)
    deployments = kinds.get("Deployment", {})
    consumers = {q["consumer"] for q in topology(DEFAULT_PREFIX)["queues"]}

    listen = {}
    for name, d in deployments.items():
        where = f"Deployment {name}"
        service = service_of(d)
        if service not in SERVICES:
            problems.append(f"{where}: runs {service!r}, not one of {', '.join(SERVICES)}")
            continue
        spec = d["spec"]["template"]["spec"]
        container = spec["containers"][0]
        env = container_env(container, kinds, where, problems)
        listen[name] = (service, env, container, d)
        if bin_dir:
            verdict = check_config(bin_dir, service, env)
            if verdict:
                problems.append(f"{where}: {verdict}")
        port = int(env.get("CAPI_HTTP__PORT", "8080"))  # the image's ENV sets 8080
        for kind, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            probe = container.get(kind)
            if not probe or "httpGet" not in probe:
                problems.append(f"{where}: no HTTP {kind}")
                continue
            if probe["httpGet"].get("path") != path:
                problems.append(f"{where}: {kind} asks {probe['httpGet'].get('path')}, should ask {path}")
            if port_of(container, probe["httpGet"].get("port")) != port:
                problems.append(f"{where}: {kind} port {probe['httpGet'].get('port')} is not the service's port {port}")
        for p in container.get("ports", []):
            if p["containerPort"] != port:
                problems.append(f"{where}: containerPort {p['containerPort']} is not the service's port {port}")
        scrape = d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/port")
        if scrape is None:
            problems.append(f"{where}: not scraped by Prometheus (no prometheus.io/port annotation)")
        elif int(scrape) != port:
            problems.append(f"{where}: prometheus.io/port {scrape} is not the service's port {port}")
        if spec.get("terminationGracePeriodSeconds", 30) < DRAIN_SECONDS:
            problems.append(f"{where}: terminationGracePeriodSeconds {spec.get('terminationGracePeriodSeconds', 30)} "
                            f"is shorter than the drain ({DRAIN_SECONDS} s)")
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        pdbs = [p for p in kinds.get("PodDisruptionBudget", {}).values()
                if p["spec"]["selector"].get("matchLabels", {}).items() <= labels.items()]
        if not pdbs:
            problems.append(f"{where}: no PodDisruptionBudget selects its pods")
        for s_name, svc in kinds.get("Service", {}).items():
            selector = svc["spec"].get("selector", {})
            if selector and selector.items() <= labels.items():
                for p in svc["spec"]["ports"]:
                    target = port_of(container, p.get("targetPort", p["port"]))
                    if target != port:
                        problems.append(f"Service {s_name}: targetPort {p.get('targetPort')} is not {name}'s port {port}")

    scaled = {}
    auths = kinds.get("TriggerAuthentication", {})
    for name, so in kinds.get("ScaledObject", {}).items():
        where = f"ScaledObject {name}"
        target = so["spec"]["scaleTargetRef"]["name"]
        if target not in listen:
            problems.append(f"{where}: scales Deployment {target}, which does not exist")
            continue
        service, env, _, _ = listen[target]
        scaled[service] = name
        prefix = env.get("CAPI_AMQP__PREFIX", DEFAULT_PREFIX)
        queues = {q["name"]: q for q in topology(prefix)["queues"]}
        for t in so["spec"].get("triggers", []):
            if t.get("type") != "rabbitmq":
                problems.append(f"{where}: trigger type {t.get('type')!r}, expected rabbitmq (queue length)")
                continue
            meta = t.get("metadata", {})
            queue = meta.get("queueName")
            if queue not in queues:
                problems.append(f"{where}: queue {queue!r} does not exist in the bus topology "
                                f"(prefix {prefix!r}: {', '.join(sorted(queues))})")
            elif queues[queue]["consumer"] != service:
                problems.append(f"{where}: queue {queue} is consumed by {queues[queue]['consumer']}, not {service}")
            if meta.get("mode") != "QueueLength" or not str(meta.get("value", "")).isdigit():
                problems.append(f"{where}: trigger on {queue} needs mode QueueLength and a numeric value")
            auth = t.get("authenticationRef", {}).get("name")
            if auth not in auths:
                problems.append(f"{where}: authenticationRef {auth!r} does not exist")
    for name, auth in auths.items():
        for ref in auth["spec"].get("secretTargetRef", []):
            secret = kinds.get("Secret", {}).get(ref["name"])
            if secret is None or secret_value(secret, ref["key"]) is None:
                problems.append(f"TriggerAuthentication {name}: Secret {ref['name']} key {ref['key']} does not exist")
    for service in sorted(consumers):
        if service not in scaled:
            problems.append(f"{service} consumes queues but no ScaledObject scales it")
    hpas = [h for h in kinds.get("HorizontalPodAutoscaler", {}).values()
            if h["spec"]["scaleTargetRef"]["name"] == "webhook-gateway"
            and any(m.get("resource", {}).get("name") == "cpu" for m in h["spec"].get("metrics", []))]
    if "webhook-gateway" in deployments and not hpas:
        problems.append("webhook-gateway has no HorizontalPodAutoscaler on CPU")

    for name, ing in kinds.get("Ingress", {}).items():
        for rule in ing["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                svc = kinds.get("Service", {}).get(backend["name"])
                if svc is None:
                    problems.append(f"Ingress {name}: {path['path']} goes to Service {backend['name']}, which does not exist")
                elif not any(p.get("name") == backend["port"].get("name") or p["port"] == backend["port"].get("number")
                             for p in svc["spec"]["ports"]):
                    problems.append(f"Ingress {name}: {path['path']} names a port Service {backend['name']} does not have")
    return problems


def main(argv):
    import yaml

    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        objects = list(yaml.safe_load_all(f))
    problems = check(objects, topology_from(argv[1]), argv[1])
    for p in problems:
        print(f"{argv[0]}: {p}")
    if not problems:
        print(f"{argv[0]}: consistent with the code ({len(objects)} objects)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
