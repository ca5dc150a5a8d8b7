#!/usr/bin/python3
"""Checks deploy/kubernetes/ and deploy/prometheus/ for the mistakes that drop
requests or lose metrics, and against the image that docker/Dockerfile builds.

The Deployment: probes ask seqserve's health on its gRPC port (the native
gRPC probe, or seqclient health in the container), the grace period covers
the server's drain plus shutdown grace (seqserve's own defaults where the
manifest leaves a flag out), rolling updates keep every ready pod, the
image comes from kustomization's images: entry. Both Services select the
pods and expose both ports (grpc 8500, http 8501, with appProtocol), one of
them headless. The autoscaler targets the Deployment on CPU and on
seqserve_inflight_requests, a metric seqserve exports and
deploy/prometheus/adapter-values.yaml serves under that name. Every file of
a kustomization directory is used by it (or is an *.example.yaml).
Against the image: the container ports are ones the image EXPOSEs and its
ENTRYPOINT listens on, the pod runs as the image's USER, the repository is
mounted read-only where the ENTRYPOINT reads it (from a read-only volume
claim, or from an emptyDir an init container fills), the containers are
locked down (read-only root, no capabilities, RuntimeDefault seccomp,
non-root), and seqserve starts with the ENTRYPOINT's flags followed by the
manifest's args.
deploy/prometheus: the PodMonitors match the Prometheus Operator's CRD
schemas (tests/deploy/validate-monitors.mjs, npm packages from
tests/deploy/package-lock.json) and scrape the container port named http;
promtool accepts the scrape configurations.

check_overlays.py runs the same checks on every overlay as kubectl renders it.
Usage: check_manifests.py REPO_ROOT SEQSERVE_BINARY
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
INFLIGHT = "seqserve_inflight_requests"


class Problems(list):
    def check(self, condition, message):
        if not condition:
            self.append(message)
        return condition


def image_facts(root):
    """EXPOSE, USER and ENTRYPOINT of the Dockerfile's final stage."""
    dockerfile = open(os.path.join(root, "docker/Dockerfile")).read()
    final = dockerfile[dockerfile.rindex("\nFROM "):]
    expose = [int(p) for p in re.search(r"^EXPOSE ([\d ]+)$", final, re.M).group(1).split()]
    user = re.search(r"^USER (\d+)(?::(\d+))?", final, re.M)
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", final, re.M).group(1))
    return {"expose": expose, "uid": int(user.group(1)), "gid": int(user.group(2) or user.group(1)),
            "entrypoint": entrypoint}


def flag_defaults(seqserve):
    """seqserve's flags and their defaults, from --helpfull."""
    text = subprocess.run([seqserve, "--helpfull"], capture_output=True, text=True).stdout
    # Help text wraps: "default:" may start the next line.
    return dict(re.findall(r'^\s+--(\w+) \(.*?\);\s+default: "?([^;"]*)"?;', text, re.M | re.S))


def flag_values(flags):
    """--name=value flags as a dict; a later one wins, as in seqserve."""
    return {m.group(1): m.group(2) for flag in flags
            for m in [re.match(r"--(\w+)=(.*)$", flag)] if m}


