#!/usr/bin/env python3
"""Classifies feature rows through the Open Inference Protocol (KServe v2).

The same call Triton's and KServe's clients make: ModelInfer on
inference.GRPCInferenceService, which seqserve serves on its gRPC port. Only
grpcio and the stubs generated from proto/inference/v2/grpc_predict_v2.proto
are used (the build writes them; pass their directory with --stubs).

  classify_v2.py --stubs DIR --model species 4,0,1 2,1,0
  classify_v2.py --stubs DIR --model species --output softmax --classification 2
  classify_v2.py --stubs DIR --model mammal --raw 4,0,1
"""

import argparse
import os
import struct
import sys

ANIMALS = ["4,0,1", "2,1,0", "0,1,0"]  # dog, eagle, snake


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", help="rows of comma-separated features")
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--stubs", required=True, help="directory of the generated stubs")
    parser.add_argument("--model", default="species")
    parser.add_argument("--output", default="",
                        help="logits, sigmoid, softmax, log_softmax (default: the model's own)")
    parser.add_argument("--classification", type=int, default=0,
                        help="answer the k best classes as '<score>:<index>:<label>'")
    parser.add_argument("--raw", action="store_true",
                        help="send and receive raw little-endian tensors")
    parser.add_argument("--tls_ca_file", help="PEM CAs of the server's certificate: use TLS")
    parser.add_argument("--token", default=os.environ.get("SEQSERVE_TOKEN", ""),
                        help="bearer token (default: $SEQSERVE_TOKEN)")
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)

    import grpc
    from inference.v2 import grpc_predict_v2_pb2 as v2, grpc_predict_v2_pb2_grpc as v2_grpc

    rows = [[float(value) for value in row.split(",")] for row in (args.rows or ANIMALS)]
    if args.tls_ca_file:
        with open(args.tls_ca_file, "rb") as ca:
            channel = grpc.secure_channel(args.target,
                                          grpc.ssl_channel_credentials(root_certificates=ca.read()))
    else:
        channel = grpc.insecure_channel(args.target)
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    with channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)
        try:
            # The model's metadata names its input tensor and its outputs.
            model = stub.ModelMetadata(v2.ModelMetadataRequest(name=args.model),
                                       timeout=10, metadata=metadata)
            request = v2.ModelInferRequest(model_name=args.model)
            tensor = request.inputs.add(name=model.inputs[0].name, datatype="FP32",
                                        shape=[len(rows), len(rows[0])])
            flat = [value for row in rows for value in row]
            if args.raw:
                request.raw_input_contents.append(struct.pack(f"<{len(flat)}f", *flat))
            else:
                tensor.contents.fp32_contents.extend(flat)
            if args.output or args.classification:
                # The model's own output is the last one its metadata lists.
                output = request.outputs.add(name=args.output or model.outputs[-1].name)
                if args.classification:
                    output.parameters["classification"].int64_param = args.classification
            response = stub.ModelInfer(request, timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            print(f"{args.model}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1

    print(f"{response.model_name} v{response.model_version}")
    for index, output in enumerate(response.outputs):
        width = output.shape[1]
        if response.raw_output_contents:
            raw = response.raw_output_contents[index]
            if output.datatype == "BYTES":
                values, at = [], 0
                while at < len(raw):
                    (size,) = struct.unpack_from("<I", raw, at)
                    values.append(raw[at + 4:at + 4 + size].decode())
                    at += 4 + size
            else:
                values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        elif output.datatype == "BYTES":
            values = [value.decode() for value in output.contents.bytes_contents]
        else:
            values = list(output.contents.fp32_contents)
        for row in range(output.shape[0]):
            cells = values[row * width:(row + 1) * width]
            text = " ".join(cell if isinstance(cell, str) else f"{cell:.6f}" for cell in cells)
            print(f"  row {row} {output.name}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
