#!/usr/bin/env python3
"""Drives seqserve with Triton's own Python clients, tritonclient.http and .grpc.

The library is vendored in tests/third_party/tritonclient; the build lays it
out with its generated gRPC stubs (target triton_client_python) and the
directory is passed with --library. Each scenario runs its calls through
every client given (--http, --grpc), prints what it checked, and exits 1
with a line naming the client, the call and the difference on the first
answer that is not the expected one.

  triton_client.py --library DIR --http 127.0.0.1:8501 --grpc 127.0.0.1:8500 \\
      --reference tests/data/reference/species.json infer

Scenarios:
  infer       health, server and model metadata, and inference of the
              reference rows (typed, binary and with the classification
              extension), compared with PyTorch's numbers and between the
              clients
  features    a preprocessed model (pets: limbs and a categorical coat) sent
              its features as inputs by name, FP32 and BYTES, answering
              the bits of the species rows they stand for
  repository  the model repository extension against a server under
              --model_control_mode=explicit serving species, with mammal in
              the repository but not loaded: index, load (also with a config
              that renames the classes), unload, and a load that fails
"""

import argparse
import json
import sys

MODEL = "species"


class Mismatch(Exception):
    """An answer that is not the expected one."""


def expect(condition, message):
    if not condition:
        raise Mismatch(message)


# The reference set's tolerance (tests/data/reference/README.md).
def close_to_reference(actual, expected):
    return abs(float(actual) - float(expected)) <= 1e-5 * abs(float(expected)) + 1e-6


class Client:
    """One of Triton's clients, named by its protocol."""

    def __init__(self, protocol, module, url):
        from tritonclient.utils import InferenceServerException

        self.protocol = protocol
        self.module = module
        self.client = module.InferenceServerClient(url=url)
        self.error = InferenceServerException

    def call(self, what, method, *args, **kwargs):
        """Calls `method` of the client; a refusal names the call as `what`."""
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except self.error as error:
            raise Mismatch(f"{self.protocol}: {what}: {error}") from None

    def json(self, answer):
        """A metadata answer as JSON: HTTP gives a dict, gRPC a message."""
        if isinstance(answer, dict):
            return answer
        from google.protobuf.json_format import MessageToDict
        return MessageToDict(answer, preserving_proto_field_name=True)

    def say(self, text):
        print(f"{self.protocol}: {text}", flush=True)


def load_reference(path):
    with open(path) as f:
        reference = json.load(f)
    for key in ("inputs", "softmax", "labels"):
        expect(reference.get(key), f"{path} has no '{key}'")
    return reference


def row_text(row):
    return ",".join(f"{value:g}" for value in row)


def compare_softmax(client, form, got, reference):
    want = reference["softmax"]
    expect(list(got.shape) == [len(want), len(want[0])],
           f"{client.protocol}: softmax ({form}) has shape {list(got.shape)}, "
           f"the reference [{len(want)}, {len(want[0])}]")
    for r, row in enumerate(want):
        for c, value in enumerate(row):
            expect(close_to_reference(got[r][c], value),
                   f"{client.protocol}: softmax ({form}) row {r} ({row_text(reference['inputs'][r])}) "
                   f"class {c}: got {float(got[r][c])!r}, the reference {value!r}")
    client.say(f"softmax of {len(want)} rows ({form}) matches the reference")


