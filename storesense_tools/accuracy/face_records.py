"""Every face of every image with its quality measures and two embeddings: the lever data.

Why a record pass beside ``face_eval.embed_images``: the levers of issue 13 (a looser quality
gate, a second detection pass, flip averaging) each change *which* embedding an image yields.
Re-running the whole pipeline once per lever and per gate setting would cost a cold LFW pass
(minutes on the dev VM) each time. Instead one pass keeps, per image, every detected face
(up to ``MAX_FACES`` nearest the centre) with its gate measures (inter-ocular pixels,
sharpness, frontalness), the embedding of its aligned chip and the embedding of the mirrored
chip; a second detection pass (dlib HOG, upsampled) is run and kept whenever the first pass
gave no face that passes the default gate. Any lever setting is then a *selection* over the
records (``select``), counted offline in milliseconds.

The stages are the live ones (``FacePipeline.detect_tagged``, ``FaceEmbedder.landmarks`` /
``chip`` / ``embed_chip``, ``face_quality``'s measures), so the selection for the default
gate, first pass only, no flip, reproduces ``embed_images`` image for image
(``tests/scripts/test_accuracy_report.py`` checks this on ORL).
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rich.progress import Progress

from storesense.config import QualityConfig
from storesense.face_models import DEFAULT_MODEL, DLIB_RESNET, SFACE

MAX_FACES = 3  # faces per image kept, nearest the centre first (LFW/ORL: one person each)
RECORDS_VERSION = "1"

PASS_FIRST = 0  # the pipeline's own detection (BlazeFace full range + its fallbacks)
PASS_HOG1 = 1  # second pass: dlib HOG, one pyramid level up
PASS_HOG2 = 2  # second pass: dlib HOG, two levels up (only if HOG upsample 1 found nothing)


@dataclass(frozen=True)
class FaceRecords:
    """Flat per-face arrays; ``image[k]`` is the index (in ``paths`` order) of face ``k``."""

    image: np.ndarray  # (F,) int
    detect_pass: np.ndarray  # (F,) int: PASS_*
    off_centre: np.ndarray  # (F,) float: box-centre distance from the image centre, pixels
    face_px: np.ndarray  # (F,) inter-ocular distance
    sharpness: np.ndarray  # (F,)
    frontalness: np.ndarray  # (F,)
    emb: np.ndarray  # (F, 128) float32
    emb_flip: np.ndarray  # (F, 128) float32: the mirrored chip
    n_images: int
    model: str = DEFAULT_MODEL  # the embedding model of emb / emb_flip (storesense.face_models)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            image=self.image,
            detect_pass=self.detect_pass,
            off_centre=self.off_centre,
            face_px=self.face_px,
            sharpness=self.sharpness,
            frontalness=self.frontalness,
            emb=self.emb,
            emb_flip=self.emb_flip,
            n_images=np.array(self.n_images),
            model=np.array(self.model),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FaceRecords:
        z = np.load(path)
        return cls(
            z["image"],
            z["detect_pass"],
            z["off_centre"],
            z["face_px"],
            z["sharpness"],
            z["frontalness"],
            z["emb"],
            z["emb_flip"],
            int(z["n_images"]),
            str(z["model"]) if "model" in z else DLIB_RESNET,
        )


@dataclass(frozen=True)
class Variant:
    """One lever setting: which faces may be used and how an image's embedding is formed."""

    name: str
    min_face_px: float = QualityConfig().min_face_px
    min_sharpness: float = QualityConfig().min_sharpness
    min_frontalness: float = QualityConfig().min_frontalness
    second_pass: bool = False
    flip: bool = False


def live_variant() -> Variant:
    """The ``Variant`` the live ``FacePipeline.for_photos()`` computes (enrolment, evaluation).

    Read from the pipeline's own constants and ``QualityConfig``, so a changed default
    changes the report; ``tests/scripts/test_accuracy_report.py`` checks that the selection
    equals ``face_eval.embed_images`` (the live pipeline) on real images.
    """
    from edge.entrance import face_pipeline as fp

    q = QualityConfig()
    return Variant(
        "shipped",
        q.min_face_px,
        q.min_sharpness,
        q.min_frontalness,
        second_pass=fp.PHOTO_SECOND_PASS,
        flip=fp.FLIP,
    )


