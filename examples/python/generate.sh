#!/usr/bin/env bash
# Generates the Python message classes (*_pb2.py) and the gRPC stub (tesseract_pb2_grpc.py) from the
# repository's proto/ into examples/python/generated/. Nothing else is needed to call the service.
#
# The contract uses proto3 `optional` (FiniteDifferenceOptions.eps, num_samples, seed), which needs
# protoc >= 3.15. Two generators qualify, tried in this order:
#   1. `$PYTHON -m grpc_tools.protoc` when its bundled protoc is new enough (pip's grpcio-tools is;
#      Debian 12's python3-grpc-tools 1.14 bundles protoc 3.5.1 and is skipped);
#   2. `protoc` + `grpc_python_plugin` (Debian: protobuf-compiler, protobuf-compiler-grpc; both 3.21 /
#      1.51, the versions of python3-protobuf and python3-grpcio).
# Environment: PYTHON (default /usr/bin/python3), PROTOC (default protoc),
# GRPC_PYTHON_PLUGIN (default: grpc_python_plugin on PATH), OUT (default examples/python/generated).
# `generate.sh --check` only reports which generator would be used (exit 0) or why none works (exit 3).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
PYTHON="${PYTHON:-/usr/bin/python3}"
PROTOC="${PROTOC:-protoc}"
GRPC_PYTHON_PLUGIN="${GRPC_PYTHON_PLUGIN:-$(command -v grpc_python_plugin || true)}"
OUT="${OUT:-$here/generated}"
PROTOS=(tesseract/v1/tensor.proto tesseract/v1/algorithm.proto tesseract/v1/tesseract.proto tesseract/mesh/v1/mesh.proto
        tesseract/examples/meshstats/v1/meshstats.proto)

# "libprotoc 3.21.12" / "libprotoc 25.1" -> success when the version is at least 3.15.
supports_optional() {
  local version major minor
  version="$("$@" --version 2>/dev/null | awk '{print $2}')" || return 1
  [ -n "$version" ] || return 1
  major="${version%%.*}"
  minor="$(echo "$version" | cut -d. -f2)"
  [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 15 ]; }
}

generator=()
if "$PYTHON" -c "import grpc_tools.protoc" 2>/dev/null && supports_optional "$PYTHON" -m grpc_tools.protoc; then
  generator=("$PYTHON" -m grpc_tools.protoc)
elif command -v "$PROTOC" >/dev/null && supports_optional "$PROTOC" && [ -n "$GRPC_PYTHON_PLUGIN" ]; then
  generator=("$PROTOC" "--plugin=protoc-gen-grpc_python=$GRPC_PYTHON_PLUGIN")
fi

if [ ${#generator[@]} -eq 0 ]; then
  {
    echo "generate.sh: no protoc that understands proto3 'optional' (needs >= 3.15) with the gRPC Python plugin."
    if "$PYTHON" -c "import grpc_tools.protoc" 2>/dev/null; then
      echo "  $PYTHON -m grpc_tools.protoc is $("$PYTHON" -m grpc_tools.protoc --version 2>/dev/null) (too old)."
    fi
    echo "  Debian/Ubuntu: sudo apt-get install protobuf-compiler protobuf-compiler-grpc"
    echo "  or, in a virtual environment: pip install grpcio grpcio-tools protobuf (and PYTHON=path/to/venv/python)"
  } >&2
  exit 3
fi

if [ "${1:-}" = "--check" ]; then
  echo "generator: ${generator[*]} ($("${generator[0]}" "${generator[@]:1}" --version 2>/dev/null || true))"
  exit 0
fi

rm -rf "$OUT"
mkdir -p "$OUT"
"${generator[@]}" -I "$repo/proto" --python_out="$OUT" --grpc_python_out="$OUT" "${PROTOS[@]}"
echo "generated $(find "$OUT" -name '*.py' | wc -l) modules in $OUT with ${generator[*]}"
