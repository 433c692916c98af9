"""The installer's calibration picture for ``storesense calibrate-check``.

Why a picture: numbers say *that* a calibration is off; the picture says *where* and *why*.
On a still of the camera it draws the fitted floor as a metre grid (a wrong map bends it off
the real tiles), every mark with its residual arrow (exaggerated, the gain is printed) and its
leave-one-out error, a 1.7 m person as a stick at several floor places (a wrong map makes them
giants or dwarfs next to real people), the boxes of people given in the still with the height
the map implies for each, and the verdict with its reasons. The arithmetic is
``edge.floor.geometry.check_calibration``; only drawing happens here.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from edge.floor.geometry import CalibrationCheck

ARROW_GAIN = 10.0  # residual arrows are drawn this many times longer than they are
OK, BAD, GRID, STICK, BOX = (
    (60, 200, 60),
    (40, 40, 230),
    (255, 220, 0),
    (255, 120, 40),
    (0, 200, 255),
)


def _project_ok(check: CalibrationCheck, xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Floor metres → pixels; NaN where the floor point is not on the camera's side of the
    horizon (its pixel would be a mirror image) or far outside the picture."""
    hom = check.homography
    px = hom.to_image(xy, size)
    back = hom.to_floor(px, size)
    bad = ~np.isfinite(back).all(axis=1) | (np.abs(back - xy).max(axis=1) > 1e-3)
    w, h = size
    bad |= (np.abs(px[:, 0] - w / 2) > 3 * w) | (np.abs(px[:, 1] - h / 2) > 3 * h)
    px[bad] = np.nan
    return px


def _pt(v: np.ndarray, scale: float = 1.0) -> tuple[int, int]:
    """A pixel as OpenCV drawing calls want it: a tuple of Python ints."""
    return int(np.rint(v[0] * scale)), int(np.rint(v[1] * scale))


def _polyline(img: np.ndarray, pts: np.ndarray, colour: tuple, scale: float, width: int) -> None:
    for a, b in itertools.pairwise(pts):
        if np.isfinite(a).all() and np.isfinite(b).all():
            cv2.line(img, _pt(a, scale), _pt(b, scale), colour, width, cv2.LINE_AA)


