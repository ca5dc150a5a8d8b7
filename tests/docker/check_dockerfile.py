#!/usr/bin/python3
"""Checks docker/Dockerfile against the build without a container engine.

- the sources stage copies every directory the top-level CMakeLists.txt
  always builds, the build stage takes them from it and installs the
  packages listed in scripts/debian-packages.txt (read from the file, so a
  package added there reaches the image);
- every find_package() in the CMake files has its Debian package in that list;
- docker/runtime-closure.sh, which fills the final stage, carries everything
  the given binaries load: with the loader it copied and only the
  directories it filled, every library resolves inside its root, and the
  copied seqmodel runs there on a sample model;
- the final stage is that root and the samples, FROM scratch, runs as the
  non-root user the build stage writes into /etc/passwd, with a health
  check by seqclient on the port it exposes and seqserve as the entrypoint.

Usage: check_dockerfile.py REPO_ROOT BINARY...
"""
import os
import re
import subprocess
import sys
import tempfile

# find_package() name -> the Debian package that provides it.
FIND_PACKAGE = {
    "Protobuf": "libprotobuf-dev", "gRPC": "libgrpc++-dev", "absl": "libabsl-dev",
    "spdlog": "libspdlog-dev", "ONNX": "libonnx-dev", "GTest": "libgtest-dev",
    "benchmark": "libbenchmark-dev", "nlohmann_json": "nlohmann-json3-dev",
    "PkgConfig": "pkg-config", "OpenSSL": "libssl-dev", "Boost": "libboost1.74-dev",
    "CURL": "libcurl4-openssl-dev",
}
problems = []


def read_list(path):
    with open(path) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def check_build_stage(root, sources_stage, build_stage):
    copied = set(re.findall(r"^COPY (\w+) /src/\1$", sources_stage, re.M))
    top = open(os.path.join(root, "CMakeLists.txt")).read()
    always = set(re.findall(r"^add_subdirectory\((\w+)\)", top, re.M))
    for directory in sorted(always - copied):
        problems.append(f"sources stage does not COPY {directory}/, which CMake always builds")
    # Directories those CMakeLists read files from (scripts, assets).
    for directory in sorted(always & copied):
        listing = open(os.path.join(root, directory, "CMakeLists.txt")).read()
        for used in sorted(set(re.findall(r"\$\{PROJECT_SOURCE_DIR\}/(\w+)/", listing))):
            if used not in copied:
                problems.append(f"sources stage does not COPY {used}/, which "
                                f"{directory}/CMakeLists.txt reads from")
    if not re.search(r"^COPY --from=sources /src /src$", build_stage, re.M):
        problems.append("build stage does not copy the sources stage's /src")
    if not re.search(r"^COPY scripts/debian-packages.txt (\S+)\n(?:.*\n)*?.*\1[^\n]*\n"
                     r"\s*\|\s*xargs apt-get install", build_stage, re.M):
        problems.append("build stage does not install the packages of scripts/debian-packages.txt")

    build_packages = read_list(os.path.join(root, "scripts/debian-packages.txt"))
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories
                             if not d.startswith(("build", ".")) and d != "node_modules"]
        for name in files:
            if name != "CMakeLists.txt":
                continue
            for package in re.findall(r"find_package\((\w+)", open(os.path.join(directory, name)).read()):
                debian = FIND_PACKAGE.get(package)
                if debian is None:
                    problems.append(f"find_package({package}) has no known Debian package")
                elif debian not in build_packages:
                    problems.append(f"find_package({package}) needs {debian}, not in the list")
    if "find_library(DNNL_LIBRARY" in top and "libdnnl-dev" not in build_packages:
        problems.append("oneDNN is linked but libdnnl-dev is not in the list")
    if ("docker/runtime-closure.sh" not in sources_stage
            or "/src/docker/runtime-closure.sh /rootfs" not in build_stage):
        problems.append("build stage does not collect the runtime with docker/runtime-closure.sh")


