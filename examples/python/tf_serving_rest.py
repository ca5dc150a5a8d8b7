#!/usr/bin/python3
"""Calls seqserve as a TensorFlow Serving REST client would, with Python's standard library.

Each call posts a document of TF Serving's api_rest.md: model status, model
metadata, predict in the row ("instances") and the columnar ("inputs") form,
and classify with examples and a shared context. No package beyond Python
itself (urllib, json):
  python3 examples/python/tf_serving_rest.py --url http://localhost:8501 \
      --model species 4,0,1 2,1,0
  printf '4,0,1\\n' | python3 examples/python/tf_serving_rest.py --model mammal --call classify
With TLS and a token (taken from SEQSERVE_TOKEN unless --token is given):
  SEQSERVE_TOKEN=... python3 examples/python/tf_serving_rest.py --url https://host:8501 \
      --tls_ca_file ca.pem --model species 4,0,1
Rows are arguments ("4,0,1 2,1,0") or, without any, lines of stdin. A
refused call prints its HTTP status and the server's {"error": ...}, and
exits 1.
"""
import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

CALLS = ["status", "metadata", "predict", "predict_columns", "classify"]


def parse_rows(lines):
    """Feature rows from 'a,b,c' texts; blank lines and '#' comments skipped."""
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rows.append([float(field) for field in line.split(",")])
        except ValueError:
            raise SystemExit(f"row {number}: '{line}' is not comma-separated numbers")
    if not rows:
        raise SystemExit("no feature rows given (as arguments or on stdin)")
    return rows


class Refused(Exception):
    pass


class TfServing:
    """The REST API of a TF Serving model server (or seqserve's HTTP port)."""

    def __init__(self, url, model, version=0, token="", ca_file=None):
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self.token = token
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def path(self, suffix=""):
        version = f"/versions/{self.version}" if self.version else ""
        return f"/v1/models/{self.model}{version}{suffix}"

    def call(self, path, document=None):
        """GETs path, or POSTs document to it; the answer as JSON."""
        body = None if document is None else json.dumps(document).encode()
        request = urllib.request.Request(self.url + path, data=body)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        print(("POST " if body else "GET ") + path + (" " + body.decode() if body else ""))
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as refused:
            text = refused.read().decode(errors="replace")
            try:
                message = json.loads(text)["error"]  # TF Serving's error shape
            except (ValueError, KeyError, TypeError):
                message = text
            raise Refused(f"HTTP {refused.code}: {message}")


def show_status(server):
    answer = server.call(server.path())
    for version in answer["model_version_status"]:
        status = version["status"]
        print(f"  version {version['version']}: {version['state']} ({status['error_code']}"
              + (f": {status['error_message']}" if status["error_message"] else "") + ")")


def read_metadata(server, show=True):
    """The model's signature and feature names (seqserve's own metadata)."""
    answer = server.call(server.path("/metadata"))
    signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]

    def describe(tensors):
        return ", ".join(
            f"{name} {info['dtype']} [{', '.join(d['size'] for d in info['tensor_shape']['dim'])}]"
            for name, info in tensors.items())

    names = answer["metadata"].get("seqserve", {}).get("feature_names", [])
    if show:
        spec = answer["model_spec"]
        print(f"  {spec['name']} version {spec['version']}: {describe(signature['inputs'])} -> "
              f"{describe(signature['outputs'])}")
        print(f"  feature names: {', '.join(names) if names else '(none)'}")
    return names


def text(row):
    return ",".join(f"{value:g}" for value in row)


def predict(server, rows, names, columns):
    if not columns:
        # Row format: each instance the model's one input, as a list.
        answer = server.call(server.path(":predict"), {"instances": rows})
        results = answer["predictions"]
    else:
        # Columnar format: each named input with every row's value.
        if names:
            inputs = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        else:
            inputs = rows
        answer = server.call(server.path(":predict"), {"inputs": inputs})
        results = answer["outputs"]
    for row, scores in zip(rows, results):
        print(f"  {text(row)} -> {' '.join(repr(score) for score in scores)}")


def classify(server, rows, names):
    if names:
        # Examples by feature name; a feature every row gives the same value
        # goes once into the context, which every example shares.
        shared = [i for i in range(len(names))
                  if len(rows) > 1 and len({row[i] for row in rows}) == 1]
        document = {"signature_name": "serving_default"}
        if shared:
            document["context"] = {names[i]: rows[0][i] for i in shared}
        document["examples"] = [
            {name: value for i, (name, value) in enumerate(zip(names, row)) if i not in shared}
            for row in rows]
    else:
        document = {"examples": [{"features": row} for row in rows]}
    answer = server.call(server.path(":classify"), document)
    for row, classes in zip(rows, answer["result"]):
        label, score = max(classes, key=lambda pair: pair[1])
        everything = ", ".join(f"{name or '(no label)'} {probability!r}"
                               for name, probability in classes)
        print(f"  {text(row)} -> {label or '(no label)'} ({everything})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", help="feature rows such as 4,0,1 (default: stdin)")
    parser.add_argument("--url", default="http://localhost:8501", help="the REST API's address")
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, default=0, help="model version (0: latest)")
    parser.add_argument("--call", choices=CALLS + ["all"], default="all",
                        help="which call to make (default: all, in this order: %s)" %
                        ", ".join(CALLS))
    parser.add_argument("--tls_ca_file", help="PEM CAs of the server's certificate (https)")
    parser.add_argument("--token", default=os.environ.get("SEQSERVE_TOKEN", ""),
                        help="bearer token (default: $SEQSERVE_TOKEN)")
    args = parser.parse_args()
    calls = CALLS if args.call == "all" else [args.call]
    needs_rows = any(call not in ("status", "metadata") for call in calls)
    rows = parse_rows(args.rows if args.rows else sys.stdin) if needs_rows else []
    server = TfServing(args.url, args.model, args.version, args.token, args.tls_ca_file)
    try:
        names = None
        for call in calls:
            if call == "status":
                show_status(server)
            elif call == "metadata":
                names = read_metadata(server)
            else:
                if names is None:
                    names = read_metadata(server, show=False)
                if call == "classify":
                    classify(server, rows, names)
                else:
                    predict(server, rows, names, columns=call == "predict_columns")
    except Refused as refused:
        print(refused)
        return 1
    except urllib.error.URLError as failed:
        print(f"cannot reach {args.url}: {failed.reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
