"""Open-set evaluation with the live pipeline and the live decision rule.

Lives beside enrolment, not in ``hub/``: it composes the edge pipeline with the hub matcher,
and the hub itself never imports edge code.

``storesense eval faces`` and the threshold calibration both come through here, so the numbers
in docs/calibration.md are the numbers of the code that runs at the door: the same
``FacePipeline`` (detector, alignment, quality gate, embedding) and the same
``OpenSetPolicy.decide_one`` at the configured threshold and margin.

Which face of a photo is the labelled person: the quality-passing face nearest the image
centre (the convention of LFW and of most labelled face sets).
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing as mp
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from rich.progress import Progress

from hub.faces.matcher import Aggregation, OpenSetPolicy, TemplateIndex, customer_rows
from storesense.config import QualityConfig, RecognitionConfig
from storesense.face_models import DEFAULT_MODEL

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CACHE_VERSION = "1"


def identity_images(root: Path) -> list[tuple[str, Path]]:
    """``root/<identity>/<image>`` pairs, sorted for a stable order."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                out.append((d.name, f))
    return out


_PIPELINE = None


def _worker_init(model: str = DEFAULT_MODEL) -> None:
    global _PIPELINE
    from edge.entrance.face_pipeline import FacePipeline

    os.environ["STORESENSE_TFLITE_THREADS"] = "1"  # one worker per core already

    _PIPELINE = FacePipeline.for_photos(model=model)  # still images: what enrolment runs


def _central_embedding(path: Path) -> np.ndarray | None:
    """Embedding of the usable face nearest the image centre; None if there is none."""
    from edge.entrance.face_pipeline import FaceImageError, FaceObservation, load_rgb

    assert _PIPELINE is not None
    try:
        rgb = load_rgb(path)
    except FaceImageError:
        return None
    usable = [o for o in _PIPELINE.process_rgb(rgb) if o.embedding is not None]
    if not usable:
        return None
    cy, cx = rgb.shape[0] / 2, rgb.shape[1] / 2

    def off_centre(o: FaceObservation) -> float:
        x1, y1, x2, y2 = o.face.box
        return ((x1 + x2) / 2 - cx) ** 2 + ((y1 + y2) / 2 - cy) ** 2

    return min(usable, key=off_centre).embedding


def _cache_key(paths: Sequence[Path], model: str = DEFAULT_MODEL) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    h.update(model.encode())
    from edge.model_files import MODELS_DIR

    # The face code and the detector weights, found through the package (the face modules
    # live in edge/entrance since the rooms layout; a glob of edge/ itself now finds none).
    entrance = Path(str(resources.files("edge.entrance")))
    models = sorted(MODELS_DIR.glob("*.tflite")) + sorted(MODELS_DIR.glob("*.onnx"))
    for src in sorted(entrance.glob("face_*.py")) + models:
        h.update(src.read_bytes())
    # What else decides an embedding: the quality gate's defaults (they live in the config
    # models, not in edge/) and the installed dlib model weights.
    from importlib.metadata import version

    h.update(QualityConfig().model_dump_json().encode())
    for dist in ("dlib-bin", "face_recognition_models"):
        h.update(f"{dist}=={version(dist)}".encode())
    for p in paths:
        h.update(str(p).encode())
    return h.hexdigest()[:20]


def embed_images(
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    cache_dir: Path | None = None,
    label: str = "embedding",
    model: str = DEFAULT_MODEL,
) -> np.ndarray:
    """(N, 128) float32, NaN rows where no usable face. Cached by pipeline code, embedding
    model and file list."""
    cache_dir = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    cache = cache_dir / "storesense" / f"embeddings-{_cache_key(paths, model)}.npy"
    if cache.exists():
        return np.load(cache)
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    out = np.full((len(paths), 128), np.nan, dtype=np.float32)
    with (
        mp.get_context("fork").Pool(workers, initializer=_worker_init, initargs=(model,)) as pool,
        Progress(transient=True) as progress,
    ):
        task = progress.add_task(f"{label} ({len(paths)} images)", total=len(paths))
        for i, emb in enumerate(pool.imap(_central_embedding, paths, chunksize=8)):
            if emb is not None:
                out[i] = emb
            progress.advance(task)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


def build_index(
    ids: Sequence[str],
    embeddings: np.ndarray,
    cohort_size: int = 0,
    aggregation: Aggregation | None = None,
) -> tuple[TemplateIndex, list[str]]:
    """Index of every enrol image with a face; labels are positions in the returned id list.

    ``cohort_size``: as ``TemplateIndex``'s (a policy with ``cohort_k`` needs that many).
    ``aggregation``: how a customer's templates become index rows, as the hub does it
    (``hub.faces.matcher.customer_rows``); ``None``: ``RecognitionConfig``'s default.
    """
    names = sorted({i for i, e in zip(ids, embeddings, strict=True) if np.isfinite(e).all()})
    pos = {n: k for k, n in enumerate(names)}
    keep = [k for k, e in enumerate(embeddings) if np.isfinite(e).all()]
    labels = np.array([pos[ids[k]] for k in keep], dtype=np.int64)
    agg = RecognitionConfig().aggregation if aggregation is None else aggregation
    rows = customer_rows(labels, embeddings[keep].reshape(-1, 128), agg)
    return TemplateIndex(*rows, cohort_size=cohort_size), names