def load_documents(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def by_kind(documents):
    kinds = {}
    for doc in documents:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def kustomization_uses_every_file(directory, problems):
    """Every YAML file beside kustomization.yaml is a resource, a patch or a
    generator's file of it, or an *.example.yaml shown but not applied."""
    kustomization = load_documents(os.path.join(directory, "kustomization.yaml"))[0]
    used = set(kustomization.get("resources", []))
    used |= {p["path"] for p in kustomization.get("patches", []) if "path" in p}
    used |= set(kustomization.get("patchesStrategicMerge", []))
    for name in sorted(os.listdir(directory)):
        if (name.endswith(".yaml") and name != "kustomization.yaml"
                and not name.endswith(".example.yaml")):
            problems.check(name in used, f"{name} is not used by {directory}/kustomization.yaml")
    return kustomization


def locked_down(name, container, pod_security, facts, problems):
    security = {**pod_security, **container.get("securityContext", {})}
    own = container.get("securityContext", {})
    problems.check(security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot is not set")
    problems.check(security.get("runAsUser") == facts["uid"],
                   f"{name}: runAsUser is not the image's USER {facts['uid']}")
    problems.check(security.get("runAsGroup") == facts["gid"],
                   f"{name}: runAsGroup is not the image's group {facts['gid']}")
    problems.check(security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
                   f"{name}: seccompProfile is not RuntimeDefault")
    problems.check(own.get("readOnlyRootFilesystem") is True, f"{name}: the root filesystem is writable")
    problems.check(own.get("allowPrivilegeEscalation") is False, f"{name}: privilege escalation is allowed")
    problems.check(own.get("capabilities", {}).get("drop") == ["ALL"],
                   f"{name}: capabilities are not all dropped")


def probe_problems(probe_name, probe, grpc_port, tls):
    """What is wrong with a probe: it must ask seqserve's health on the gRPC
    port, natively (plaintext only) or with seqclient in the container."""
    if "grpc" in probe:
        if tls:
            return f"{probe_name}: a native gRPC probe speaks plaintext, the server TLS"
        if probe["grpc"].get("port") != grpc_port:
            return f"{probe_name} is not a gRPC probe on port {grpc_port}"
        return None
    command = probe.get("exec", {}).get("command", [])
    if not command or command[0] != "seqclient" or command[-1] != "health":
        return f"{probe_name} neither is a gRPC probe nor runs seqclient health"
    if f"--target=127.0.0.1:{grpc_port}" not in command:
        return f"{probe_name}: seqclient does not ask 127.0.0.1:{grpc_port}"
    if tls and not any(c.startswith("--tls_ca_file=") for c in command):
        return f"{probe_name}: seqclient does not speak TLS to a TLS server"
    return None


def check_deployment_objects(documents, facts, defaults, problems):
    """The checks shared by the base and every rendered overlay. Returns the
    Deployment, its seqserve container, and what seqserve starts with."""
    kinds = by_kind(documents)
    problems.check(len(kinds.get("Deployment", [])) == 1, "expected one Deployment")
    deployment = kinds["Deployment"][0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    problems.check(deployment["spec"]["selector"]["matchLabels"] == labels,
                   "Deployment selector does not match its pod labels")
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "seqserve")
    problems.check(container["image"].split(":")[0].split("/")[-1] == "seqserve",
                   f"the seqserve container runs {container['image']}")
    problems.check(not container.get("command"), "command replaces the image's ENTRYPOINT")
    flags = facts["entrypoint"][1:] + container.get("args", [])
    values = flag_values(flags)
    tls = bool(values.get("tls_cert_file"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    grpc_port, http_port = ports.get("grpc"), ports.get("http")
    problems.check(grpc_port == int(values.get("port", defaults["port"])),
                   f"container port grpc {grpc_port} is not where seqserve listens")
    problems.check(http_port == int(values.get("http_port", defaults["http_port"])),
                   f"container port http {http_port} is not where seqserve serves HTTP")
    problems.check(set(ports.values()) <= set(facts["expose"]),
                   f"containerPorts {sorted(ports.values())} are not all in the image's EXPOSE "
                   f"{facts['expose']}")
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        problems.check(probe_name in container, f"no {probe_name}")
        wrong = probe_problems(probe_name, container.get(probe_name, {}), grpc_port, tls)
        problems.check(wrong is None, wrong)

    needed = (float(values.get("drain_seconds", defaults["drain_seconds"]))
              + float(values.get("shutdown_grace_seconds", defaults["shutdown_grace_seconds"])))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    problems.check(grace > needed, f"terminationGracePeriodSeconds {grace} does not cover "
                                   f"drain + grace = {needed}")
    problems.check(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0,
                   "rolling updates may take ready pods away")
    problems.check(container["resources"]["requests"].get("cpu"),
                   "no CPU request (the HPA needs one)")

    pod_security = pod.get("securityContext", {})
    locked_down("container seqserve", container, pod_security, facts, problems)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for each in pod["containers"] + pod.get("initContainers", []):
        for mount in each.get("volumeMounts", []):
            problems.check(mount["name"] in volumes,
                           f"volume {mount['name']} is mounted but not defined")

    repository = values.get("model_repository")
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    problems.check(repository in mounts, f"nothing is mounted at the repository {repository}")
    problems.check(mounts.get(repository, {}).get("readOnly") is True,
                   f"the repository {repository} is not mounted read-only")
    source = volumes.get(mounts.get(repository, {}).get("name"), {})
    claims = {doc["metadata"]["name"] for doc in kinds.get("PersistentVolumeClaim", [])}
    for volume in volumes.values():
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        problems.check(claim is None or claim in claims, f"claim {claim} is not defined")
    if "persistentVolumeClaim" in source:
        problems.check(source["persistentVolumeClaim"].get("readOnly") is True,
                       "the repository's volume claim is not read-only")
    elif "emptyDir" in source:
        fillers = [c for c in pod.get("initContainers", [])
                   for m in c.get("volumeMounts", [])
                   if m["name"] == source["name"] and not m.get("readOnly")]
        problems.check(len(fillers) == 1,
                       "the repository is an emptyDir that no init container fills")
        for filler in fillers:
            check_object_store_copy(filler, source["name"], documents, problems)
            locked_down(f"init container {filler['name']}", filler, pod_security, facts, problems)
    else:
        problems.check(False, f"the repository's volume is neither a claim nor an emptyDir: {source}")

    services = kinds.get("Service", [])
    problems.check(len(services) == 2, "expected a regular and a headless Service")
    problems.check(any(s["spec"].get("clusterIP") == "None" for s in services),
                   "no headless Service for client-side round_robin")
    for service in services:
        name = service["metadata"]["name"]
        problems.check(service["spec"]["selector"] == labels, f"Service {name} does not select the pods")
        exposed = {p["name"]: p for p in service["spec"]["ports"]}
        for port_name, protocol in (("grpc", "grpc"), ("http", "http")):
            port = exposed.get(port_name)
            if not problems.check(port is not None, f"Service {name} does not expose {port_name}"):
                continue
            problems.check(port["targetPort"] in (port_name, ports.get(port_name)),
                           f"Service {name} port {port_name} targets another port")
            problems.check(port["port"] == ports.get(port_name),
                           f"Service {name} port {port_name} is {port['port']}, "
                           f"the container's {ports.get(port_name)}")
            problems.check(port.get("appProtocol") == protocol,
                           f"Service {name} port {port_name} has no appProtocol {protocol}")

    hpas = kinds.get("HorizontalPodAutoscaler", [])
    if problems.check(len(hpas) == 1, "expected one HorizontalPodAutoscaler"):
        hpa = hpas[0]
        problems.check(hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"],
                       "the autoscaler targets another Deployment")
        metrics = hpa["spec"].get("metrics", [])
        problems.check(any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics),
                       "the autoscaler does not scale on CPU")
        pods_metrics = [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"]
        problems.check(pods_metrics == [INFLIGHT],
                       f"the autoscaler's Pods metrics are {pods_metrics}, not [{INFLIGHT}]")
    for pdb in kinds.get("PodDisruptionBudget", []):
        problems.check(pdb["spec"]["selector"]["matchLabels"] == labels,
                       "the PodDisruptionBudget does not select the pods")
        problems.check(pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"],
                       "the PodDisruptionBudget lets no pod be evicted")
    return deployment, container, flags


def check_object_store_copy(filler, volume, documents, problems):
    """The init container copies SEQSERVE_MODELS_URI into its mount of the
    repository's volume, from a ConfigMap and credentials the pod names."""
    mount = next(m["mountPath"] for m in filler["volumeMounts"] if m["name"] == volume)
    args = filler.get("args", [])
    problems.check(args[:2] == ["s3", "sync"] and len(args) >= 4 and args[3] == mount,
                   f"init container {filler['name']} does not sync into {mount}: {args}")
    variable = re.fullmatch(r"\$\((\w+)\)", args[2] if len(args) > 2 else "")
    maps = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "ConfigMap"}
    sources = [maps.get(e["configMapRef"]["name"], {}).get("data", {})
               for e in filler.get("envFrom", []) if "configMapRef" in e]
    problems.check(variable and any(variable.group(1) in s for s in sources),
                   f"init container {filler['name']}: the bucket {args[2:3]} is not a variable of "
                   f"a ConfigMap it reads")
    for source in sources:
        for value in source.values():
            problems.check(value.startswith("s3://"), f"{value} is not an s3:// URI")
    problems.check(any("secretRef" in e for e in filler.get("envFrom", [])),
                   f"init container {filler['name']} reads no credentials Secret")
    problems.check(not filler.get("image", "").endswith(":latest") and ":" in filler.get("image", ""),
                   f"init container {filler['name']} runs an unpinned image {filler.get('image')}")


def start(seqserve, flags, root, timeout=20):
    """Starts seqserve with FLAGS (ports picked free, the sample repository).
    Returns (process, grpc port, http port), or (None, what it printed)."""
    flags = flags + ["--port=0", "--http_port=0",
                     f"--model_repository={os.path.join(root, 'models')}"]
    process = subprocess.Popen([seqserve] + flags, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        output.append(line)
        listening = re.search(r"listening on [\d.]+:(\d+), HTTP on [\d.]+:(\d+)", line)
        if listening:
            return process, int(listening.group(1)), int(listening.group(2))
        if time.monotonic() > deadline:
            break
    stop(process)
    return None, "".join(output) or f"exit code {process.returncode}"


def stop(process):
    process.kill()
    process.wait()


def exported_metrics(http_port, headers=None, context=None, scheme="http", host="127.0.0.1"):
    """Metric names seqserve exports once SERVING (waits for it)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"{scheme}://{host}:{http_port}/readyz")
            if urllib.request.urlopen(request, timeout=2, context=context).status == 200:
                break
        except Exception:
            time.sleep(0.1)
    request = urllib.request.Request(f"{scheme}://{host}:{http_port}/metrics", headers=headers or {})
    text = urllib.request.urlopen(request, timeout=5, context=context).read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def validate_monitors(root, problems):
    """The PodMonitors against the Prometheus Operator's CRD schemas."""
    directory = os.path.join(root, "deploy/prometheus")
    entries = [{"where": f"deploy/prometheus/{name}", "document": doc}
               for name in sorted(os.listdir(directory)) if name.endswith(".yaml")
               for doc in load_documents(os.path.join(directory, name))
               if doc.get("apiVersion", "").startswith("monitoring.coreos.com/")]
    problems.check(len(entries) >= 2, f"expected a plain and a TLS PodMonitor, found {len(entries)}")
    if not os.path.isdir(os.path.join(HERE, "node_modules/@kubernetes-models/prometheus-operator")):
        problems.append("tests/deploy/node_modules is missing: run "
                        "(cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error)")
        return entries
    result = subprocess.run(["node", os.path.join(HERE, "validate-monitors.mjs")],
                            input=json.dumps(entries), capture_output=True, text=True, cwd=HERE)
    if result.returncode == 0:
        print(result.stdout.strip())
    else:
        problems.extend(line for line in (result.stdout + result.stderr).splitlines() if line)
    return entries


def promtool_accepts(config, files_dir, problems, where):
    """promtool check config on a scrape configuration, with its Kubernetes
    discovery (which Debian's Prometheus is built without) swapped for a
    static target and its /etc/prometheus/SECRET/KEY files for ones in
    FILES_DIR/SECRET/KEY."""
    promtool = shutil.which("promtool")
    if not problems.check(promtool, "no promtool on PATH (Debian package prometheus)"):
        return
    text = json.dumps(config)
    text = text.replace('"/etc/prometheus/', json.dumps(files_dir + "/")[:-1])
    config = json.loads(text)
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs", None)
        job["static_configs"] = [{"targets": ["127.0.0.1:8501"]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config, f)
    result = subprocess.run([promtool, "check", "config", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    problems.check(result.returncode == 0, f"{where}: promtool: {result.stdout}{result.stderr}")


def secret_files(directory):
    """Stand-ins for the Secrets the manifests and scrapes name, made with
    the openssl command: a CA and a certificate for "seqserve" (seqserve-tls:
    tls.crt, tls.key, ca.crt), a token listed in seqserve-tokens (tokens)
    and alone in seqserve-metrics-token (token). Returns the token."""
    tls = os.path.join(directory, "seqserve-tls")
    for name in ("seqserve-tls", "seqserve-tokens", "seqserve-metrics-token"):
        os.makedirs(os.path.join(directory, name), exist_ok=True)
    run = lambda *args: subprocess.run(args, check=True, capture_output=True, cwd=directory)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *curve, "-keyout", "ca.key", "-out", f"{tls}/ca.crt",
        "-days", "1", "-subj", "/CN=seqserve test CA")
    run("openssl", "req", *curve, "-keyout", f"{tls}/tls.key", "-out", "server.csr",
        "-subj", "/CN=seqserve")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:seqserve\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", f"{tls}/ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{tls}/tls.crt", "-days", "1", "-extfile", "san.ext")
    token = os.urandom(16).hex()
    with open(os.path.join(directory, "seqserve-tokens/tokens"), "w") as f:
        f.write(f"prometheus:{token}\n")
    with open(os.path.join(directory, "seqserve-metrics-token/token"), "w") as f:
        f.write(token)
    return token


def check_prometheus(root, deployment, container, exported, problems):
    """deploy/prometheus against the base Deployment and what seqserve exports."""
    monitors = validate_monitors(root, problems)
    ports = {p["name"] for p in container["ports"]}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for entry in monitors:
        spec = entry["document"]["spec"]
        problems.check(spec["selector"]["matchLabels"].items() <= labels.items(),
                       f"{entry['where']} does not select the pods")
        for endpoint in spec["podMetricsEndpoints"]:
            problems.check(endpoint.get("port") in ports,
                           f"{entry['where']} scrapes port {endpoint.get('port')}, not a container port")
    directory = os.path.join(root, "deploy/prometheus")
    with tempfile.TemporaryDirectory() as files:
        secret_files(files)
        for name in ("scrape-config.yaml", "scrape-config-tls.yaml"):
            promtool_accepts(load_documents(os.path.join(directory, name))[0], files, problems, name)

    rules = load_documents(os.path.join(directory, "adapter-values.yaml"))[0]["rules"]["custom"]
    served = {}
    for rule in rules:
        series = re.match(r"(\w+)\{", rule["seriesQuery"]).group(1)
        served[rule["name"]["as"]] = series
        problems.check(series in exported, f"adapter-values.yaml asks for {series}, which seqserve "
                                           f"does not export")
        problems.check(set(rule["resources"]["overrides"]) == {"namespace", "pod"},
                       "the adapter's rule does not map the namespace and pod labels")
        for label in ("namespace", "pod"):
            problems.check(f'{label}!=""' in rule["seriesQuery"],
                           f"the adapter's series query does not require a {label} label")
    problems.check(served.get(INFLIGHT) == INFLIGHT,
                   f"adapter-values.yaml does not serve {INFLIGHT} (it serves {served})")
    problems.check(INFLIGHT in exported, f"seqserve does not export {INFLIGHT}")


def main(root, seqserve):
    problems = Problems()
    facts = image_facts(root)
    defaults = flag_defaults(seqserve)
    for flag in ("port", "http_port", "drain_seconds", "shutdown_grace_seconds"):
        problems.check(flag in defaults, f"seqserve --helpfull gives no default for --{flag}")
    if problems:
        return report(problems, 0)

    directory = os.path.join(root, "deploy/kubernetes")
    kustomization = kustomization_uses_every_file(directory, problems)
    documents = [doc for name in kustomization["resources"]
                 for doc in load_documents(os.path.join(directory, name))]
    deployment, container, flags = check_deployment_objects(documents, facts, defaults, problems)
    images = {i["name"]: i for i in kustomization.get("images", [])}
    problems.check("seqserve" in images and {"newName", "newTag"} <= images["seqserve"].keys(),
                   "kustomization.yaml has no images: entry for seqserve with newName and newTag "
                   "(kustomize edit set image writes it)")

    started = start(seqserve, flags, root)
    exported = set()
    if problems.check(started[0] is not None, f"seqserve does not start with the image's "
                                              f"ENTRYPOINT and the manifest's args: {started[-1]}"):
        process, _, http_port = started
        try:
            exported = exported_metrics(http_port)
        finally:
            stop(process)
    check_prometheus(root, deployment, container, exported, problems)
    return report(problems, len(documents))


def report(problems, count):
    for problem in problems:
        print("FAIL:", problem)
    print(f"checked {count} manifests: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
