#!/usr/bin/python3
"""Checks deploy/kubernetes/ for the mistakes that drop requests.

Parses every manifest and checks that the probes use gRPC on the container's
port, the grace period covers the server's drain plus shutdown grace, both
Services select the Deployment's pods (one of them headless), the
autoscaler targets the Deployment, and kustomization lists every file.
Usage: check_manifests.py REPO_ROOT
"""
import os
import re
import sys

import yaml

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def main(root):
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
    needed = flags.get("drain_seconds", 0) + flags.get("shutdown_grace_seconds", 10)
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

    hpa = documents["HorizontalPodAutoscaler"][0][1]
    check(hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"],
          "the autoscaler targets another Deployment")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        check(mount["name"] in volumes, f"volume {mount['name']} is mounted but not defined")
    claims = {doc["metadata"]["name"] for _, doc in documents.get("PersistentVolumeClaim", [])}
    for volume in volumes.values():
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        check(claim is None or claim in claims, f"claim {claim} is not defined")

    for problem in problems:
        print("FAIL:", problem)
    print(f"checked {sum(len(v) for v in documents.values())} manifests: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
