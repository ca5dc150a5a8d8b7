#!/usr/bin/python3
"""Checks deploy/kubernetes/ for the mistakes that drop requests, and against
the image that docker/Dockerfile builds.

Parses every manifest and checks that the probes use gRPC on the container's
port, the grace period covers the server's drain plus shutdown grace, both
Services select the Deployment's pods (one of them headless), the
autoscaler targets the Deployment, and kustomization lists every file.
Against the image: the container ports are ones the image EXPOSEs and its
ENTRYPOINT listens on (gRPC, HTTP), the pod runs as the image's USER, the repository is
mounted read-only where the ENTRYPOINT reads it, the pod is locked down
(read-only root, no capabilities, RuntimeDefault seccomp, non-root), and
seqserve starts with the ENTRYPOINT's flags followed by the manifest's args.
Usage: check_manifests.py REPO_ROOT SEQSERVE_BINARY
"""
import json
import os
import re
import subprocess
import sys
import time

import yaml

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def image_facts(root):
    """EXPOSE, USER and ENTRYPOINT of the Dockerfile's final stage."""
    dockerfile = open(os.path.join(root, "docker/Dockerfile")).read()
    final = dockerfile[dockerfile.rindex("\nFROM "):]
    expose = [int(p) for p in re.search(r"^EXPOSE ([\d ]+)$", final, re.M).group(1).split()]
    user = re.search(r"^USER (\d+)(?::(\d+))?", final, re.M)
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", final, re.M).group(1))
    return expose, int(user.group(1)), int(user.group(2) or user.group(1)), entrypoint


def starts_with(seqserve, root, flags):
    """Starts seqserve with FLAGS on a free port and the sample repository;
    returns None once it listens, else what it printed."""
    flags = flags + ["--port=0", f"--model_repository={os.path.join(root, 'models')}"]
    process = subprocess.Popen([seqserve] + flags, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    deadline = time.monotonic() + 20
    try:
        for line in process.stdout:
            output.append(line)
            if "listening on" in line:
                return None
            if time.monotonic() > deadline:
                break
        return "".join(output) or f"exit code {process.wait()}"
    finally:
        process.kill()
        process.wait()


def main(root, seqserve):
    directory = os.path.join(root, "deploy/kubernetes")
    documents = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".yaml"):
            with open(os.path.join(directory, name)) as f:
                for doc in yaml.safe_load_all(f):
                    if doc:
                        documents.setdefault(doc["kind"], []).append((name, doc))

    kustomization = documents["Kustomization"][0][1]
    listed = set(kustomization["resources"])
    for kind, entries in documents.items():
        for name, _ in entries:
            check(kind == "Kustomization" or name in listed,
                  f"{name} is not listed in kustomization.yaml")

    deployment = documents["Deployment"][0][1]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    check(deployment["spec"]["selector"]["matchLabels"] == labels,
          "Deployment selector does not match its pod labels")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    port = container["ports"][0]["containerPort"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check(container.get(probe, {}).get("grpc", {}).get("port") == port,
              f"{probe} is not a gRPC probe on port {port}")
    flags = {m.group(1): float(m.group(2)) for arg in container["args"]
             for m in [re.match(r"--(\w+)=([0-9.]+)$", arg)] if m}
    needed = flags.get("drain_seconds", 5) + flags.get("shutdown_grace_seconds", 10)
    check(pod["terminationGracePeriodSeconds"] > needed,
          f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} "
          f"does not cover drain + grace = {needed}")
    check(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0,
          "rolling updates may take ready pods away")
    check(container["resources"]["requests"].get("cpu"), "no CPU request (the HPA needs one)")

    services = [doc for _, doc in documents["Service"]]
    check(len(services) == 2, "expected a regular and a headless Service")
    check(any(s["spec"].get("clusterIP") == "None" for s in services),
          "no headless Service for client-side round_robin")
    for service in services:
        check(service["spec"]["selector"] == labels,
              f"Service {service['metadata']['name']} does not select the pods")
        check(service["spec"]["ports"][0]["targetPort"] in ("grpc", port),
              f"Service {service['metadata']['name']} targets another port")

    expose, uid, gid, entrypoint = image_facts(root)
    exposed = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(set(exposed.values()) <= set(expose),
          f"containerPorts {sorted(exposed.values())} are not all in the image's EXPOSE {expose}")
    check(f"--port={port}" in entrypoint, f"the image's ENTRYPOINT does not listen on {port}")
    if "http" in exposed:
        check(f"--http_port={exposed['http']}" in entrypoint,
              f"the image's ENTRYPOINT does not serve HTTP on {exposed['http']}")
    pod_security = pod.get("securityContext", {})
    container_security = container.get("securityContext", {})
    security = {**pod_security, **container_security}
    check(security.get("runAsNonRoot") is True, "runAsNonRoot is not set")
    check(security.get("runAsUser") == uid, f"runAsUser is not the image's USER {uid}")
    check(security.get("runAsGroup") == gid, f"runAsGroup is not the image's group {gid}")
    check(security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          "seccompProfile is not RuntimeDefault")
    check(container_security.get("readOnlyRootFilesystem") is True,
          "the root filesystem is writable")
    check(container_security.get("allowPrivilegeEscalation") is False,
          "privilege escalation is allowed")
    check(container_security.get("capabilities", {}).get("drop") == ["ALL"],
          "capabilities are not all dropped")
    check(not container.get("command"), "command replaces the image's ENTRYPOINT")
    repository = next((flag.split("=", 1)[1] for flag in entrypoint + container["args"]
                       if flag.startswith("--model_repository=")), None)
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    check(repository in mounts, f"nothing is mounted at the repository {repository}")
    check(mounts.get(repository, {}).get("readOnly") is True,
          f"the repository {repository} is not mounted read-only")
    refused = starts_with(seqserve, root, entrypoint[1:] + container["args"])
    check(refused is None, f"seqserve does not start with the image's ENTRYPOINT and the "
                           f"manifest's args: {refused}")

    hpa = documents["HorizontalPodAutoscaler"][0][1]
    check(hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"],
          "the autoscaler targets another Deployment")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        check(mount["name"] in volumes, f"volume {mount['name']} is mounted but not defined")
    repository_mount = mounts.get(repository, {}).get("name")
    claim_source = volumes.get(repository_mount, {}).get("persistentVolumeClaim")
    check(claim_source is None or claim_source.get("readOnly") is True,
          "the repository's volume claim is not read-only")
    claims = {doc["metadata"]["name"] for _, doc in documents.get("PersistentVolumeClaim", [])}
    for volume in volumes.values():
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        check(claim is None or claim in claims, f"claim {claim} is not defined")

    for problem in problems:
        print("FAIL:", problem)
    print(f"checked {sum(len(v) for v in documents.values())} manifests: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
