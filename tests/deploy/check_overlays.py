#!/usr/bin/python3
"""Renders every kustomization under deploy/ with the kubectl on PATH and
checks what it renders as check_manifests.py checks the base; then runs it:
seqserve starts with each overlay's flags (its Secrets' files made here:
a CA and a certificate for "seqserve", a token), each probe's command
answers SERVING, and the overlay's scrape gets /metrics as the server
serves it: the PodMonitor's scheme, CA, server name and token from a
Python client, the file scrape configuration from a real Prometheus (its
Kubernetes discovery swapped for a static target carrying the same
__meta_ labels), which must see the target up and answer the query
deploy/prometheus/adapter-values.yaml gives prometheus-adapter. Last, a
copy of deploy/ with the base's image set as `kustomize edit set image`
sets it renders that image in every overlay.

Exits 77 (skipped) when no kubectl is on PATH.
Usage: check_overlays.py REPO_ROOT SEQSERVE_BINARY
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_manifests as base  # noqa: E402

SKIPPED = 77
NAMESPACE, POD = "default", "seqserve-test"


def kustomization_dirs(root):
    found = []
    for directory, _, files in os.walk(os.path.join(root, "deploy")):
        if "kustomization.yaml" in files:
            kind = base.load_documents(os.path.join(directory, "kustomization.yaml"))[0].get("kind")
            found.append((os.path.relpath(directory, root), kind))
    return sorted(found)


def used_components(root):
    """The components the kustomizations under deploy/ name, as absolute paths."""
    used = set()
    for directory, kind in kustomization_dirs(root):
        kustomization = base.load_documents(os.path.join(root, directory, "kustomization.yaml"))[0]
        for component in kustomization.get("components", []):
            used.add(os.path.normpath(os.path.join(root, directory, component)))
    return used


def render(kubectl, directory):
    result = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip()
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc], None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def path_map(pod, container, files, root):
    """Where each of the container's mounts lives here: a Secret's under
    FILES/<secret name>, the model repository in the repository's models/."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mapping = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"], {}).get("secret", {}).get("secretName")
        mapping[mount["mountPath"]] = (os.path.join(files, secret) if secret
                                       else os.path.join(root, "models"))
    return mapping


def mapped(value, mapping):
    for inside, here in mapping.items():
        if value == inside or value.startswith(inside + "/"):
            return here + value[len(inside):]
    return value


def map_flag(flag, mapping):
    if flag.startswith("--") and "=" in flag:
        name, value = flag.split("=", 1)
        return f"{name}={mapped(value, mapping)}"
    return flag


def run_probes(container, grpc_port, mapping, seqclient, problems):
    """Each probe's command, as the kubelet would run it (native gRPC probes
    as seqclient health in plaintext), until the startup probe passes."""
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[name]
        if "grpc" in probe:
            command = [seqclient, f"--target=127.0.0.1:{grpc_port}", "health"]
        else:
            inside = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
            command = [seqclient] + [map_flag(arg, mapping).replace(
                f"--target=127.0.0.1:{inside}", f"--target=127.0.0.1:{grpc_port}")
                for arg in probe["exec"]["command"][1:]]
        deadline = time.monotonic() + (15 if name == "startupProbe" else 0)
        while True:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        problems.check(result.returncode == 0,
                       f"{name} fails against the running server: {' '.join(command)}: "
                       f"{result.stdout}{result.stderr}")


def secret_key_file(files, selector):
    return os.path.join(files, selector["name"], selector["key"])