def compare_classes(client, got, reference, k):
    """Rows of '<score>:<index>:<label>', best first, as Triton answers them."""
    softmax, labels = reference["softmax"], reference["labels"]
    expect(list(got.shape) == [len(softmax), k],
           f"{client.protocol}: classification has shape {list(got.shape)}, "
           f"expected [{len(softmax)}, {k}]")
    for r, row in enumerate(got):
        scores = []
        for entry in row:
            text = entry.decode() if isinstance(entry, bytes) else str(entry)
            fields = text.split(":", 2)
            expect(len(fields) == 3, f"{client.protocol}: row {r}: '{text}' is not score:index:label")
            score, index, label = float(fields[0]), int(fields[1]), fields[2]
            expect(0 <= index < len(labels) and label == labels[index],
                   f"{client.protocol}: row {r}: '{text}' names class {index} as '{label}', "
                   f"the model's labels are {labels}")
            expect(close_to_reference(score, softmax[r][index]),
                   f"{client.protocol}: row {r}: '{text}': the reference's score is "
                   f"{softmax[r][index]!r}")
            scores.append(score)
        expect(scores == sorted(scores, reverse=True),
               f"{client.protocol}: row {r}: classes not best first: {list(row)}")
        best = max(range(len(labels)), key=lambda c: softmax[r][c])
        expect(close_to_reference(scores[0], softmax[r][best]),
               f"{client.protocol}: row {r}: best class scores {scores[0]}, the reference's best "
               f"is {labels[best]} at {softmax[r][best]!r}")
    first = got[0][0]
    first = first.decode() if isinstance(first, bytes) else str(first)
    client.say(f"top-{k} classes of {len(softmax)} rows match the reference: "
               f"{row_text(reference['inputs'][0])} -> {first}")