def check_closure(root, binaries):
    with tempfile.TemporaryDirectory() as image_root:
        subprocess.run([os.path.join(root, "docker/runtime-closure.sh"), image_root] + binaries,
                       check=True)
        loaders = [os.path.join(image_root, "lib64", name)
                   for name in os.listdir(os.path.join(image_root, "lib64"))]
        if len(loaders) != 1:
            problems.append(f"the closure holds {len(loaders)} dynamic loaders, not one")
            return
        loader = loaders[0]
        library_dirs = sorted({os.path.dirname(os.path.join(d, f))
                               for d, _, files in os.walk(image_root) for f in files
                               if ".so" in f and d != os.path.dirname(loader)})
        # The copied loader, searching the copied directories before any
        # other: a library missing from the root would resolve outside it.
        isolated = [loader, "--inhibit-cache", "--library-path", ":".join(library_dirs)]
        for binary in binaries:
            copied = os.path.join(image_root, "usr/local/bin", os.path.basename(binary))
            listing = subprocess.run(isolated + ["--list", copied], capture_output=True,
                                     text=True, check=True).stdout
            for line in listing.splitlines():
                match = re.search(r"=> (\S+)", line)
                if match and not match.group(1).startswith(image_root + "/"):
                    problems.append(f"{os.path.basename(binary)} loads {line.split()[0]} from "
                                    f"{match.group(1)}, outside the image's root")
        seqmodel = os.path.join(image_root, "usr/local/bin/seqmodel")
        if os.path.exists(seqmodel):
            run = subprocess.run(isolated + [seqmodel, "run", "--format", "csv",
                                             os.path.join(root, "models/species/1/model.onnx")],
                                 input="4,0,1\n", capture_output=True, text=True)
            # (limbs 4, lays eggs 0, has hair 1): class 1, mammal.
            if run.returncode != 0 or "\n0,1," not in run.stdout:
                problems.append(f"seqmodel from the image's root does not classify: "
                                f"{run.stdout}{run.stderr}")
        print(f"closure: {len(os.listdir(os.path.join(image_root, 'usr/local/bin')))} programs, "
              f"{sum(len(f) for _, _, f in os.walk(image_root))} files")


def check_final_stage(build_stage, final_stage):
    if not final_stage.startswith("FROM scratch\n"):
        problems.append("the final stage does not start FROM scratch")
    if re.search(r"^RUN ", final_stage, re.M):
        problems.append("the final stage RUNs a command: it has no shell")
    if not re.search(r"^COPY --from=build (\S+) /$", final_stage, re.M):
        problems.append("the final stage does not copy the build stage's root")
    user = re.search(r"^USER (\d+)(?::(\d+))?$", final_stage, re.M)
    if not user or user.group(1) == "0":
        problems.append("the final stage lacks a numeric non-root USER")
    elif not re.search(rf"^.*:x:{user.group(1)}:{user.group(2) or user.group(1)}:.*>> "
                       r"/rootfs/etc/passwd", build_stage, re.M):
        problems.append(f"no /etc/passwd entry for uid {user.group(1)}")
    expose = re.search(r"^EXPOSE (\d+)", final_stage, re.M)
    entrypoint = re.search(r'^ENTRYPOINT \["seqserve", "--port=(\d+)"', final_stage, re.M)
    health = re.search(r'(?s)^HEALTHCHECK.*?CMD \["seqclient", "--target=127\.0\.0\.1:(\d+)"'
                       r'[^\n]*"health"\]', final_stage, re.M)
    if not expose or not entrypoint or not health:
        problems.append("the final stage lacks EXPOSE, an ENTRYPOINT running seqserve "
                        "(PID 1, gets SIGTERM) with --port, or a HEALTHCHECK by seqclient health")
    elif not expose.group(1) == entrypoint.group(1) == health.group(1):
        problems.append(f"ports differ: EXPOSE {expose.group(1)}, seqserve --port="
                        f"{entrypoint.group(1)}, health check {health.group(1)}")
    http = re.search(r'^ENTRYPOINT \[.*"--http_port=(\d+)"', final_stage, re.M)
    exposed = re.search(r"^EXPOSE ([\d ]+)$", final_stage, re.M)
    if http and (not exposed or http.group(1) not in exposed.group(1).split()):
        problems.append(f"the HTTP port {http.group(1)} is not exposed")
    if not re.search(r"^COPY models /models$", final_stage, re.M):
        problems.append("the final stage lacks the sample models at /models")


def main(root, binaries):
    dockerfile = open(os.path.join(root, "docker/Dockerfile")).read()
    stages = re.split(r"\n(?=FROM )", dockerfile)[1:]
    heads = [stage.split("\n", 1)[0] for stage in stages]
    if heads[:2] != ["FROM scratch AS sources", "FROM debian:12-slim AS build"] or len(stages) != 3:
        problems.append(f"expected the stages sources, build and a final one, found {heads}")
    else:
        check_build_stage(root, stages[0], stages[1])
        check_final_stage(stages[1], stages[2])
    check_closure(root, binaries)

    for problem in problems:
        print("FAIL:", problem)
    print(f"checked {len(binaries)} binaries: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
