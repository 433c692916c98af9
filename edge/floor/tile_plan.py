"""Where to tile a floor camera's frame, derived from its own calibration (issue 14 item 1).

Why: SSDLite sees every window squashed to 300x300, and its recall falls for people under ~80
network pixels tall (measured per window on PETS09-S2L1, docs/floor-detection.md). A far
shopper 40 px tall in a 360-px frame is 33 px after the squash; a tile magnifies them. Which rows
need tiles and how much magnification they need is not a constant of the detector: it follows
from where the camera looks. The calibration homography (image -> floor metres) plus a
person height (1.7 m by default) says how tall a person standing at any foot pixel appears:

1. :class:`PersonScale` recovers the pinhole camera behind the homography (square pixels,
   principal point at the image centre, focal length from the rotation's orthogonality, Zhang
   2000 with one view) and projects a head ``height_m`` above each foot point. On PETS09 the
   gt box heights are 1.03x (median; 0.96-1.10 for 80 % of boxes) what this predicts for
   1.7 m, from the repo's 12-point calibration.
2. :func:`plan_windows` starts from the full frame, finds the farthest foot row where the full
   frame still shows a person at ``min_person_px`` network pixels, and covers the rows beyond it
   with rows of tiles ("bands"), nearest first, each as small as the people it must hold whole
   allow (so as magnified as possible), until the far floor is covered, people get smaller than
   ``min_source_px`` frame pixels (magnifying cannot add detail), or ``max_windows`` network
   calls per frame are used (the speed budget). What is left uncovered is reported, not hidden.

Without a calibration there is no geometry to use, so :func:`fallback_windows` gives the full
frame plus a 2x2 grid over the whole frame (5 calls): it assumes nothing about where the floor
is. A homography that no camera could have produced (no real focal length, camera below the
floor) raises :class:`TilePlanError` with what is wrong: a silently wrong plan would lose the far
people without any sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.floor.geometry import CalibrationError, Homography, recover_camera

Window = tuple[int, int, int, int]  # x1, y1, x2, y2 frame pixels


class TilePlanError(ValueError):
    """The calibration cannot give person sizes (says why and what to re-check)."""


@dataclass(frozen=True)
class PersonScale:
    """Pixel height of a standing person at a foot point, from a floor homography.

    Everything is in the pixels of ``frame_size``; the homography's own calibrated size (if
    different, same aspect) is handled by :class:`Homography`'s rescaling.
    """

    homography: Homography
    frame_size: tuple[int, int]
    height_m: float = 1.7
    focal_px: float = field(init=False)
    camera_height_m: float = field(init=False)
    _p: np.ndarray = field(init=False, repr=False)  # 3x4 projection, calibration pixels
    _scale: float = field(init=False, repr=False)  # frame px -> calibration px

    def __post_init__(self) -> None:
        if not self.height_m > 0:
            raise TilePlanError(f"person height must be > 0 m, got {self.height_m}")
        # geometry.recover_camera is the one derivation of the camera (also calibrate-check's);
        # it refuses another view or a map no real camera gives, with what to re-check
        try:
            cam = recover_camera(self.homography, self.frame_size)
        except CalibrationError as exc:
            raise TilePlanError(str(exc)) from None
        scale = self.homography._scale_to_calibration(self.frame_size)
        k = np.diag([scale, scale, 1.0]) @ cam.K  # back to calibration pixels, as _p works
        object.__setattr__(self, "focal_px", float(cam.K[0, 0]))
        object.__setattr__(self, "camera_height_m", cam.height_m)
        object.__setattr__(self, "_p", k @ np.column_stack([cam.R, cam.t]))
        object.__setattr__(self, "_scale", scale)

    def height_px(self, foot_px: np.ndarray) -> np.ndarray:
        """(N,2) foot points (frame px) -> (N,) person heights in frame px; NaN where the foot
        is at or beyond the horizon or the head would be behind the camera."""
        feet = np.asarray(foot_px, np.float64).reshape(-1, 2)
        floor = self.homography.to_floor(feet, self.frame_size)
        out = np.full(len(feet), np.nan)
        ok = np.isfinite(floor).all(axis=1)
        if not ok.any():
            return out
        n = int(ok.sum())
        heads = np.column_stack([floor[ok], np.full(n, self.height_m), np.ones(n)])
        proj = heads @ self._p.T
        front = proj[:, 2] > 1e-9
        head_v = np.full(n, np.nan)
        head_v[front] = proj[front, 1] / proj[front, 2] / self._scale
        h = feet[ok, 1] - head_v
        out[ok] = np.where(h > 0, h, np.nan)
        return out

    def row_heights(self, columns: int = 5) -> np.ndarray:
        """(H,) smallest person height (px) over ``columns`` columns for feet on each row.

        The smallest, because a band must magnify the smallest person in it enough.
        """
        fw, fh = self.frame_size
        us = np.linspace(0.5, fw - 0.5, columns)
        vs = np.arange(fh, dtype=np.float64) + 0.5
        grid = np.stack(np.meshgrid(us, vs), axis=-1).reshape(-1, 2)
        h = self.height_px(grid).reshape(fh, columns)
        out = np.full(fh, np.nan)
        ok = ~np.isnan(h).any(axis=1)
        out[ok] = h[ok].min(axis=1)
        return out


@dataclass(frozen=True)
class Band:
    """One row of tiles: feet rows ``foot_rows`` (top, bottom) are covered at >= the
    plan's ``min_person_px`` network pixels, with ``magnification`` = network px per frame px
    vertically."""

    y1: int
    y2: int
    columns: int
    foot_rows: tuple[int, int]
    magnification: float


@dataclass(frozen=True)
class TilePlan:
    """The windows one frame size is run on, and why (logged and shown by the benches)."""

    frame_size: tuple[int, int]
    windows: list[Window]
    bands: list[Band]
    full_frame_from_row: int | None  # feet at or below: the full frame alone suffices
    uncovered_rows: tuple[int, int] | None  # foot rows (top, bottom) no window covers
    source: str  # "calibration" or "fallback"
    person_px: float | None = None  # network px every covered person reaches (the target met)
    far_limit_row: int | None = None  # feet above: people < min_source_px, beyond any tile

    def describe(self) -> str:
        w, h = self.frame_size
        parts = [f"{w}x{h} {self.source}: {len(self.windows)} windows (full frame"]
        if self.person_px is not None:
            parts[0] = parts[0].replace(
                " windows", f" windows, people >= {self.person_px:.0f} net px"
            )
        for b in self.bands:
            parts.append(
                f" + {b.columns} tiles rows {b.y1}-{b.y2} x{b.magnification:.2f} for feet "
                f"{b.foot_rows[0]}-{b.foot_rows[1]}"
            )
        parts.append(")")
        if self.full_frame_from_row is not None:
            parts.append(f"; full frame enough for feet below row {self.full_frame_from_row}")
        if self.uncovered_rows:
            top, bottom = self.uncovered_rows
            parts.append(f"; feet rows {top}-{bottom} uncovered")
        if self.far_limit_row:
            parts.append(f" (people smaller than detectable above row {self.far_limit_row})")
        return "".join(parts)


def fallback_windows(width: int, height: int, overlap: float = 0.25) -> TilePlan:
    """No calibration: full frame + 2x2 tiles over the whole frame (nothing assumed about the
    view). The earlier measured layout; docs/floor-detection.md gives its P/R per clip."""
    tw = width / (2 - overlap)
    th = height / (2 - overlap)
    tiles = [(0, 0, width, height)]
    for r in range(2):
        for c in range(2):
            x1, y1 = round(c * tw * (1 - overlap)), round(r * th * (1 - overlap))
            tiles.append((x1, y1, min(width, round(x1 + tw)), min(height, round(y1 + th))))
    return TilePlan((width, height), tiles, [], None, None, "fallback")


def plan_windows(
    scale: PersonScale,
    *,
    net_px: int = 300,
    min_person_px: float = 80.0,
    min_source_px: float = 28.0,
    max_windows: int = 5,
    tile_aspect: float = 4 / 3,
    margin: float = 0.12,
    floor_share: float = 0.5,
) -> TilePlan:
    """Full frame + bands of tiles so that a person anywhere on the visible floor who is at
    least ``min_source_px`` tall appears >= ``min_person_px`` network pixels in some window.

    When ``max_windows`` calls cannot do that, the target is lowered (down to ``floor_share``
    of it) until the whole floor fits: every far person a little smaller beats losing the far
    floor entirely. If even that fails, the plan at the lowest target covers what it can and
    ``uncovered_rows`` says which foot rows are left. ``margin``: share of a person's height
    kept free above the head and below the feet in a tile (the detector drops boxes touching an
    inner tile edge as cut people), and what neighbouring tiles overlap by.
    """
    if not (net_px > 0 and min_person_px > 0 and min_source_px > 0 and max_windows >= 1):
        raise TilePlanError("net_px, min_person_px, min_source_px > 0 and max_windows >= 1")
    if not 0.25 <= tile_aspect <= 4 or not 0 <= margin < 0.5 or not 0 < floor_share <= 1:
        raise TilePlanError("tile_aspect in [0.25, 4], margin in [0, 0.5), floor_share in (0, 1]")
    fw, fh = scale.frame_size
    h = scale.row_heights()
    visible = np.flatnonzero(np.isfinite(h))
    if not len(visible):
        raise TilePlanError(
            "no frame row shows the floor according to the calibration (horizon below the "
            "frame?): check that the calibration belongs to this camera"
        )
    top_visible = int(visible[0])
    detectable = np.isfinite(h) & (h >= min_source_px)
    far_limit = int(np.flatnonzero(detectable)[0]) if detectable.any() else fh
    targets = np.arange(min_person_px, min_person_px * floor_share - 1e-9, -2.0)
    plan = None
    for target in targets:
        plan = _plan_at(
            h,
            fw,
            fh,
            float(target),
            net_px,
            margin,
            tile_aspect,
            far_limit,
            max_windows,
            top_visible,
        )
        if plan.uncovered_rows is None or plan.uncovered_rows[1] <= far_limit:
            break
    assert plan is not None
    return plan


def _plan_at(
    h: np.ndarray,
    fw: int,
    fh: int,
    target: float,
    net_px: int,
    margin: float,
    aspect: float,
    far_limit: int,
    max_windows: int,
    top_visible: int,
) -> TilePlan:
    """The plan for one network-pixel target (see :func:`plan_windows`)."""
    full: list[Window] = [(0, 0, fw, fh)]
    big = np.isfinite(h) & (h * net_px / fh >= target)
    small_rows = np.flatnonzero(~big[top_visible:]) + top_visible
    full_from = int(small_rows[-1]) + 1 if len(small_rows) else top_visible
    bands: list[Band] = []
    if full_from > far_limit and full_from > top_visible:
        vb = min(fh - 1, full_from + math.ceil(margin * h[min(full_from, fh - 1)]))
        geo = _Geometry(h, fw, fh, net_px, target, margin, aspect, far_limit)
        bands = geo.best_bands(vb, max_windows - 1)
        for band in bands:
            full += geo.columns(band)
    covered_to = bands[-1].foot_rows[0] if bands else full_from
    uncovered = (top_visible, covered_to) if covered_to > top_visible else None
    return TilePlan((fw, fh), full, bands, full_from, uncovered, "calibration", target, far_limit)


@dataclass(frozen=True)
class _Geometry:
    """The search behind :func:`plan_windows`: which bands (tile heights) cover the most far
    floor within the window budget. A band is fixed by its nearest foot row and its tile height;
    tile heights are tried on a geometric grid, at most a few bands deep (exhaustive: < 10^4
    cases, a few ms once per camera and frame size)."""

    h: np.ndarray
    fw: int
    fh: int
    net_px: float
    min_px: float
    margin: float
    aspect: float
    far_limit: int
    steps: int = 14

    def band(self, vb: int, th: float) -> Band | None:
        """The band of tiles ``th`` rows tall whose nearest covered feet are on row ``vb``."""
        h, m = self.h, self.margin
        hb = float(h[vb])
        y2 = min(self.fh, math.ceil(vb + m * hb))
        y1 = max(0, math.floor(y2 - th))
        if y1 == 0:
            y2 = min(self.fh, math.ceil(th))
        if y1 > 0 and vb - hb * (1 + m) < y1:
            return None  # the nearest person would not fit
        need = self.min_px * (y2 - y1) / self.net_px
        va = None
        for v in range(vb, self.far_limit - 1, -1):
            hv = float(h[v])
            if not (np.isfinite(hv) and hv >= need and (y1 == 0 or v - hv * (1 + m) >= y1)):
                break  # farther up, people only get smaller and their heads higher
            va = v
        if va is None or va >= vb:
            return None
        return Band(y1, y2, self._cols(y2 - y1, hb), (va, vb), self.net_px / (y2 - y1))

    def _overlap(self, th: float, hb: float) -> float:
        """Neighbouring tiles share a near person's width, so everyone is whole in one."""
        return min(th * self.aspect * 0.5, hb * 0.41 * (1 + 2 * self.margin))

    def _cols(self, th: float, hb: float) -> int:
        tw = min(self.fw, th * self.aspect)
        if tw >= self.fw:
            return 1
        overlap = self._overlap(th, hb)
        return math.ceil((self.fw - overlap) / (tw - overlap))

    def columns(self, band: Band) -> list[Window]:
        """The band's tiles, widened evenly to span the frame width exactly."""
        if band.columns == 1:
            return [(0, band.y1, self.fw, band.y2)]
        overlap = self._overlap(band.y2 - band.y1, float(self.h[band.foot_rows[1]]))
        tw = (self.fw + (band.columns - 1) * overlap) / band.columns
        out = []
        for c in range(band.columns):
            x1 = round(c * (tw - overlap))
            out.append((x1, band.y1, min(self.fw, round(x1 + tw)), band.y2))
        return out

    def best_bands(self, vb: int, budget: int, depth: int = 3) -> list[Band]:
        """Bands from feet row ``vb`` upwards within ``budget`` windows: farthest coverage
        first, then fewer windows, then more magnification."""
        best: list[Band] = []

        def key(bands: list[Band]) -> tuple[float, int, float]:
            if not bands:
                return (float(vb + 1), 0, 0.0)
            far = float(bands[-1].foot_rows[0])
            return (far, sum(b.columns for b in bands), -sum(b.magnification for b in bands))

        def search(v: int, left: int, chosen: list[Band]) -> None:
            nonlocal best
            if key(chosen) < key(best):
                best = list(chosen)
            if len(chosen) >= depth or v < self.far_limit:
                return
            hb = float(self.h[v])
            lo = max(hb * (1 + 2 * self.margin), 16.0)
            for th in np.geomspace(lo, max(lo, self.fh), self.steps):
                b = self.band(v, float(th))
                if b is None or b.columns > left or b.magnification < 1.15 * self.net_px / self.fh:
                    continue  # too many calls, or hardly more magnified than the full frame
                search(b.foot_rows[0] - 1, left - b.columns, [*chosen, b])

        search(vb, budget, [])
        return best


