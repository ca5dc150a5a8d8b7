#!/usr/bin/python3
"""Classifies a few animals with seqserve from Python, through grpcio.

The stubs are generated from proto/ at build time (grpc_python_plugin):
  python3 examples/python/classify.py --target localhost:8500 \
      --stubs build/release/examples/python/stubs [--output log_softmax]
"""
import argparse
import sys

ANIMALS = [("dog", [4, 0, 1]), ("eagle", [2, 1, 0]), ("snake", [0, 1, 0])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--stubs", required=True, help="directory of the generated stubs")
    parser.add_argument("--output", default="default",
                        choices=["default", "logits", "sigmoid", "softmax", "log_softmax"],
                        help="form of the scores (default: each model's own)")
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)

    import grpc
    from seqserve.v1 import classifier_pb2, classifier_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        features = [value for _, row in ANIMALS for value in row]
        for model in ("species", "mammal"):
            try:
                response = stub.Classify(
                    classifier_pb2.ClassifyRequest(
                        model=model, features=features, rows=len(ANIMALS),
                        output=classifier_pb2.OutputMode.Value(
                            "OUTPUT_MODE_" + args.output.upper())),
                    timeout=10)
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
