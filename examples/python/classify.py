#!/usr/bin/python3
"""Classifies feature rows with seqserve from Python, through grpcio.

Rows are arguments ("4,0,1 2,1,0") or, without any, lines of stdin.
The stubs are generated from proto/ at build time (grpc_python_plugin):
  python3 examples/python/classify.py --target localhost:8500 \
      --stubs build/release/examples/python/stubs --model species 4,0,1 2,1,0
  printf '4,0,1\\n' | python3 examples/python/classify.py --model mammal \
      --stubs build/release/examples/python/stubs --output logits
With TLS and a token (taken from SEQSERVE_TOKEN unless --token is given):
  SEQSERVE_TOKEN=... python3 examples/python/classify.py --target host:8500 \
      --tls_ca_file ca.pem --stubs build/release/examples/python/stubs --model species 4,0,1
A failed call prints its status code's name and message and exits 1.
"""
import argparse
import os
import sys


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
    if any(len(row) != len(rows[0]) for row in rows):
        raise SystemExit("rows have different numbers of features")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", help="feature rows such as 4,0,1 (default: stdin)")
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--stubs", required=True, help="directory of the generated stubs")
    parser.add_argument("--model", required=True, help="model name, as seqclient models lists")
    parser.add_argument("--version", type=int, default=0, help="model version (0: latest)")
    parser.add_argument("--output", default="default",
                        choices=["default", "logits", "sigmoid", "softmax", "log_softmax"],
                        help="form of the scores (default: the model's own)")
    parser.add_argument("--tls_ca_file", help="PEM CAs of the server's certificate: use TLS")
    parser.add_argument("--token", default=os.environ.get("SEQSERVE_TOKEN", ""),
                        help="bearer token (default: $SEQSERVE_TOKEN)")
    args = parser.parse_args()
    rows = parse_rows(args.rows if args.rows else sys.stdin)
    sys.path.insert(0, args.stubs)

    import grpc
    from seqserve.v1 import classifier_pb2, classifier_pb2_grpc

    if args.tls_ca_file:
        with open(args.tls_ca_file, "rb") as ca:
            channel = grpc.secure_channel(args.target,
                                          grpc.ssl_channel_credentials(root_certificates=ca.read()))
    else:
        channel = grpc.insecure_channel(args.target)
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    with channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        try:
            response = stub.Classify(
                classifier_pb2.ClassifyRequest(
                    model=args.model, version=args.version,
                    features=[value for row in rows for value in row], rows=len(rows),
                    output=classifier_pb2.OutputMode.Value("OUTPUT_MODE_" + args.output.upper())),
                timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    # The mode as seqserve prints it: "softmax" for OUTPUT_MODE_SOFTMAX.
    output = classifier_pb2.OutputMode.Name(response.output).removeprefix("OUTPUT_MODE_").lower()
    print(f"{response.model} v{response.version} ({output})")
    for row, result in zip(rows, response.results):
        features = ",".join(f"{value:g}" for value in row)
        scores = " ".join(f"{score:.6f}" for score in result.scores)
        print(f"  {features} -> {result.predicted_label or result.predicted_index} "
              f"scores {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