def _tile_height(vb: float, hb: float, va: float, ha: float, margin: float) -> float:
    """Rows a tile needs for feet from ``va`` (person ``ha`` px) to ``vb`` (``hb`` px): from
    above the far head to below the near feet, each with ``margin`` of a person free."""
    return max(vb + margin * hb - (va - ha * (1 + margin)), hb * (1 + 2 * margin))


def level_camera_homography(
    focal_px: float, pitch_rad: float, camera_height_m: float, frame_size: tuple[int, int]
) -> Homography:
    """The floor homography of a camera with no roll, principal point at the frame centre,
    ``camera_height_m`` above the floor, looking ``pitch_rad`` below the horizontal; floor x to
    the right, y away from the camera. For synthetic tests and :func:`fit_level_camera`."""
    fw, fh = frame_size
    s, c = math.sin(pitch_rad), math.cos(pitch_rad)
    rot = np.array([[1.0, 0, 0], [0, -s, -c], [0, c, -s]])  # rows: camera x, y (down), z (view)
    t = -rot @ np.array([0.0, 0.0, camera_height_m])
    k = np.array([[focal_px, 0, fw / 2], [0, focal_px, fh / 2], [0, 0, 1.0]])
    g = k @ np.column_stack([rot[:, 0], rot[:, 1], t])
    mat = np.linalg.inv(g)
    mat /= np.abs(mat).max()
    if (mat @ np.array([fw / 2, fh - 1.0, 1.0]))[2] < 0:
        mat = -mat  # w > 0 on the floor side, as fit_homography leaves it (geometry._project)
    return Homography(matrix=mat, image_size=(int(fw), int(fh)))