def lfw_split(lfw: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]], list[Path]]:
    """LFW open-set split: (enrol pairs, probe pairs, all paths in embedding order).

    The first image of each person with >= 2 images is enrolled; their other images are
    genuine probes; single-image people are strangers who were never enrolled.
    """
    pairs = identity_images(lfw)
    by_id: dict[str, list[Path]] = {}
    for ident, path in pairs:
        by_id.setdefault(ident, []).append(path)
    enrol: list[tuple[str, Path]] = []
    probes: list[tuple[str, Path]] = []
    for ident, paths in by_id.items():
        if len(paths) >= 2:
            enrol.append((ident, paths[0]))
            probes.extend((ident, p) for p in paths[1:])
        else:
            probes.append((ident, paths[0]))
    return enrol, probes, [p for _, p in pairs]


def policy_from(cfg: RecognitionConfig | None = None) -> OpenSetPolicy:
    """The hub's policy for ``cfg`` (``OpenSetPolicy.from_config``: the two cannot drift)."""
    return OpenSetPolicy.from_config(cfg)


def run_face_eval(
    enroll_dir: Path,
    probe_dir: Path,
    out_csv: Path,
    *,
    policy: OpenSetPolicy | None = None,
    workers: int | None = None,
    recognition: RecognitionConfig | None = None,
) -> dict:
    """Evaluate, write one CSV row per probe image, return the JSON summary.

    The CSV contract is ``probe,true_id,nearest_id,distance,decision``, one row per probe;
    a probe with no usable face has empty ``nearest_id``, ``distance`` and ``decision``.

    Counting rules (issue 13): a genuine probe (its person is enrolled) with no usable face
    is a **miss** in DIR and in rank-1 — the store experiences it as a customer not
    recognised, and leaving it out of the denominator flatters the door. FPIR is counted over
    the stranger probes with a usable face (a faceless stranger cannot be matched, so leaving
    them out is the conservative side). ``identified_rate`` and ``stranger_match_rate`` are
    the same figures as ``dir`` and ``fpir`` under their older names.
    """
    for d in (enroll_dir, probe_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a folder of <identity>/<images>")
    rc = recognition or RecognitionConfig()
    policy = policy or policy_from(rc)
    enrol = identity_images(enroll_dir)
    probes = identity_images(probe_dir)
    e_emb = embed_images([p for _, p in enrol], workers=workers, label="enrol", model=rc.model)
    index, names = build_index([i for i, _ in enrol], e_emb, policy.cohort_k, rc.aggregation)
    p_emb = embed_images([p for _, p in probes], workers=workers, label="probe", model=rc.model)
    enrolled = set(names)
    n_genuine = n_strangers = rank1 = identified = strangers_matched = 0
    no_face_genuine = no_face_stranger = 0
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["probe", "true_id", "nearest_id", "distance", "decision"])
        for (true_id, path), emb in zip(probes, p_emb, strict=True):
            rel = str(path.relative_to(probe_dir))
            genuine = true_id in enrolled
            if not np.isfinite(emb).all():
                w.writerow([rel, true_id, "", "", ""])
                n_genuine += genuine  # a miss: in the denominator, never identified
                no_face_genuine += genuine
                no_face_stranger += not genuine
                continue
            hit = index.search(emb)[0]
            nearest = names[hit.label] if hit.label >= 0 else ""
            decided = policy.decide_one(hit)
            decision = names[decided] if decided is not None else ""
            w.writerow([rel, true_id, nearest, f"{hit.distance:.4f}", decision])
            if genuine:
                n_genuine += 1
                rank1 += nearest == true_id
                identified += decision == true_id
            else:
                n_strangers += 1
                strangers_matched += decision != ""
    dir_ = round(identified / n_genuine, 4) if n_genuine else None
    fpir = round(strangers_matched / n_strangers, 4) if n_strangers else None
    r1 = round(rank1 / n_genuine, 4) if n_genuine else None
    n_no_face = no_face_genuine + no_face_stranger
    return {
        "n_probes": len(probes),
        "n_no_face": n_no_face,
        "n_no_face_genuine": no_face_genuine,
        "n_no_face_stranger": no_face_stranger,
        "no_face_rate": round(n_no_face / len(probes), 4) if probes else None,
        "n_enrolled_identities": len(names),
        "n_enrolled_probes": n_genuine,
        "n_stranger_probes": n_strangers,
        "rank1": r1,
        "dir": dir_,
        "fpir": fpir,
        "identified_rate": dir_,
        "stranger_match_rate": fpir,
        "counting": "DIR and rank-1 over every genuine probe, no usable face = miss; "
        "FPIR over stranger probes with a usable face",
        "summary": (
            f"rank-1 {_pct(r1)}, DIR {_pct(dir_)} ({identified} of {n_genuine}, no face = miss), "
            f"FPIR {_pct(fpir, 2)} ({strangers_matched} of {n_strangers}), no usable face "
            f"{n_no_face} of {len(probes)} probes ({no_face_genuine} genuine, "
            f"{no_face_stranger} stranger)"
        ),
        "threshold": policy.threshold,
        "margin": policy.margin,
        "model": rc.model,
    }


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"
