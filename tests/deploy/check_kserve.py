#!/usr/bin/env python3
"""deploy/kserve (and its subdirectories) against KServe's CRD schemas and
against seqserve itself, offline.

Usage: check_kserve.py SOURCE_DIR SEQSERVE_BINARY

Each manifest is validated against the openAPIV3Schema of its kind, kept in
tests/deploy/kserve/ (from kserve/kserve charts/kserve-crd, descriptions
removed; the InferenceService copy without canary, explainer and
transformer, which the manifests do not use). The API server would drop a
field its schema does not know, so an unknown field fails here. The
runtime's flags must be ones seqserve accepts.

Then each InferenceService against the runtime it names: the runtime is one
of these manifests, supports its model format and protocol; a runtime used
in Serverless mode (KServe's default, Knative) has exactly one port, since
Knative routes one; every port a runtime declares is where seqserve listens
with the runtime's args (--http_port, --port), named for what it speaks
(http1, h2c); a runtime whose one port is HTTP lists no gRPC protocol.
Last, seqserve runs with each runtime's args (the sample repository as
/mnt/models) and answers what the runtime declares: its probes' paths, and
each InferenceService's protocol on the runtime's ports (v1:
/v1/models/NAME:predict, v2: /v2/models/NAME/infer, grpc-v2: seqclient
classify --protocol v2).
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import jsonschema
import yaml

DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
RAW_MODES = ("RawDeployment", "Standard")
GRPC_PROTOCOLS = ("grpc-v1", "grpc-v2")


def unknown_fields(value, schema, path):
    """Paths in `value` that `schema` does not declare."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
            elif not schema.get("additionalProperties"):
                found.append(f"{path}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            found += unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


def manifests(directory):
    """(relative file name, document) for every YAML document under DIRECTORY."""
    found = []
    for parent, _, files in sorted(os.walk(directory)):
        for file in sorted(files):
            if not file.endswith(".yaml"):
                continue
            path = os.path.join(parent, file)
            with open(path) as f:
                found += [(os.path.relpath(path, directory), d) for d in yaml.safe_load_all(f) if d]
    return found


def flag_values(args):
    return dict(arg[2:].split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)


def consistency(services, runtimes, failures):
    """Each InferenceService against the runtime it names."""
    for where, service in services:
        model = service["spec"]["predictor"]["model"]
        mode = service["metadata"].get("annotations", {}).get(DEPLOYMENT_MODE, "Serverless")
        runtime = runtimes.get(model.get("runtime"))
        if runtime is None:
            failures.append(f"{where}: runtime {model.get('runtime')} is not in deploy/kserve")
            continue
        spec = runtime[1]["spec"]
        if model["modelFormat"]["name"] not in [f["name"] for f in spec["supportedModelFormats"]]:
            failures.append(f"{where}: runtime {model['runtime']} does not support "
                            f"{model['modelFormat']['name']}")
        protocol = model.get("protocolVersion", "v1")
        if protocol not in spec.get("protocolVersions", []):
            failures.append(f"{where}: runtime {model['runtime']} does not list protocol {protocol}")
        ports = spec["containers"][0].get("ports", [])
        if mode not in RAW_MODES and len(ports) != 1:
            failures.append(f"{where}: {mode} (Knative) routes one port, runtime "
                            f"{model['runtime']} declares {len(ports)}")


def runtime_ports(where, runtime, flags, failures):
    """The runtime's ports against seqserve's flags and its protocols."""
    spec = runtime["spec"]
    container = spec["containers"][0]
    values = flag_values(container.get("args", []))
    listens = {"http1": int(values.get("http_port", flags.get("http_port", 8501))),
               "h2c": int(values.get("port", flags.get("port", 8500)))}
    ports = container.get("ports", [])
    for port in ports:
        if port.get("name") not in listens:
            failures.append(f"{where}: port {port.get('containerPort')} is named "
                            f"{port.get('name')}, not http1 or h2c")
        elif port["containerPort"] != listens[port["name"]]:
            failures.append(f"{where}: port {port['name']} is {port['containerPort']}, "
                            f"seqserve serves it on {listens[port['name']]}")
    names = {p.get("name") for p in ports}
    protocols = spec.get("protocolVersions", [])
    if any(p in GRPC_PROTOCOLS for p in protocols) and "h2c" not in names:
        failures.append(f"{where}: lists {protocols} but declares no gRPC (h2c) port")
    if any(p not in GRPC_PROTOCOLS for p in protocols) and "http1" not in names:
        failures.append(f"{where}: lists {protocols} but declares no HTTP (http1) port")
    return {p["name"]: p["containerPort"] for p in ports}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(seqserve, args, models, failures, where):
    """seqserve with the runtime's args, /mnt/models being MODELS, on free
    ports. Returns the process and where each of the runtime's ports is here."""
    values = flag_values(args)
    here = {"http_port": free_port(), "port": free_port()}
    moved = {}
    for flag, port in here.items():
        if flag in values:
            moved[int(values[flag])] = port
    args = [a.replace("/mnt/models", models) for a in args] + [f"--{f}={p}" for f, p in here.items()]
    process = subprocess.Popen([seqserve] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    deadline = time.monotonic() + 20
    for line in process.stdout:
        output.append(line)
        if "listening on" in line:
            return process, moved
        if time.monotonic() > deadline:
            break
    process.kill()
    process.wait()
    failures.append(f"{where}: seqserve does not start with the runtime's args: {''.join(output)}")
    return None, moved


def http(method, url, body=None):
    request = urllib.request.Request(url, method=method, data=body and json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def ask(seqserve, protocol, http_port, grpc_port, model):
    """One call in PROTOCOL; returns (succeeded, what came back)."""
    if protocol == "v1":
        status, body = http("POST", f"http://127.0.0.1:{http_port}/v1/models/{model}:predict",
                            {"instances": [[4, 0, 1]]})
        return status == 200 and '"predictions"' in body, f"{status} {body}"
    if protocol == "v2":
        status, body = http("POST", f"http://127.0.0.1:{http_port}/v2/models/{model}/infer",
                            {"inputs": [{"name": "features", "shape": [1, 3],
                                         "datatype": "FP32", "data": [4, 0, 1]}]})
        return status == 200 and '"outputs"' in body, f"{status} {body}"
    if protocol == "grpc-v2" and grpc_port:
        seqclient = os.path.join(os.path.dirname(seqserve), "seqclient")
        result = subprocess.run([seqclient, f"--target=127.0.0.1:{grpc_port}", "classify",
                                 "--protocol", "v2", "--model", model, "4,0,1"],
                                capture_output=True, text=True, timeout=20)
        return result.returncode == 0, result.stdout + result.stderr
    return False, f"seqserve does not speak {protocol} on the runtime's ports"


def serve(seqserve, source, where, runtime, ports, services, failures):
    """The runtime's server answers its probes, every protocol it lists (on
    the sample model species) and each of its InferenceServices' protocol
    for the model named like the InferenceService."""
    container = runtime["spec"]["containers"][0]
    process, moved = start(seqserve, container.get("args", []), os.path.join(source, "models"),
                           failures, where)
    if process is None:
        return
    try:
        http_port = moved.get(ports.get("http1"))
        grpc_port = moved.get(ports.get("h2c"))
        deadline = time.monotonic() + 20
        while http_port and time.monotonic() < deadline:
            try:
                if http("GET", f"http://127.0.0.1:{http_port}/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        for probe in ("readinessProbe", "livenessProbe"):
            get = container.get(probe, {}).get("httpGet")
            if get:
                if get["port"] not in ports.values():
                    failures.append(f"{where}: {probe} asks port {get['port']}, not a declared one")
                    continue
                status = http("GET", f"http://127.0.0.1:{moved[get['port']]}{get['path']}")[0]
                if status != 200:
                    failures.append(f"{where}: {probe} {get['path']} answers {status}")
        for protocol in runtime["spec"].get("protocolVersions", []):
            ok, answer = ask(seqserve, protocol, http_port, grpc_port, "species")
            if not ok:
                failures.append(f"{where}: lists {protocol}, which answers {answer}")
        for service_where, service in services:
            name = service["metadata"]["name"]
            protocol = service["spec"]["predictor"]["model"].get("protocolVersion", "v1")
            ok, answer = ask(seqserve, protocol, http_port, grpc_port, name)
            if not ok:
                failures.append(f"{service_where}: {protocol} for model {name} through {where} "
                                f"answers {answer}")
    finally:
        process.kill()
        process.wait()


def main():
    source, seqserve = sys.argv[1], sys.argv[2]
    schemas = {}
    for name in ("clusterservingruntime", "inferenceservice"):
        with open(os.path.join(source, "tests/deploy/kserve", f"{name}.schema.json")) as f:
            crd = json.load(f)
        schemas[crd["kind"]] = crd
    helpfull = subprocess.run([seqserve, "--helpfull"], capture_output=True, text=True).stdout
    flags = dict(re.findall(r'^\s+--(\w+) \(.*?\); default: "?([^;"]*)"?;', helpfull, re.M | re.S))
    failures = []
    found = manifests(os.path.join(source, "deploy/kserve"))
    for file, document in found:
        kind = document.get("kind")
        crd = schemas.get(kind)
        where = f"{file} ({kind})"
        if crd is None:
            failures.append(f"{where}: no schema for this kind")
            continue
        api = f"{crd['group']}/{crd['version']}"
        if document.get("apiVersion") != api:
            failures.append(f"{where}: apiVersion {document.get('apiVersion')}, "
                            f"the CRD serves {api}")
        schema = crd["openAPIV3Schema"]
        for error in jsonschema.Draft7Validator(schema).iter_errors(document):
            location = ".".join(str(p) for p in error.absolute_path)
            failures.append(f"{where}: {location}: {error.message}")
        for path in unknown_fields(document, schema, ""):
            failures.append(f"{where}: unknown field {path}")
        for container in document.get("spec", {}).get("containers", []):
            for arg in container.get("args", []):
                flag = arg.split("=", 1)[0]
                if f"    {flag} (" not in helpfull:
                    failures.append(f"{where}: seqserve has no flag {flag}")
    runtimes = {d["metadata"]["name"]: (f, d) for f, d in found if d.get("kind") == "ClusterServingRuntime"}
    services = [(f, d) for f, d in found if d.get("kind") == "InferenceService"]
    if len(runtimes) < 2 or len(services) < 3:
        failures.append(f"expected a Serverless and a RawDeployment runtime and three "
                        f"InferenceServices, found {len(runtimes)} and {len(services)}")
    if not failures:
        consistency(services, runtimes, failures)
    if not failures:
        for name, (file, runtime) in sorted(runtimes.items()):
            where = f"{file} ({name})"
            ports = runtime_ports(where, runtime, flags, failures)
            using = [(f, s) for f, s in services if s["spec"]["predictor"]["model"].get("runtime") == name]
            if not using:
                failures.append(f"{where}: no InferenceService here uses it")
            serve(seqserve, source, where, runtime, ports, using, failures)
    for failure in failures:
        print(failure)
    if failures:
        return 1
    print(f"{len(found)} manifests match KServe's CRD schemas; seqserve answers "
          f"{len(services)} InferenceServices' protocols as {len(runtimes)} runtimes run it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
