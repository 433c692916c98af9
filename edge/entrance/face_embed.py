"""5-point alignment and the 128-d face embeddings: dlib's ResNet, or OpenCV Zoo's SFace.

Only the permissively licensed dlib models are used: ``shape_predictor_5_face_landmarks.dat``
and ``dlib_face_recognition_resnet_model_v1.dat`` (public domain / CC0, shipped by the
``face_recognition_models`` package). The 68-point predictor in the same package is trained
on iBUG 300-W, which is licensed for non-commercial use only, so it must never be loaded here.

The 5-point predictor was trained on boxes from dlib's own detectors. BlazeFace frames faces
a little differently, so its boxes are mapped onto the dlib framing first (``BOX_MAPS``,
measured in ``bench/face_detectors.py`` on LFW and ORL; see docs/face-detection.md). An
unmapped box shifts the landmarks, the chip and therefore the embedding.

Both embedders share the front end (dlib's 5 landmarks and the 150x150 chip the quality gate
measures); they differ in the model's input (``model_input``) and the network. SFace
(Apache-2.0, ``edge/models/README.md``) reads a 112x112 crop warped from the same 5 points
(``DLIB_IN_SFACE``), so no second landmark model is needed (docs/face-models.md).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.entrance.face_detect import as_rgb_uint8
from edge.entrance.face_types import EMBEDDING_DIM, DetectedFace
from edge.model_files import MODELS_DIR
from storesense.face_models import DEFAULT_MODEL, DLIB_RESNET, SFACE, FaceModel

if TYPE_CHECKING:  # dlib ships no types: Any to mypy, the real name to a reader
    import dlib

CHIP_SIZE = 150  # the ResNet was trained on 150x150 chips
CHIP_PADDING = 0.25  # dlib's default; the ResNet expects exactly this framing

# Map a detector box onto a dlib-HOG-like box: (dx, dy, scale) with the new centre at
# (cx + dx * w, cy + dy * h) and the new square side = scale * w. Medians of the box offsets
# between BlazeFace and HOG (upsample=1) on 300 LFW + 80 ORL faces found by both.
BOX_MAPS: dict[str, tuple[float, float, float]] = {
    "blazeface-short": (0.008, -0.036, 0.989),
    "blazeface-full": (0.014, 0.014, 0.937),
    "dlib-hog": (0.0, 0.0, 1.0),
}


def _model_path(name: str) -> str:
    # the weights are package data of face_recognition_models, found as such (no __file__ maths)
    path = Path(str(resources.files("face_recognition_models") / "models" / name))
    if not path.is_file():
        raise FileNotFoundError(f"dlib model {name} missing; reinstall face_recognition_models")
    return str(path)


def dlib_box(face: DetectedFace, detector: str) -> tuple[float, float, float, float]:
    """The box the 5-point predictor should see for ``face`` from detector ``detector``."""
    dx, dy, scale = BOX_MAPS.get(detector, (0.0, 0.0, 1.0))
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * h
    half = scale * w / 2
    return (cx - half, cy - half, cx + half, cy + half)


class FaceEmbedder:
    """Landmarks → aligned chip → 128-d descriptor, split so the gate can run between steps.

    This class is the dlib ResNet; ``SFaceEmbedder`` changes only the model's input and net.
    """

    model_id: str = DLIB_RESNET
    input_shape: tuple[int, int, int] = (CHIP_SIZE, CHIP_SIZE, 3)

    def __init__(self, num_jitters: int = 0, flip: bool = False) -> None:
        """
        Args:
            num_jitters: dlib's random-crop jitter count (0: one pass).
            flip: ``describe`` averages the chip's descriptor with its mirror image's
                (test-time flip averaging; one more ResNet pass per face, see ``describe``).
        """
        import dlib

        self._dlib = dlib
        self._shape = dlib.shape_predictor(_model_path("shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(
            _model_path("dlib_face_recognition_resnet_model_v1.dat")
        )
        # Jitter multiplies the ResNet cost by N+1 for ~0.5 % accuracy: not worth it at a door
        # where several frames per visit vote anyway.
        self.num_jitters = int(num_jitters)
        self.flip = bool(flip)

    def _shape_of(
        self, rgb: np.ndarray, box: tuple[float, float, float, float]
    ) -> dlib.full_object_detection:
        rect = self._dlib.rectangle(
            round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1
        )
        return self._shape(rgb, rect)

    def landmarks(
        self, rgb: np.ndarray, face: DetectedFace, detector: str = "dlib-hog"
    ) -> np.ndarray:
        """Five dlib landmarks (5, 2) float32 in frame pixels for a detector's face box.

        dlib order: 0-1 one eye's outer/inner corner, 2-3 the other eye's, 4 below the nose.
        """
        shape = self._shape_of(as_rgb_uint8(rgb), dlib_box(face, detector))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def chip(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 150x150 aligned RGB chip the ResNet expects (rotation, scale, crop from 5 pts)."""
        dlib = self._dlib
        pts = dlib.points()
        for x, y in np.asarray(landmarks, dtype=np.float64):
            pts.append(dlib.point(round(x), round(y)))
        xs, ys = landmarks[:, 0], landmarks[:, 1]
        rect = dlib.rectangle(
            int(xs.min()), int(ys.min()), int(np.ceil(xs.max())), int(np.ceil(ys.max()))
        )
        shape = dlib.full_object_detection(rect, pts)
        return np.asarray(
            dlib.get_face_chip(as_rgb_uint8(rgb), shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        )

    def model_input(self, rgb: np.ndarray, landmarks: np.ndarray, chip: np.ndarray) -> np.ndarray:
        """What ``embed_chip`` reads for this face: for the ResNet, the gate's chip itself."""
        return chip

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """128-d float32 descriptor of an aligned RGB chip (colour order matters: RGB)."""
        chip = np.ascontiguousarray(chip, dtype=np.uint8)
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chip must be {CHIP_SIZE}x{CHIP_SIZE}x3 RGB, got {chip.shape}")
        vec = self._net.compute_face_descriptor(chip, self.num_jitters)
        out = np.asarray(vec, dtype=np.float32)
        assert out.shape == (EMBEDDING_DIM,)
        return out

    def describe(self, chip: np.ndarray) -> np.ndarray:
        """The descriptor the pipeline publishes: ``embed_chip``, flip-averaged if ``flip``.

        Why the mirror: a face and its mirror image are the same person, but the ResNet's
        answer for the two differs a little (pose, lighting from one side, hair parting);
        their mean is a steadier descriptor for one more ResNet pass. Measured per lever in
        docs/accuracy.md, with its cost on one core.
        """
        vec = self.embed_chip(chip)
        if not self.flip:
            return vec
        mirrored = self.embed_chip(np.ascontiguousarray(np.asarray(chip)[:, ::-1]))
        return self._mean(vec, mirrored)

    def _mean(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((a + b) / 2.0).astype(np.float32)

    def embed(self, rgb: np.ndarray, face: DetectedFace, detector: str = "dlib-hog") -> np.ndarray:
        """Convenience: landmarks, chip and descriptor in one call (no quality gate)."""
        rgb = as_rgb_uint8(rgb)
        lm = self.landmarks(rgb, face, detector)
        return self.embed_chip(self.model_input(rgb, lm, self.chip(rgb, lm)))


SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SIZE = 112
# Where dlib's 5 points (shape_predictor_5_face_landmarks order) fall in SFace's 112x112 crop:
# per-point medians over 130 deepface / face-api.js faces, mapping YuNet's 5 points onto
# SFace's own template (bench/face_models.py --yunet; LFW not used). With it the dlib-point
# crop identified as well as SFace's native YuNet alignment (docs/face-models.md).
DLIB_IN_SFACE = np.array(
    [[80.07, 52.57], [66.12, 53.45], [30.58, 52.94], [44.98, 53.66], [55.48, 80.45]],
    np.float64,
)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) taking ``src`` to ``dst``.

    Umeyama's closed form (what SFace's own ``alignCrop`` does for YuNet's points); never a
    reflection. ``cv2.estimateAffinePartial2D`` would do it with RANSAC, which five
    landmarks without outliers do not need and which is not deterministic.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix) / (s * s).sum(1).mean())
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - scale * rot @ ms
    return m


