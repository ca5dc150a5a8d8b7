#!/usr/bin/env python3
"""deploy/kserve against KServe's CRD schemas, offline.

Usage: check_kserve.py SOURCE_DIR SEQSERVE_BINARY

Each manifest is validated against the openAPIV3Schema of its kind, kept in
tests/deploy/kserve/ (from kserve/kserve charts/kserve-crd, descriptions
removed; the InferenceService copy without canary, explainer and
transformer, which the manifests do not use). The API server would drop a
field its schema does not know, so an unknown field fails here. The
runtime's flags must be ones seqserve accepts.
"""

import json
import os
import subprocess
import sys

import jsonschema
import yaml


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


def main():
    source, seqserve = sys.argv[1], sys.argv[2]
    schemas = {}
    for name in ("clusterservingruntime", "inferenceservice"):
        with open(os.path.join(source, "tests/deploy/kserve", f"{name}.schema.json")) as f:
            crd = json.load(f)
        schemas[crd["kind"]] = crd
    flags = subprocess.run([seqserve, "--helpfull"], capture_output=True, text=True).stdout
    failures = []
    documents = 0
    directory = os.path.join(source, "deploy/kserve")
    for file in sorted(os.listdir(directory)):
        with open(os.path.join(directory, file)) as f:
            for document in yaml.safe_load_all(f):
                if not document:
                    continue
                documents += 1
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
                        if f"    {flag} (" not in flags:
                            failures.append(f"{where}: seqserve has no flag {flag}")
    if documents < 2:
        failures.append(f"only {documents} manifests in deploy/kserve")
    for failure in failures:
        print(failure)
    if failures:
        return 1
    print(f"{documents} manifests match KServe's CRD schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
