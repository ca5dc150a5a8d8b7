#!/usr/bin/python3
"""deploy/compose.yaml against the proxy configuration it runs and the image.

The proxy service mounts deploy/haproxy/haproxy.cfg (the configuration the
proxy drill runs) and sets every environment variable it reads; each
replica address names a seqserve service on the port the image's
ENTRYPOINT listens on (gRPC 8500, HTTP 8501); the replicas' flags are ones
seqserve accepts; and the stop grace covers the drain plus the shutdown
grace, so a stop never kills a replica that is still answering.
Usage: check_compose.py REPO_ROOT SEQSERVE_BINARY
"""
import json
import os
import re
import subprocess
import sys

import yaml

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def seconds(duration):
    match = re.fullmatch(r"(\d+)s", str(duration))
    return int(match.group(1)) if match else 0


def main():
    root, seqserve = sys.argv[1], sys.argv[2]
    compose = yaml.safe_load(open(os.path.join(root, "deploy/compose.yaml")))
    config = open(os.path.join(root, "deploy/haproxy/haproxy.cfg")).read()
    dockerfile = open(os.path.join(root, "docker/Dockerfile")).read()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", dockerfile, re.M).group(1))
    ports = {flag.split("=")[0]: int(flag.split("=")[1]) for flag in entrypoint
             if flag.startswith(("--port=", "--http_port="))}
    help_text = subprocess.run([seqserve, "--help"], capture_output=True, text=True).stdout

    services = compose["services"]
    replicas = {name: service for name, service in services.items()
                if service.get("image", "").startswith("seqserve")}
    check(len(replicas) == 3, f"{len(replicas)} seqserve services, not 3")
    proxy = services.get("proxy", {})
    check("./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy.get("volumes", []),
          "the proxy does not mount deploy/haproxy/haproxy.cfg where the image reads it")
    environment = proxy.get("environment", {})
    for name in sorted(set(re.findall(r"\$\{(\w+)\}", config))):
        check(name in environment, f"haproxy.cfg reads ${{{name}}}; the proxy service sets none")
    for name, value in environment.items():
        match = re.fullmatch(r"SEQSERVE_\d+_(GRPC|HTTP)", name)
        if not match:
            continue
        host, _, port = value.rpartition(":")
        check(host in replicas, f"{name}={value} names no seqserve service")
        wanted = ports["--port" if match.group(1) == "GRPC" else "--http_port"]
        check(port == str(wanted), f"{name}={value}: the image listens on {wanted}")

    for name, service in replicas.items():
        flags = dict(re.fullmatch(r"--(\w+)=(.*)", arg).groups() for arg in service["command"])
        for flag in flags:
            check(f"--{flag}=" in help_text, f"{name}: seqserve has no flag --{flag}")
        needed = float(flags.get("drain_seconds", 5)) + float(flags.get("shutdown_grace_seconds", 10))
        check(seconds(service.get("stop_grace_period")) > needed,
              f"{name}: stop_grace_period {service.get('stop_grace_period')} does not cover "
              f"drain + grace = {needed:g} s")
        check(service.get("volumes") == ["../models:/models:ro"],
              f"{name}: the models are not mounted read-only where the image reads them")

    for problem in problems:
        print(problem)
    print("compose: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
