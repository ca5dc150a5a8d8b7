#!/usr/bin/python3
"""The same Classifier API served by grpcio and PyTorch: what a user would
write instead of seqserve. The benchmark baseline, not a product.

Serves every model.onnx found as REPO/<model>/<version>/model.onnx, rebuilt as
an nn.Sequential of Linear / ReLU / Sigmoid / Tanh layers from the ONNX
initializers (Gemm with transB=1, as torch.onnx.export writes). Classify
answers logits, sigmoid or softmax with predicted classes; enough of the API
for seqclient bench.

  /usr/bin/python3 bench/python_server.py --port 8600 --model_repository models \
      --stubs build/release/examples/python/stubs
"""
import argparse
import glob
import os
import sys
from concurrent import futures


def load_sequential(path, torch, nn, onnx, numpy_helper):
    graph = onnx.load(path).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    layers, head = [], "logits"
    for node in graph.node:
        if node.op_type == "Gemm":
            w = torch.from_numpy(weights[node.input[1]].copy())
            linear = nn.Linear(w.shape[1], w.shape[0], bias=len(node.input) > 2)
            with torch.no_grad():
                linear.weight.copy_(w)
                if len(node.input) > 2:
                    linear.bias.copy_(torch.from_numpy(weights[node.input[2]].copy()))
            layers.append(linear)
        elif node.op_type == "Relu":
            layers.append(nn.ReLU())
        elif node.op_type == "Tanh":
            layers.append(nn.Tanh())
        elif node.op_type in ("Sigmoid", "Softmax") and node is graph.node[-1]:
            head = node.op_type.lower()
        elif node.op_type == "Sigmoid":
            layers.append(nn.Sigmoid())
        else:
            raise ValueError(f"{path}: {node.op_type} is not supported here")
    return nn.Sequential(*layers).eval(), head


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--model_repository", default="models")
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)

    import grpc
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn
    from seqserve.v1 import classifier_pb2, classifier_pb2_grpc

    torch.set_num_threads(1)
    models = {}
    for path in glob.glob(os.path.join(args.model_repository, "*", "*", "model.onnx")):
        name = path.split(os.sep)[-3]
        models[name] = load_sequential(path, torch, nn, onnx, numpy_helper)

    class Classifier(classifier_pb2_grpc.ClassifierServicer):
        def Classify(self, request, context):
            if request.model not in models:
                context.abort(grpc.StatusCode.NOT_FOUND, f"model '{request.model}' is not served")
            body, head = models[request.model]
            mode = classifier_pb2.OutputMode.Name(request.output).split("_")[-1].lower()
            if mode == "default":
                mode = head
            x = torch.tensor(list(request.features), dtype=torch.float32)
            with torch.inference_mode():
                scores = body(x.reshape(request.rows, -1))
                if mode == "sigmoid":
                    scores = torch.sigmoid(scores)
                elif mode == "softmax":
                    scores = torch.softmax(scores, dim=-1)
            response = classifier_pb2.ClassifyResponse(
                model=request.model, version=1,
                output=classifier_pb2.OutputMode.Value("OUTPUT_MODE_" + mode.upper()))
            for row in scores.tolist():
                predicted = (1 if row[0] > 0.5 else 0) if len(row) == 1 else max(
                    range(len(row)), key=row.__getitem__)
                response.results.add(scores=row, predicted_index=predicted)
            return response

        def GetModelMetadata(self, request, context):
            if request.model not in models:
                context.abort(grpc.StatusCode.NOT_FOUND, f"model '{request.model}' is not served")
            body, _ = models[request.model]
            linears = [m for m in body if isinstance(m, nn.Linear)]
            return classifier_pb2.GetModelMetadataResponse(
                model=request.model, version=1, input_width=linears[0].in_features,
                output_width=linears[-1].out_features)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    classifier_pb2_grpc.add_ClassifierServicer_to_server(Classifier(), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"python server listening on 127.0.0.1:{args.port} with {sorted(models)}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
