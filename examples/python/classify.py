#!/usr/bin/python3
"""Classifies a few animals with seqserve from Python, through grpcio.

The stubs are generated from proto/ at build time (grpc_python_plugin):
  python3 examples/python/classify.py --target localhost:8500 \
      --stubs build/release/examples/python/stubs [--output log_softmax]
With TLS and a token (taken from SEQSERVE_TOKEN unless --token is given):
  SEQSERVE_TOKEN=... python3 examples/python/classify.py --target host:8500 \
      --tls_ca_file ca.pem --stubs build/release/examples/python/stubs
"""
import argparse
import os
import sys

ANIMALS = [("dog", [4, 0, 1]), ("eagle", [2, 1, 0]), ("snake", [0, 1, 0])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--stubs", required=True, help="directory of the generated stubs")
    parser.add_argument("--output", default="default",
                        choices=["default", "logits", "sigmoid", "softmax", "log_softmax"],
                        help="form of the scores (default: each model's own)")
    parser.add_argument("--tls_ca_file", help="PEM CAs of the server's certificate: use TLS")
    parser.add_argument("--token", default=os.environ.get("SEQSERVE_TOKEN", ""),
                        help="bearer token (default: $SEQSERVE_TOKEN)")
    args = parser.parse_args()
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
        features = [value for _, row in ANIMALS for value in row]
        for model in ("species", "mammal"):
            try:
                response = stub.Classify(
                    classifier_pb2.ClassifyRequest(
                        model=model, features=features, rows=len(ANIMALS),
                        output=classifier_pb2.OutputMode.Value(
                            "OUTPUT_MODE_" + args.output.upper())),
                    timeout=10, metadata=metadata)
            except grpc.RpcError as error:
                print(f"{model}: {error.code().name}: {error.details()}", file=sys.stderr)
                return 1
            output = classifier_pb2.OutputMode.Name(response.output)
            print(f"{response.model} v{response.version} ({output})")
            for (name, _), result in zip(ANIMALS, response.results):
                scores = " ".join(f"{score:.6f}" for score in result.scores)
                print(f"  {name:<6} -> {result.predicted_label:<11} scores {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