def fit_level_camera(
    boxes: np.ndarray, frame_size: tuple[int, int], height_m: float = 1.7
) -> tuple[Homography, float]:
    """Fit a level camera (see :func:`level_camera_homography`) to people's boxes, for a clip
    with no floor marks (TUD-Campus): every box's top is taken as the head of a ``height_m``
    person standing at its bottom centre. Returns the homography and the median relative error
    of the predicted box heights. A camera from boxes knows nothing of floor metres beyond the
    assumed person height, so it is good for sizes (tiling), not for positions."""
    from scipy.optimize import least_squares

    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) < 3:
        raise TilePlanError(f"{len(b)} boxes: at least 3 people are needed to fit a camera")
    fw, fh = frame_size
    feet = np.column_stack([(b[:, 0] + b[:, 2]) / 2, b[:, 3]])
    heights = b[:, 3] - b[:, 1]

    def predict(p: np.ndarray) -> np.ndarray:
        # the head of a person standing where the foot ray meets the floor, reprojected
        f, pitch, cam_h = float(np.exp(p[0])), float(p[1]), float(p[2])
        s, c = math.sin(pitch), math.cos(pitch)
        y = (feet[:, 1] - fh / 2) / f  # normalised image coordinates of the feet
        denom = s + y * c  # ray's downward component per unit of view depth
        with np.errstate(all="ignore"):
            depth = cam_h / denom  # along the view axis, to the floor
            forward = depth * (c - y * s)  # horizontal distance
            head_y = (cam_h - height_m) * c - forward * s
            head_z = (cam_h - height_m) * s + forward * c
            v_head = fh / 2 + f * head_y / head_z
        h = feet[:, 1] - v_head
        return np.where(np.isfinite(h) & (denom > 0), h, 0.0)

    def residuals(p: np.ndarray) -> np.ndarray:
        return (predict(p) - heights) / heights

    best = None
    for pitch in (0.05, 0.2, 0.4, 0.7):
        x0 = np.array([math.log(fw), pitch, 3.0])
        r = least_squares(
            residuals,
            x0,
            bounds=([math.log(fw / 8), -0.3, 0.3], [math.log(fw * 4), 1.5, 50.0]),
        )
        if best is None or r.cost < best.cost:
            best = r
    assert best is not None
    p = best.x
    hom = level_camera_homography(float(np.exp(p[0])), float(p[1]), float(p[2]), (fw, fh))
    err = float(np.median(np.abs(predict(p) - heights) / heights))
    return hom, err