def _text(img: np.ndarray, text: str, at: tuple[int, int], colour: tuple, size: float) -> None:
    cv2.putText(img, text, at, cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(img, text, at, cv2.FONT_HERSHEY_SIMPLEX, size, colour, 1, cv2.LINE_AA)


def draw_check(
    still_bgr: np.ndarray,
    check: CalibrationCheck,
    image_px: np.ndarray,
    floor_m: np.ndarray,
    boxes: np.ndarray | None = None,
    *,
    grid_m: float = 1.0,
    person_m: float = 1.7,
) -> np.ndarray:
    """The annotated picture (BGR), at least 960 px wide so the labels can be read."""
    h0, w0 = still_bgr.shape[:2]
    size = (w0, h0)
    scale = max(1.0, 960.0 / w0)
    img = cv2.resize(
        still_bgr, (round(w0 * scale), round(h0 * scale)), interpolation=cv2.INTER_LINEAR
    )
    img = cv2.addWeighted(img, 0.8, np.zeros_like(img), 0.2, 0)  # darker: overlays stand out
    flo = np.asarray(floor_m, np.float64).reshape(-1, 2)
    uv = np.asarray(image_px, np.float64).reshape(-1, 2)

    # the fitted floor: a grid over the marks' extent plus one cell
    lo = np.floor(flo.min(axis=0) / grid_m) * grid_m - grid_m
    hi = np.ceil(flo.max(axis=0) / grid_m) * grid_m + grid_m
    for x in np.arange(lo[0], hi[0] + 1e-9, grid_m):
        ys = np.linspace(lo[1], hi[1], 80)
        _polyline(img, _project_ok(check, np.c_[np.full_like(ys, x), ys], size), GRID, scale, 1)
    for y in np.arange(lo[1], hi[1] + 1e-9, grid_m):
        xs = np.linspace(lo[0], hi[0], 80)
        _polyline(img, _project_ok(check, np.c_[xs, np.full_like(xs, y)], size), GRID, scale, 1)

    # a person of person_m at 3 x 3 places over the marks' extent
    if check.camera is not None:
        span = flo.max(axis=0) - flo.min(axis=0)
        for fx in (0.15, 0.5, 0.85):
            for fy in (0.15, 0.5, 0.85):
                at = flo.min(axis=0) + span * np.array([fx, fy])
                foot, head = check.camera.person_px(at[None, :], person_m)[0] * scale
                if not (np.isfinite(foot).all() and np.isfinite(head).all()):
                    continue
                cv2.line(img, _pt(foot), _pt(head), STICK, 3, cv2.LINE_AA)
                r = max(3, int(np.linalg.norm(foot - head) / 14))
                cv2.circle(img, _pt(head), r, STICK, 2, cv2.LINE_AA)

    # people given in the still, with the height the map implies
    b = np.asarray(boxes if boxes is not None else np.empty((0, 4)), np.float64).reshape(-1, 4)
    for box, hm in zip(b, check.implied_height_m, strict=True):
        (x1, y1), (x2, y2) = _pt(box[:2], scale), _pt(box[2:], scale)
        cv2.rectangle(img, (x1, y1), (x2, y2), BOX, 2)
        label = "?" if not np.isfinite(hm) else f"{hm:.2f} m"
        _text(img, label, (x1, max(12, y1 - 4)), BOX, 0.45)

    # marks: where they were clicked, residual arrow to where the map puts their metres
    fitted_px = check.homography.to_image(flo, size)
    for i, (p, q) in enumerate(zip(uv, fitted_px, strict=True)):
        bad = check.residual_m[i] > check.max_error_m or not (
            np.isfinite(check.loo_m[i]) and check.loo_m[i] <= check.max_error_m
        )
        colour = BAD if bad and len(uv) > 4 else OK
        pc = _pt(p, scale)
        if np.isfinite(q).all():
            tip = p + (q - p) * ARROW_GAIN
            cv2.arrowedLine(img, pc, _pt(tip, scale), colour, 2, cv2.LINE_AA, 0, 0.25)
        cv2.circle(img, pc, 5, colour, -1, cv2.LINE_AA)
        loo = "-" if not np.isfinite(check.loo_m[i]) else f"{check.loo_m[i]:.2f}"
        label = f"{i + 1}: {check.residual_m[i]:.2f}/{loo} m"
        wide = 9 * len(label)  # about 9 px per character at this font size
        x = pc[0] + 7 if pc[0] + 7 + wide < img.shape[1] else pc[0] - 7 - wide
        _text(img, label, (x, pc[1] - 6), colour, 0.45)

    # the verdict and the legend
    lines = [
        ("ACCEPTED" if check.ok else "REJECTED", OK if check.ok else BAD),
        (
            f"{check.fit.n_points} marks: residual RMS {check.fit.rms_m:.3f} m, max "
            f"{check.fit.max_m:.3f} m; leave-one-out max "
            + ("-" if not np.isfinite(check.loo_m).any() else f"{np.nanmax(check.loo_m):.3f} m")
            + f" (limit {check.max_error_m} m)",
            (255, 255, 255),
        ),
    ]
    if check.camera is not None:
        lines.append(
            (
                f"camera {check.camera.height_m:.1f} m above the floor, focal "
                f"{check.camera.K[0, 0]:.0f} px; sticks: a {person_m} m person",
                STICK,
            )
        )
    if np.isfinite(check.implied_height_m).any():
        lines.append(
            (
                f"people in the still: median {np.nanmedian(check.implied_height_m):.2f} m tall "
                "by this map",
                BOX,
            )
        )
    lines.append(
        (
            f"grid {grid_m:g} m; labels: residual/leave-one-out; arrows x{ARROW_GAIN:g}",
            GRID,
        )
    )
    lines += [(f"- {p}", BAD) for p in check.problems]
    y = 22
    for text, colour in lines:
        for part in _wrap(text, int(img.shape[1] / 8.5)):
            _text(img, part, (10, y), colour, 0.5)
            y += 20
    return img


def _wrap(text: str, width: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = "  " + word
        else:
            line = f"{line} {word}" if line else word
    return out + ([line] if line else [])