class SFaceEmbedder(FaceEmbedder):
    """OpenCV Zoo's SFace (int8 block-quantised, 128-d, unit length) on ``cv2.FaceRecognizerSF``.

    Measured on LFW folds 1-5 against the ResNet on the same faces (docs/face-models.md): far
    more customers identified at the same FPIR, and about a third of the CPU per face. It needs
    no new dependency (opencv-python-headless has the recogniser) and its weights are package
    data of ``edge`` (``edge/models/``, with licence and provenance).
    """

    model_id = SFACE
    input_shape = (SFACE_SIZE, SFACE_SIZE, 3)

    def __init__(self, num_jitters: int = 0, flip: bool = False) -> None:
        import cv2

        super().__init__(num_jitters=0, flip=flip)  # the 5-point predictor, for landmarks
        path = MODELS_DIR / SFACE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"SFace model missing: {path} (reinstall the edge package)")
        self._sface = cv2.FaceRecognizerSF.create(str(path), "")

    def model_input(self, rgb: np.ndarray, landmarks: np.ndarray, chip: np.ndarray) -> np.ndarray:
        """SFace's 112x112 RGB crop, warped from the frame (not from the chip: SFace's crop is
        wider than dlib's padded chip, whose edges would show as black borders)."""
        import cv2

        m = similarity(np.asarray(landmarks, np.float64), DLIB_IN_SFACE)
        return cv2.warpAffine(
            as_rgb_uint8(rgb), m, (SFACE_SIZE, SFACE_SIZE), flags=cv2.INTER_LINEAR
        )

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """Unit 128-d descriptor of SFace's RGB crop (the net reads BGR, as OpenCV decodes)."""
        chip = np.ascontiguousarray(chip, dtype=np.uint8)
        if chip.shape != self.input_shape:
            raise ValueError(
                f"SFace input must be {SFACE_SIZE}x{SFACE_SIZE}x3 RGB, got {chip.shape}"
            )
        out = np.asarray(self._sface.feature(np.ascontiguousarray(chip[:, :, ::-1])), np.float32)
        out = out.reshape(-1)
        assert out.shape == (EMBEDDING_DIM,)
        return _unit(out)

    def _mean(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _unit((a + b) / 2.0)  # SFace compares unit vectors: keep the flip mean one


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


EMBEDDERS: dict[str, type[FaceEmbedder]] = {DLIB_RESNET: FaceEmbedder, SFACE: SFaceEmbedder}


def make_embedder(model: FaceModel | str = DEFAULT_MODEL, *, flip: bool = False) -> FaceEmbedder:
    """The embedder for a ``RecognitionConfig.model`` id."""
    try:
        return EMBEDDERS[model](flip=flip)
    except KeyError:
        raise ValueError(f"unknown face model {model!r}; known: {sorted(EMBEDDERS)}") from None
