#!/usr/bin/env bash
# Installs the CRI v1 client stubs (PyPI's container-runtime-interface-api, with grpcio) into
# a virtualenv for tests/runtimes/cri.py, once; prints the venv's python. The venv lives in
# $CNI_RUNTIME_VENV, by default target/runtime-venv of this repository.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CNI_RUNTIME_VENV:-$here/target/runtime-venv}"
py="$venv/bin/python"
# Tests of one binary run in parallel and may all get here on a fresh clone: one makes the
# venv, the others wait for it (util-linux's flock).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$py" ] && "$py" -c 'import grpc, cri_api.v1.api_pb2_grpc' 2>/dev/null; then
    echo "$py"
    exit 0
fi
base="$(command -v python3)"
"$base" -m venv "$venv" >&2
"$py" -m pip install --quiet --disable-pip-version-check \
    'container-runtime-interface-api==2.0.1' >&2
"$py" -c 'import grpc, cri_api.v1.api_pb2_grpc'
echo "$py"