def scrape_as_podmonitor(monitor, http_port, files, tokens_on, problems, where):
    """GET /metrics with the PodMonitor endpoint's scheme, path, TLS and token."""
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    scheme = endpoint.get("scheme", "http")
    context = None
    host = "127.0.0.1"
    if scheme == "https":
        tls = endpoint.get("tlsConfig", {})
        context = ssl.create_default_context(cafile=secret_key_file(files, tls["ca"]["secret"]))
        host = tls.get("serverName", host)
    headers = {}
    if "authorization" in endpoint:
        with open(secret_key_file(files, endpoint["authorization"]["credentials"])) as f:
            headers["Authorization"] = f"{endpoint['authorization'].get('type', 'Bearer')} {f.read()}"

    class TlsConnection(http.client.HTTPSConnection):
        """Dials 127.0.0.1, checks the certificate as the serverName."""
        def connect(self):
            http.client.HTTPConnection.connect(self)
            self.sock = context.wrap_socket(self.sock, server_hostname=host)

    def get(with_headers):
        connection = (TlsConnection("127.0.0.1", http_port, timeout=5, context=context) if context
                      else http.client.HTTPConnection("127.0.0.1", http_port, timeout=5))
        try:
            connection.request("GET", endpoint.get("path", "/metrics"), headers=with_headers)
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    status, body = get(headers)
    problems.check(status == 200 and base.INFLIGHT in body,
                   f"{where}: the scrape it describes gets {status} from the server")
    if tokens_on:
        status, _ = get({})
        problems.check(status == 401, f"{where}: without its token the scrape gets {status}, not 401")


def prometheus_scrapes(config, labels, http_port, files, adapter_rule, problems, where):
    """A real Prometheus with the scrape configuration: the target is up and
    prometheus-adapter's query for the pod answers."""
    prometheus = shutil.which("prometheus")
    if not problems.check(prometheus, "no prometheus on PATH (Debian package prometheus)"):
        return
    text = json.dumps(config).replace('"/etc/prometheus/', json.dumps(files + "/")[:-1])
    config = json.loads(text)
    meta = {f"__meta_kubernetes_pod_label_{k}": v for k, v in labels.items()}
    meta.update({"__meta_kubernetes_pod_container_port_name": "http",
                 "__meta_kubernetes_namespace": NAMESPACE, "__meta_kubernetes_pod_name": POD})
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{http_port}"], "labels": meta}]
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "prometheus.yaml"), "w") as f:
            yaml.safe_dump(config, f)
        port = free_port()
        process = subprocess.Popen(
            [prometheus, f"--config.file={directory}/prometheus.yaml",
             f"--storage.tsdb.path={directory}/data", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(directory, "log"), "w"))

        def query(promql):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
            try:
                return json.load(urllib.request.urlopen(url, timeout=2))["data"]["result"]
            except Exception:
                return []

        try:
            deadline = time.monotonic() + 40
            up = []
            while time.monotonic() < deadline:
                up = query(f'up{{job="seqserve",namespace="{NAMESPACE}",pod="{POD}"}}')
                if up and up[0]["value"][1] == "1":
                    break
                time.sleep(0.5)
            if not problems.check(up and up[0]["value"][1] == "1",
                                  f"{where}: Prometheus does not see the server up: {up}"):
                targets = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets").read()
                problems.append(f"{where}: targets: {targets.decode()[:1000]}")
                return
            promql = (adapter_rule["metricsQuery"]
                      .replace("<<.Series>>", base.INFLIGHT)
                      .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"{POD}"')
                      .replace("<<.GroupBy>>", "pod"))
            answer = query(promql)
            problems.check([r["metric"].get("pod") for r in answer] == [POD],
                           f"{where}: the adapter's query {promql} answers {answer}")
        finally:
            process.terminate()
            process.wait()


