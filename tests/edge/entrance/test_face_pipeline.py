"""End-to-end pipeline: colour order, file decoding, errors, counters, ROI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import edge.entrance.face_pipeline as fp
from edge.entrance.face_pipeline import FaceImageError, FacePipeline, load_rgb
from storesense.face_models import DECISION_DEFAULTS

LFW = "faces/lfw-dev/Colin_Powell/Colin_Powell_0001.jpg"


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline("blazeface-full")


def _emb(obs: list) -> np.ndarray:
    assert len(obs) == 1 and obs[0].embedding is not None
    return obs[0].embedding


def test_bgr_and_rgb_paths_agree(shared_data: Path, pipeline: FacePipeline) -> None:
    rgb = load_rgb(shared_data / LFW)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    np.testing.assert_allclose(_emb(pipeline.process_bgr(bgr)), _emb(pipeline.process_rgb(rgb)))
    # feeding the wrong order measurably moves the embedding (0.24 on this face)
    swapped = _emb(pipeline.process_rgb(bgr))
    assert np.linalg.norm(swapped - _emb(pipeline.process_rgb(rgb))) > 0.1


def test_process_bgr_converts_exactly_once(
    shared_data: Path, pipeline: FacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = cv2.cvtColor

    def spy(img: np.ndarray, code: int, *a: object) -> np.ndarray:
        if code in (cv2.COLOR_BGR2RGB, cv2.COLOR_RGB2BGR):
            calls.append(code)
        return real(img, code, *a)

    monkeypatch.setattr(cv2, "cvtColor", spy)
    bgr = np.ascontiguousarray(load_rgb(shared_data / LFW)[:, :, ::-1])
    assert len(pipeline.process_bgr(bgr)) == 1
    assert calls == [cv2.COLOR_BGR2RGB]


def test_corrupt_and_missing_files_raise_face_image_error(
    tmp_path: Path, shared_data: Path, pipeline: FacePipeline
) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((shared_data / LFW).read_bytes()[:600])
    for path in (junk, truncated, tmp_path / "missing.png"):
        with pytest.raises(FaceImageError):
            pipeline.observations_from_image_file(path)
    assert issubclass(FaceImageError, ValueError)


def test_file_modes_and_exif_rotation(
    tmp_path: Path, shared_data: Path, pipeline: FacePipeline
) -> None:
    ref = _emb(pipeline.observations_from_image_file(shared_data / LFW))
    im = Image.open(shared_data / LFW)
    im.convert("P").save(tmp_path / "p.gif")
    im.convert("RGBA").save(tmp_path / "a.png")
    im.convert("L").save(tmp_path / "l.png")
    # stored rotated 90° CW with Orientation=8 (display needs 90° CCW... i.e. undo it)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    # palette dithering and dropping colour move the embedding, but well inside a match: the
    # tolerances are shares of the model's own match threshold (distances differ by model)
    threshold = DECISION_DEFAULTS[pipeline.model_id].threshold
    for name, share in (("p.gif", 0.7), ("a.png", 1e-4), ("l.png", 0.8), ("rot.jpg", 0.35)):
        vec = _emb(pipeline.observations_from_image_file(tmp_path / name))
        assert np.linalg.norm(vec - ref) < share * threshold, name


def test_rejections_are_counted(shared_data: Path) -> None:
    pipe = FacePipeline("blazeface-full")
    rgb = load_rgb(shared_data / LFW)
    pipe.process_rgb(cv2.GaussianBlur(rgb, (0, 0), 2.5))
    pipe.process_rgb(cv2.resize(rgb, (70, 70), interpolation=cv2.INTER_AREA))
    assert pipe.rejections["blurry"] == 1 and pipe.rejections["too_small"] >= 1


def test_roi_and_downscale_keep_frame_coordinates(
    shared_data: Path, pipeline: FacePipeline
) -> None:
    rgb = load_rgb(shared_data / "faces/deepface/img1.jpg")  # 1382x1868: detected at 640
    obs = pipeline.process_rgb(rgb)
    assert len(obs) == 1
    x1, y1, x2, _ = obs[0].face.box
    lm = obs[0].landmarks
    assert (lm[:, 0] > x1).all() and (lm[:, 0] < x2).all() and x2 - x1 > 300
    h, w = rgb.shape[:2]
    right_of_face = FacePipeline("blazeface-full", roi=(int(x2) + 50, 0, w, h), fallback="none")
    assert right_of_face.process_rgb(rgb) == []
    around = FacePipeline("blazeface-full", roi=(int(x1) - 100, int(y1) - 100, w, h))
    box = around.process_rgb(rgb)[0].face.box
    np.testing.assert_allclose(box, obs[0].face.box, atol=0.08 * (x2 - x1))


def test_empty_and_tiny_frames(pipeline: FacePipeline) -> None:
    assert pipeline.process_bgr(np.zeros((0, 0, 3), np.uint8)) == []
    assert pipeline.process_rgb(np.zeros((3, 3), np.uint8)) == []
    assert pipeline.process_rgb(np.zeros((480, 640), np.uint8)) == []


def test_module_exports() -> None:
    assert fp.FacePipeline is FacePipeline


def test_lazy_embedding_equals_eager(shared_data: Path) -> None:
    """The agent's analyse → embed path gives the very embedding enrolment computes."""
    pipeline = FacePipeline()
    rgb = load_rgb(shared_data / "faces" / "orl" / "s3" / "1.pgm")
    eager = pipeline.process_rgb(rgb)
    lazy = pipeline.analyse_rgb(rgb)
    assert len(eager) == len(lazy) == 1
    assert lazy[0].embedding is None and lazy[0].needs_embedding
    embedded = pipeline.embed(lazy[0])
    np.testing.assert_array_equal(embedded.embedding, eager[0].embedding)