def select(rec: FaceRecords, v: Variant) -> tuple[np.ndarray, np.ndarray]:
    """(N, 128) embeddings (NaN rows: no usable face) and (N,) the record used (-1: none).

    Per image: among the first-pass faces that pass ``v``'s gate, the one nearest the centre
    (the live rule); if there is none and ``v.second_pass``, the same among the second-pass
    faces. ``flip``: the mean of the chip's and the mirrored chip's embeddings.
    """
    ok = (
        (rec.face_px >= v.min_face_px)
        & (rec.sharpness >= v.min_sharpness)
        & (rec.frontalness >= v.min_frontalness)
    )
    emb = (rec.emb + rec.emb_flip) / 2.0 if v.flip else rec.emb
    if v.flip and rec.model == SFACE:  # as SFaceEmbedder.describe: the flip mean, unit length
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    out = np.full((rec.n_images, 128), np.nan, np.float32)
    used = np.full(rec.n_images, -1, np.int64)
    passes = [PASS_FIRST] + ([PASS_HOG1, PASS_HOG2] if v.second_pass else [])
    for p in passes:
        idx = np.flatnonzero(ok & (rec.detect_pass == p))
        idx = idx[np.isnan(out[rec.image[idx], 0])]  # images still without a face
        if not len(idx):
            continue
        # nearest the centre per image: sort by (image, off_centre), keep the first of each
        order = idx[np.lexsort((rec.off_centre[idx], rec.image[idx]))]
        imgs, first = np.unique(rec.image[order], return_index=True)
        pick = order[first]
        out[imgs] = emb[pick]
        used[imgs] = pick
    return out, used


# --------------------------------------------------------------------------- the record pass

_STATE: dict[str, object] = {}


def _worker_init(model: str = DEFAULT_MODEL) -> None:
    os.environ["STORESENSE_TFLITE_THREADS"] = "1"  # one worker per core already
    from edge.entrance.face_detect import DlibHogDetector
    from edge.entrance.face_pipeline import FacePipeline

    _STATE["pipe"] = FacePipeline(model=model)
    _STATE["hog1"] = DlibHogDetector(1)
    _STATE["hog2"] = DlibHogDetector(2)


def _image_records(path: Path) -> list[tuple[int, float, float, float, float, bytes, bytes]]:
    """The faces of one image: (pass, off-centre, px, sharpness, frontalness, emb, emb_flip)."""
    import cv2

    from edge.entrance.face_detect import DlibHogDetector
    from edge.entrance.face_pipeline import FaceImageError, FacePipeline, load_rgb
    from edge.entrance.face_quality import frontalness, inter_ocular_px, sharpness
    from edge.entrance.face_types import DetectedFace

    pipe = _STATE["pipe"]
    assert isinstance(pipe, FacePipeline)
    try:
        rgb = load_rgb(path)
    except FaceImageError:
        return []
    cy, cx = rgb.shape[0] / 2, rgb.shape[1] / 2
    out: list[tuple[int, float, float, float, float, bytes, bytes]] = []

    def off(f: DetectedFace) -> float:
        x1, y1, x2, y2 = f.box
        return float(np.hypot((x1 + x2) / 2 - cx, (y1 + y2) / 2 - cy))

    def add(faces: Sequence[tuple[DetectedFace, str]], pass_: int) -> None:
        for f, source in sorted(faces, key=lambda fs: off(fs[0]))[:MAX_FACES]:
            lm = pipe.embedder.landmarks(rgb, f, source)
            if lm.shape != (5, 2) or not np.isfinite(lm).all():
                continue
            chip = pipe.embedder.chip(rgb, lm)
            net_input = pipe.embedder.model_input(rgb, lm, chip)
            e = pipe.embedder.embed_chip(net_input)
            ef = pipe.embedder.embed_chip(np.ascontiguousarray(net_input[:, ::-1]))
            out.append(
                (
                    pass_,
                    off(f),
                    inter_ocular_px(lm),
                    sharpness(chip),
                    frontalness(lm),
                    e.tobytes(),
                    ef.tobytes(),
                )
            )

    add(pipe.detect_tagged(rgb), PASS_FIRST)
    gate = pipe.gate
    if any(
        r[2] >= gate.min_face_px and r[3] >= gate.min_sharpness and r[4] >= gate.min_frontalness
        for r in out
    ):
        return out
    # second pass on the (≤ 640 px) detector view, boxes mapped back to full resolution
    scale = 1.0
    view = rgb
    if max(rgb.shape[:2]) > 640:
        scale = 640 / max(rgb.shape[:2])
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        view = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    for pass_, key in ((PASS_HOG1, "hog1"), (PASS_HOG2, "hog2")):
        det = _STATE[key]
        assert isinstance(det, DlibHogDetector)
        found = det.detect(view)
        if found:
            back = [
                (DetectedFace(tuple(c / scale for c in f.box), f.score, None), "dlib-hog")  # type: ignore[arg-type]
                for f in found
            ]
            add(back, pass_)
            break
    return out