def serve_and_scrape(root, seqserve, facts, documents, deployment, container, flags, problems):
    pod = deployment["spec"]["template"]["spec"]
    seqclient = os.path.join(os.path.dirname(seqserve), "seqclient")
    prometheus_dir = os.path.join(root, "deploy/prometheus")
    with tempfile.TemporaryDirectory() as files:
        base.secret_files(files)
        mapping = path_map(pod, container, files, root)
        values = base.flag_values(flags)
        tls = bool(values.get("tls_cert_file"))
        tokens_on = bool(values.get("auth_tokens_file"))
        started = base.start(seqserve, [map_flag(f, mapping) for f in flags], root)
        if not problems.check(started[0] is not None,
                              f"seqserve does not start with the rendered flags: {started[-1]}"):
            return
        process, grpc_port, http_port = started
        try:
            run_probes(container, grpc_port, mapping, seqclient, problems)
            scheme = "https" if tls else "http"
            monitors = [doc for name in sorted(os.listdir(prometheus_dir)) if name.startswith("podmonitor")
                        for doc in base.load_documents(os.path.join(prometheus_dir, name))
                        if doc["spec"]["podMetricsEndpoints"][0].get("scheme", "http") == scheme]
            if problems.check(len(monitors) == 1, f"expected one {scheme} PodMonitor in deploy/prometheus"):
                scrape_as_podmonitor(monitors[0], http_port, files, tokens_on, problems,
                                     f"the {scheme} PodMonitor")
            config_name = "scrape-config-tls.yaml" if tls else "scrape-config.yaml"
            config = base.load_documents(os.path.join(prometheus_dir, config_name))[0]
            rule = base.load_documents(os.path.join(prometheus_dir, "adapter-values.yaml"))[0]
            prometheus_scrapes(config, deployment["spec"]["template"]["metadata"]["labels"],
                               http_port, files, rule["rules"]["custom"][0], problems,
                               f"deploy/prometheus/{config_name}")
        finally:
            base.stop(process)


def image_is_settable(kubectl, root, overlays, problems):
    """With the base's images: entry as `kustomize edit set image
    seqserve=REGISTRY/seqserve:TAG` writes it, every overlay runs that image."""
    wanted = "registry.example.com/team/seqserve:0.0.0-check"
    with tempfile.TemporaryDirectory() as copy:
        shutil.copytree(os.path.join(root, "deploy"), os.path.join(copy, "deploy"))
        path = os.path.join(copy, "deploy/kubernetes/kustomization.yaml")
        kustomization = base.load_documents(path)[0]
        for image in kustomization.get("images", []):
            if image["name"] == "seqserve":
                image["newName"], image["newTag"] = wanted.rsplit(":", 1)
        with open(path, "w") as f:
            yaml.safe_dump(kustomization, f)
        for overlay in overlays:
            documents, error = render(kubectl, os.path.join(copy, overlay))
            if not problems.check(documents is not None, f"{overlay} does not render: {error}"):
                continue
            for doc in documents:
                if doc["kind"] != "Deployment":
                    continue
                pod = doc["spec"]["template"]["spec"]
                images = {c["name"]: c["image"] for c in pod["containers"] + pod.get("initContainers", [])}
                problems.check(images.get("seqserve") == wanted,
                               f"{overlay}: with the base's image set to {wanted}, seqserve runs "
                               f"{images.get('seqserve')}")
                problems.check(all(image != wanted for name, image in images.items() if name != "seqserve"),
                               f"{overlay}: setting seqserve's image changed another container's")


def main(root, seqserve):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("SKIP: no kubectl on PATH, so the kustomizations under deploy/ were not rendered "
              "(install kubectl, whose kustomize renders them offline)")
        return SKIPPED
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True)
    print(version.stdout.strip().replace("\n", "; "))
    facts = base.image_facts(root)
    defaults = base.flag_defaults(seqserve)
    problems = base.Problems()
    overlays = []
    for directory, kind in kustomization_dirs(root):
        here = base.Problems()
        base.kustomization_uses_every_file(os.path.join(root, directory), here)
        if kind == "Component":
            here.check(os.path.join(root, directory) in used_components(root),
                       "no overlay uses this component")
            print(f"{directory}: a component, checked as the overlays that use it render")
        else:
            documents, error = render(kubectl, os.path.join(root, directory))
            if here.check(documents is not None, f"does not render: {error}"):
                overlays.append(directory)
                deployment, container, flags = base.check_deployment_objects(
                    documents, facts, defaults, here)
                serve_and_scrape(root, seqserve, facts, documents, deployment, container, flags, here)
                print(f"{directory}: rendered {len(documents)} objects, "
                      f"{'TLS' if base.flag_values(flags).get('tls_cert_file') else 'plaintext'}: "
                      f"{len(here)} problems")
        problems.extend(f"{directory}: {p}" for p in here)
    problems.check(len(overlays) >= 4, f"only {len(overlays)} kustomizations rendered")
    image_is_settable(kubectl, root, overlays, problems)
    for problem in problems:
        print("FAIL:", problem)
    print(f"rendered {len(overlays)} kustomizations: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
