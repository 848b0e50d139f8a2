#!/usr/bin/env bash
# Generates Python code and type stubs for protos/polyfleet/v1 into OUT (default: repo root).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-.}"
mkdir -p "$OUT/polyfleet/v1"
rm -f "$OUT"/polyfleet/v1/*_pb2*.py "$OUT"/polyfleet/v1/*_pb2*.pyi
log=$(mktemp)
# mypy-protobuf narrates every file it writes; show its output only when something fails.
if ! PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m grpc_tools.protoc -Iprotos \
  --python_out="$OUT" --grpc_python_out="$OUT" \
  --mypy_out="$OUT" --mypy_grpc_out="$OUT" \
  protos/polyfleet/v1/*.proto 2>"$log"; then
  cat "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
cat > "$OUT/polyfleet/v1/__init__.py" <<'PY'
"""Generated protobuf and gRPC code for the polyfleet.v1 API (see protos/). Do not edit."""
PY
