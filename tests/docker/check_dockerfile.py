#!/usr/bin/python3
"""Checks docker/Dockerfile against the build without a container engine.

- the build stage copies every directory the top-level CMakeLists.txt always
  builds, and installs scripts/debian-packages.txt;
- every find_package() in the CMake files has its Debian package in that list;
- every shared library the given binaries load (ldd, then dpkg -S) is in
  docker/runtime-packages.txt or in the debian:12-slim base;
- the runtime stage runs as a non-root user with a health check by seqclient.

Usage: check_dockerfile.py REPO_ROOT BINARY...
"""
import os
import re
import subprocess
import sys

# Packages debian:12-slim already holds that the binaries load.
BASE_IMAGE = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g",
              # GnuTLS and what it loads: apt in the base image needs them.
              "libgnutls30", "libp11-kit0", "libidn2-0", "libunistring2", "libtasn1-6",
              "libnettle8", "libhogweed6", "libgmp10", "libffi8"}
# find_package() name -> the Debian package that provides it.
FIND_PACKAGE = {
    "Protobuf": "libprotobuf-dev", "gRPC": "libgrpc++-dev", "absl": "libabsl-dev",
    "spdlog": "libspdlog-dev", "ONNX": "libonnx-dev", "GTest": "libgtest-dev",
    "benchmark": "libbenchmark-dev", "nlohmann_json": "nlohmann-json3-dev",
    "PkgConfig": "pkg-config", "OpenSSL": "libssl-dev",
}
problems = []


def read_list(path):
    with open(path) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def main(root, binaries):
    dockerfile = open(os.path.join(root, "docker/Dockerfile")).read()
    build_stage, runtime_stage = dockerfile.split("\nFROM debian:12-slim\n", 1)

    copied = set(re.findall(r"^COPY (\w+) \1$", build_stage, re.M))
    top = open(os.path.join(root, "CMakeLists.txt")).read()
    always = set(re.findall(r"^add_subdirectory\((\w+)\)", top, re.M))
    for directory in sorted(always - copied):
        problems.append(f"build stage does not COPY {directory}/, which CMake always builds")
    if "scripts/debian-packages.txt" not in build_stage:
        problems.append("build stage does not install scripts/debian-packages.txt")

    build_packages = read_list(os.path.join(root, "scripts/debian-packages.txt"))
    for directory, _, files in os.walk(root):
        if "/build" in directory or "node_modules" in directory or "/." in directory:
            continue
        for name in files:
            if name != "CMakeLists.txt":
                continue
            for package in re.findall(r"find_package\((\w+)", open(os.path.join(directory, name)).read()):
                debian = FIND_PACKAGE.get(package)
                if debian is None:
                    problems.append(f"find_package({package}) has no known Debian package")
                elif debian not in build_packages:
                    problems.append(f"find_package({package}) needs {debian}, not in the list")
    if "find_library(OPENBLAS_LIBRARY" in top and "libopenblas-dev" not in build_packages:
        problems.append("OpenBLAS is linked but libopenblas-dev is not in the list")

    runtime_packages = read_list(os.path.join(root, "docker/runtime-packages.txt"))
    if "docker/runtime-packages.txt" not in runtime_stage:
        problems.append("runtime stage does not install docker/runtime-packages.txt")
    for binary in binaries:
        for line in subprocess.run(["ldd", binary], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            match = re.search(r"=> (/\S+)", line)
            if not match:
                continue
            library = os.path.realpath(match.group(1))
            owner = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True)
            if owner.returncode != 0:  # merged /usr: ask for the /lib path too
                owner = subprocess.run(["dpkg", "-S", library.replace("/usr/lib/", "/lib/", 1)],
                                       capture_output=True, text=True)
            if owner.returncode != 0:
                problems.append(f"{os.path.basename(binary)}: no package owns {library}")
                continue
            package = owner.stdout.split(":")[0]
            if package not in runtime_packages and package not in BASE_IMAGE:
                problems.append(f"{os.path.basename(binary)} loads {library} from {package}, "
                                "missing in docker/runtime-packages.txt")

    for needed, why in [(r"^USER (?!root|0\b)\S+", "a non-root USER"),
                        (r"(?s)^HEALTHCHECK.*?CMD[^\n]*seqclient[^\n]*health", "a HEALTHCHECK with seqclient health"),
                        (r"^EXPOSE 8500", "EXPOSE 8500"),
                        (r"^COPY models /models", "the sample models at /models"),
                        (r'^ENTRYPOINT \["seqserve"', "seqserve as the entrypoint (PID 1, gets SIGTERM)")]:
        if not re.search(needed, runtime_stage, re.M):
            problems.append(f"runtime stage lacks {why}")

    for problem in problems:
        print("FAIL:", problem)
    print(f"checked {len(binaries)} binaries, {len(runtime_packages)} runtime packages, "
          f"{len(build_packages)} build packages: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