def _stage_sources() -> list[str]:
    """The source text of exactly the code a record is computed with.

    Finer than ``embed_images``'s whole-file key on purpose: the record pass is the costly
    part of the report (two ResNet runs a face), and an edit elsewhere in the face modules
    (say, a new pipeline option) must not throw it away, while any edit to a stage it runs
    through must.
    """
    import inspect

    from edge.entrance import face_detect, face_embed, face_pipeline, face_quality, face_types

    fp, fe, fq = face_pipeline, face_embed, face_quality
    objs: list[object] = [
        face_detect,  # detectors, NMS, anchors: all of it
        face_types,
        fp.load_rgb,
        fp.FacePipeline.detect_tagged,
        fp.FacePipeline._fallback,
        fp._rescale,
        fp._tiled,
        fe.dlib_box,
        fe.FaceEmbedder._shape_of,
        fe.FaceEmbedder.landmarks,
        fe.FaceEmbedder.chip,
        fe.FaceEmbedder.embed_chip,
        fe.FaceEmbedder.model_input,
        fe.SFaceEmbedder.model_input,
        fe.SFaceEmbedder.embed_chip,
        fe.similarity,
        fq.eye_centres,
        fq.inter_ocular_px,
        fq.frontalness,
        fq.sharpness,
        _image_records,
    ]
    out = [inspect.getsource(o) for o in objs]  # type: ignore[arg-type]
    out.append(repr(sorted(fe.BOX_MAPS.items())) + repr((fe.CHIP_SIZE, fe.CHIP_PADDING)))
    out.append(repr(fe.DLIB_IN_SFACE.tolist()) + repr((fe.SFACE_FILE, fe.SFACE_SIZE)))
    out.append(repr((fq.SHARPNESS_SIDE, fq.SHARPNESS_STD, MAX_FACES)))
    return out


def records_key(paths: Sequence[Path], model: str = DEFAULT_MODEL) -> str:
    """Cache key: the stage code (``_stage_sources``), detector weights, dlib models, files.

    ``QualityConfig`` (thresholds) is deliberately not in it: the records keep every face
    with its raw measures, whatever the thresholds.
    """
    from edge.model_files import MODELS_DIR

    h = hashlib.sha256(RECORDS_VERSION.encode())
    h.update(model.encode())
    for src in _stage_sources():
        h.update(src.encode())
    for weights in sorted(MODELS_DIR.glob("*.tflite")) + sorted(MODELS_DIR.glob("*.onnx")):
        h.update(weights.read_bytes())
    for dist in ("dlib-bin", "face_recognition_models"):
        h.update(f"{dist}=={version(dist)}".encode())
    for p in paths:
        h.update(str(p).encode())
    return h.hexdigest()[:20]


def face_records(
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    cache_dir: Path | None = None,
    label: str = "face records",
    model: str = DEFAULT_MODEL,
) -> FaceRecords:
    """The records of ``paths`` (cached; a cold LFW pass is two network runs per face)."""
    cache_dir = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    cache = cache_dir / "storesense" / f"face-records-{records_key(paths, model)}.npz"
    if cache.exists():
        return FaceRecords.load(cache)
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    rows: list[tuple[int, tuple[int, float, float, float, float, bytes, bytes]]] = []
    with (
        mp.get_context("fork").Pool(workers, initializer=_worker_init, initargs=(model,)) as pool,
        Progress(transient=True) as progress,
    ):
        task = progress.add_task(f"{label} ({len(paths)} images)", total=len(paths))
        for i, recs in enumerate(pool.imap(_image_records, paths, chunksize=8)):
            rows += [(i, r) for r in recs]
            progress.advance(task)
    f = len(rows)

    def col(j: int) -> np.ndarray:
        return np.array([r[j] for _, r in rows], np.float64)

    rec = FaceRecords(
        image=np.array([i for i, _ in rows], np.int64),
        detect_pass=np.array([r[0] for _, r in rows], np.int64),
        off_centre=col(1),
        face_px=col(2),
        sharpness=col(3),
        frontalness=col(4),
        emb=np.frombuffer(b"".join(r[5] for _, r in rows), np.float32).reshape(f, 128),
        emb_flip=np.frombuffer(b"".join(r[6] for _, r in rows), np.float32).reshape(f, 128),
        n_images=len(paths),
        model=model,
    )
    rec.save(cache)
    return rec
