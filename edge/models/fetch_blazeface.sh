#!/usr/bin/env bash
# Reproduce edge/models/*.tflite and LICENSE.mediapipe from the mediapipe 0.10.21 wheel.
#
# Why from the wheel: it is the one signed, versioned artefact that carries both models and the
# licence that covers them; no mediapipe Python code is vendored, only the two .tflite files.
# Usage: edge/models/fetch_blazeface.sh [WHEEL_DIR]   (default: download into a temp dir)
set -euo pipefail

VERSION=0.10.21
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHEEL_DIR="${1:-}"
if [[ -z "$WHEEL_DIR" ]]; then
    WHEEL_DIR="$(mktemp -d)"
    trap 'rm -rf "$WHEEL_DIR"' EXIT
fi
shopt -s nullglob
wheels=("$WHEEL_DIR"/mediapipe-"$VERSION"-*.whl)
if (( ${#wheels[@]} == 0 )); then
    # The models inside are identical across platform wheels; pin the manylinux x86_64 one.
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 "mediapipe==$VERSION" -d "$WHEEL_DIR"
    wheels=("$WHEEL_DIR"/mediapipe-"$VERSION"-*.whl)
fi
WHEEL="${wheels[0]}"

python3 - "$WHEEL" "$HERE" "$VERSION" <<'PY'
import sys, zipfile
from pathlib import Path

wheel, out, version = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
members = {
    "mediapipe/modules/face_detection/face_detection_short_range.tflite":
        "face_detection_short_range.tflite",
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite":
        "face_detection_full_range_sparse.tflite",
    f"mediapipe-{version}.dist-info/LICENSE": "LICENSE.mediapipe",
}
with zipfile.ZipFile(wheel) as zf:
    for src, dst in members.items():
        (out / dst).write_bytes(zf.read(src))
        print(f"wrote {out / dst}")
PY

cd "$HERE"
sha256sum --check <<'SUMS'
bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8  face_detection_short_range.tflite
2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1  face_detection_full_range_sparse.tflite
8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8  LICENSE.mediapipe
SUMS