def infer(clients, args):
    import numpy as np

    if not args.reference:
        raise SystemExit("triton_client.py: scenario infer needs --reference")
    reference = load_reference(args.reference)
    rows = np.array(reference["inputs"], dtype=np.float32)
    classes = len(reference["labels"])
    answers = {}
    for client in clients:
        m = client.module
        expect(client.call("is_server_live", "is_server_live") is True,
               f"{client.protocol}: the server is not live")
        expect(client.call("is_server_ready", "is_server_ready") is True,
               f"{client.protocol}: the server is not ready")
        expect(client.call(f"is_model_ready({MODEL!r})", "is_model_ready", MODEL) is True,
               f"{client.protocol}: model {MODEL} is not ready")
        expect(client.call("is_model_ready('no-such-model')", "is_model_ready",
                           "no-such-model") is False,
               f"{client.protocol}: a model that is not served is ready")
        client.say(f"server live and ready, model {MODEL} ready, no-such-model not ready")

        server = client.json(client.call("get_server_metadata", "get_server_metadata"))
        extensions = list(server.get("extensions", []))
        expect(server.get("name") and server.get("version"),
               f"{client.protocol}: server metadata without name or version: {server}")
        # The calls below use these two.
        for extension in ("classification", "binary_tensor_data"):
            expect(extension in extensions,
                   f"{client.protocol}: server metadata does not list the '{extension}' "
                   f"extension: {extensions}")
        client.say(f"server {server['name']} {server['version']}, extensions: "
                   f"{' '.join(extensions)}")

        model = client.json(client.call(f"get_model_metadata({MODEL!r})", "get_model_metadata",
                                        MODEL))
        expect(model.get("name") == MODEL, f"{client.protocol}: model metadata names "
                                           f"{model.get('name')!r}, not {MODEL!r}")
        inputs = model.get("inputs", [])
        expect(len(inputs) == 1 and inputs[0].get("datatype") == "FP32" and
               [int(d) for d in inputs[0].get("shape", [])] == [-1, rows.shape[1]],
               f"{client.protocol}: model {MODEL} should take one FP32 input of shape "
               f"[-1, {rows.shape[1]}]: {inputs}")
        outputs = {o["name"]: o for o in model.get("outputs", [])}
        expect("softmax" in outputs and outputs["softmax"].get("datatype") == "FP32" and
               [int(d) for d in outputs["softmax"].get("shape", [])] == [-1, classes],
               f"{client.protocol}: model {MODEL} has no FP32 softmax output of shape "
               f"[-1, {classes}]: {list(outputs.values())}")
        input_name = inputs[0]["name"]
        client.say(f"model {MODEL}: input {input_name} FP32 [-1, {rows.shape[1]}], "
                   f"outputs {' '.join(outputs)}")

        # HTTP sends and answers JSON or binary tensors; gRPC sends raw
        # contents and reads raw answers.
        forms = ["JSON", "binary"] if client.protocol == "http" else ["raw"]
        for form in forms:
            tensor = m.InferInput(input_name, list(rows.shape), "FP32")
            options = {"binary_data": form == "binary"} if client.protocol == "http" else {}
            tensor.set_data_from_numpy(rows, **options)
            result = client.call(f"infer({MODEL!r}, {form})", "infer", MODEL, [tensor],
                                 outputs=[m.InferRequestedOutput("softmax", **options)])
            got = result.as_numpy("softmax")
            expect(got is not None, f"{client.protocol}: the answer has no softmax output: "
                                    f"{result.get_response()}")
            expect(got.dtype == np.float32, f"{client.protocol}: softmax is {got.dtype}")
            compare_softmax(client, form, got, reference)
            answers[f"{client.protocol} {form}"] = got

        k = min(2, classes)
        tensor = m.InferInput(input_name, list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        result = client.call(f"infer({MODEL!r}, class_count={k})", "infer", MODEL, [tensor],
                             outputs=[m.InferRequestedOutput("softmax", class_count=k)])
        got = result.as_numpy("softmax")
        expect(got is not None, f"{client.protocol}: the answer has no softmax output: "
                                f"{result.get_response()}")
        compare_classes(client, got, reference, k)

    # Every client and form reads the same bits.
    (first, expected), *others = answers.items()
    for name, got in others:
        expect(np.array_equal(got, expected),
               f"{name} and {first} answers differ: {got.tolist()} vs {expected.tolist()}")
    print(f"infer: the {', '.join(answers)} answers are identical", flush=True)


def repository_index(client):
    """The index as {name: entry}: HTTP answers a list, gRPC a message."""
    answer = client.call("get_model_repository_index", "get_model_repository_index")
    entries = answer if isinstance(answer, list) else client.json(answer).get("models", [])
    return {entry["name"]: entry for entry in entries}


def top_label(client, model, row):
    """The best class's label for one row, by the classification extension."""
    import numpy as np

    m = client.module
    name = client.json(client.call(f"get_model_metadata({model!r})", "get_model_metadata",
                                   model))["inputs"][0]["name"]
    tensor = m.InferInput(name, [1, len(row)], "FP32")
    tensor.set_data_from_numpy(np.array([row], dtype=np.float32))
    result = client.call(f"infer({model!r})", "infer", model, [tensor],
                         outputs=[m.InferRequestedOutput("softmax", class_count=1)])
    best = result.as_numpy("softmax")[0][0]
    return (best.decode() if isinstance(best, bytes) else str(best)).split(":", 2)[2]


def repository(clients, args):
    for client in clients:
        index = repository_index(client)
        expect(index.get("species", {}).get("state") == "READY" and
               str(index["species"].get("version")) == "1",
               f"{client.protocol}: the index should list species version 1 READY: {index}")
        expect(index.get("mammal", {}).get("state") == "UNAVAILABLE" and
               not index["mammal"].get("version"),
               f"{client.protocol}: the index should list mammal UNAVAILABLE without a "
               f"version: {index}")
        client.say(f"index: species 1 READY, mammal {index['mammal']['state']} "
                   f"({index['mammal'].get('reason')})")

        client.call("load_model('mammal')", "load_model", "mammal")
        expect(client.call("is_model_ready('mammal')", "is_model_ready", "mammal") is True,
               f"{client.protocol}: mammal is not ready after its load")
        expect(repository_index(client)["mammal"].get("state") == "READY",
               f"{client.protocol}: the index does not show mammal READY after its load")
        client.say("load_model('mammal'): ready")

        # A config in seqserve's JSON renames the classes until the next load.
        row = [4, 0, 1]
        before = top_label(client, "species", row)
        client.call("load_model('species', config=...)", "load_model", "species",
                    config=json.dumps({"labels": ["Bird", "Mammal", "Reptile"]}))
        renamed = top_label(client, "species", row)
        expect(renamed == before.capitalize(),
               f"{client.protocol}: after a load with renamed labels {row_text(row)} is "
               f"'{renamed}', expected '{before.capitalize()}'")
        client.call("load_model('species')", "load_model", "species")
        expect(top_label(client, "species", row) == before,
               f"{client.protocol}: a load without a config did not bring back the "
               f"file's labels")
        client.say(f"load_model with a config: {row_text(row)} -> {renamed}, "
                   f"then {before} again")

        client.call("unload_model('mammal')", "unload_model", "mammal")
        expect(client.call("is_model_ready('mammal')", "is_model_ready", "mammal") is False,
               f"{client.protocol}: mammal is ready after its unload")
        expect(repository_index(client).get("mammal", {}).get("state") == "UNAVAILABLE",
               f"{client.protocol}: the index does not show mammal UNAVAILABLE after its "
               f"unload")
        client.say("unload_model('mammal'): not ready")

        try:
            client.client.load_model("no-such-model")
            raise Mismatch(f"{client.protocol}: load_model('no-such-model') succeeded")
        except client.error as error:
            expect("not in the repository" in str(error),
                   f"{client.protocol}: load_model('no-such-model') failed without saying "
                   f"why: {error}")
            client.say(f"load_model('no-such-model') refused: {error.message()}")


def features(clients, args):
    """pets is species behind preprocessing: limbs, then coat one-hot over
    feathers (species' lays_eggs) and hair (has_hair), unknown as zeros.
    Its features sent as inputs by name answer the bits of species' rows."""
    import numpy as np

    limbs = np.array([4, 2, 0, 6], dtype=np.float32)
    coats = np.array([b"hair", b"feathers", b"hair", b"scales"], dtype=np.object_)
    rows = np.array([[4, 0, 1], [2, 1, 0], [0, 0, 1], [6, 0, 0]], dtype=np.float32)
    for client in clients:
        m = client.module
        model = client.json(client.call("get_model_metadata('pets')", "get_model_metadata",
                                        "pets"))
        inputs = [(i["name"], i["datatype"], [int(d) for d in i["shape"]])
                  for i in model.get("inputs", [])]
        expect(inputs == [("limbs", "FP32", [-1]), ("coat", "BYTES", [-1])],
               f"{client.protocol}: pets should take limbs FP32 [-1] and coat BYTES [-1]: "
               f"{inputs}")
        client.say("model pets: inputs limbs FP32 [-1], coat BYTES [-1]")
        tensor = m.InferInput("features", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        want = client.call("infer('species')", "infer", MODEL, [tensor],
                           outputs=[m.InferRequestedOutput("softmax")]).as_numpy("softmax")
        forms = ["JSON", "binary"] if client.protocol == "http" else ["raw"]
        for form in forms:
            options = {"binary_data": form == "binary"} if client.protocol == "http" else {}
            # Coat first: the inputs' order is the request's, not the model's.
            coat = m.InferInput("coat", [len(coats)], "BYTES")
            coat.set_data_from_numpy(coats, **options)
            limb = m.InferInput("limbs", [len(limbs)], "FP32")
            limb.set_data_from_numpy(limbs, **options)
            got = client.call(f"infer('pets', {form})", "infer", "pets", [coat, limb],
                              outputs=[m.InferRequestedOutput("softmax", **options)]
                              ).as_numpy("softmax")
            expect(got is not None and np.array_equal(got, want),
                   f"{client.protocol}: pets {form} answered {got} for species' {want}")
            client.say(f"pets by feature ({form}) answers species' bits for 4 rows")


SCENARIOS = {"infer": infer, "repository": repository, "features": features}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("scenario", choices=sorted(SCENARIOS), help="what to run (below)")
    parser.add_argument("--library", required=True,
                        help="directory holding the tritonclient package with its stubs")
    parser.add_argument("--http", metavar="URL", help="the HTTP port, host:port")
    parser.add_argument("--grpc", metavar="TARGET", help="the gRPC port, host:port")
    parser.add_argument("--reference", help="a reference file of tests/data/reference")
    args = parser.parse_args()
    if not args.http and not args.grpc:
        parser.error("give --http, --grpc or both")
    sys.path.insert(0, args.library)

    import tritonclient.grpc
    import tritonclient.http

    clients = []
    if args.http:
        clients.append(Client("http", tritonclient.http, args.http))
    if args.grpc:
        clients.append(Client("grpc", tritonclient.grpc, args.grpc))
    try:
        SCENARIOS[args.scenario](clients, args)
    except Mismatch as mismatch:
        print(f"triton_client.py: {args.scenario} FAILED: {mismatch}", file=sys.stderr)
        return 1
    finally:
        for client in clients:
            client.client.close()
    print(f"{args.scenario}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
