#!/usr/bin/env python3
"""Checks that every #include of the project's own code goes down the layers.

    check_layers.py ROOT          checks the tree at ROOT; exit 1 on a violation
    check_layers.py --self-test   shows that an upward include is caught

The layers and what each may include are LAYERS below; docs/ARCHITECTURE.md
draws the same table. An include of a folder that is not a layer
(generated protos, third-party headers) is not checked. A file's layer is
the longest LAYERS key its path starts with; every source folder must be
one, so a new folder needs a line here.
"""
import os
import re
import sys
import tempfile

# layer -> the layers its files may include (besides their own).
LAYERS = {
    "core": [],
    "serving": ["core"],
    "auth": ["serving", "core"],
    "observability": ["serving", "core"],
    "frontends/edge": ["serving", "core"],
    "frontends/v2": ["frontends/edge", "serving", "core"],
    "frontends/grpc": ["frontends/v2", "frontends/edge", "serving", "core"],
    "frontends/http": ["frontends/v2", "frontends/edge", "auth", "observability", "serving",
                       "core"],
    "server": ["frontends/grpc", "frontends/http", "frontends/v2", "frontends/edge", "auth",
               "observability", "serving", "core"],
    "client": [],
    "cmd": ["server", "client", "auth", "observability", "serving", "core"],
}
SOURCE_SUFFIXES = (".h", ".cc")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    best = None
    for layer in LAYERS:
        if path == layer or path.startswith(layer + "/"):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def top_folders():
    return {layer.split("/")[0] for layer in LAYERS}


def check(root):
    problems = []
    for top in sorted(top_folders()):
        for folder, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.relpath(os.path.join(folder, name), root)
                layer = layer_of(path)
                if layer is None:
                    problems.append(f"{path}: in no layer; add its folder to LAYERS")
                    continue
                with open(os.path.join(root, path), encoding="utf-8") as f:
                    text = f.read()
                for line_no, included in (
                        (text.count("\n", 0, m.start()) + 1, m.group(1))
                        for m in INCLUDE.finditer(text)):
                    if included.split("/")[0] not in top_folders():
                        continue  # generated or third-party
                    target = layer_of(included)
                    if target is None:
                        problems.append(f"{path}:{line_no}: includes {included}, in no layer")
                    elif target != layer and target not in LAYERS[layer]:
                        problems.append(f"{path}:{line_no}: {layer} may not include "
                                        f"{included} ({target})")
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as root:
        def write(path, text):
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w", encoding="utf-8") as f:
                f.write(text)
        write("core/layer.h", "#pragma once\n")
        write("serving/runner.h", '#include "core/layer.h"\n#include "seqserve/v1/x.pb.h"\n')
        write("frontends/http/rest.cc", '#include "serving/runner.h"\n')
        if check(root):
            print("self-test: a tree whose includes go down was refused:", check(root))
            return 1
        cases = {
            "upward": ("core/bad.h", '#include "serving/runner.h"\n', "core may not include"),
            "sideways": ("frontends/http/bad.cc", '#include "frontends/grpc/x.h"\n',
                         "frontends/http may not include"),
            "unlisted": ("frontends/mqtt/x.cc", "\n", "in no layer"),
        }
        for case, (path, text, expected) in cases.items():
            write(path, text)
            found = check(root)
            os.remove(os.path.join(root, path))
            if not any(expected in problem for problem in found):
                print(f"self-test: the {case} include was not reported: {found}")
                return 1
    print("self-test: upward, sideways and unlisted includes are reported")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    problems = check(argv[1])
    for problem in problems:
        print(problem)
    if not problems:
        print("every include goes down the layers")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
