"""Image pixels → store-floor metres: the homography, the foot point, the calibration file.

Why a homography: the shop floor is a plane, so one 3×3 projective map takes any pixel on it to
floor metres. A person's *foot point* (bottom centre of the box) lies on that plane; the box
centre does not, and projecting it would put tall people metres behind where they stand.

The installer measures a few marks on the floor (tape, tiles, shelf corners) and clicks them in
a frame: a CSV of ``u,v,x,y``. :func:`fit_homography` fits the map with OpenCV, refuses point
sets that cannot define one (too few, repeated, collinear, non-finite) and reports the
reprojection error in metres, so a bad click shows up at installation and not as a wrong
heatmap weeks later.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import yaml

MIN_POINTS = 4
# A pedestrian box is ~0.41 wide per unit of height (MOT17 / PETS09 median); used only to
# extend a box cut by the frame edge to where the person's feet would be.
PERSON_ASPECT = 0.41
CALIBRATION_VERSION = 1

log = logging.getLogger(__name__)


class CalibrationError(ValueError):
    """Calibration input that cannot give a usable homography; the message says how to fix it."""


@dataclass(frozen=True)
class FitReport:
    """How well the fitted map reproduces the measured marks, in floor metres."""

    n_points: int
    rms_m: float
    max_m: float
    worst_index: int  # 0-based row of the worst point: the first to re-measure


@dataclass(frozen=True)
class Homography:
    """Image → floor map for frames of ``image_size`` (w, h) pixels.

    Frames of another size with the same aspect ratio are handled by scaling the pixels first
    (a camera re-encoded smaller, e.g. PETS09 768×576 → 480×360); another aspect ratio is a
    different view and is refused.

    ``image_size`` None: the installer did not say which frame size the marks were clicked in
    (``storesense calibrate`` without ``--image-size``). Pixels are then used as they come:
    right for frames of the calibrated resolution, and neither rescaled nor refused otherwise,
    because without the size there is nothing to compare a frame with.
    """

    matrix: np.ndarray  # (3,3) float64, image px (at image_size) → floor metres
    image_size: tuple[int, int] | None

    def to_floor(
        self, points_px: np.ndarray, frame_size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """(N,2) pixels → (N,2) metres; NaN rows for points at or beyond the horizon."""
        pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
        if frame_size is not None:
            pts = pts * self._scale_to_calibration(frame_size)
        return _project(self.matrix, pts)

    def to_image(
        self, points_m: np.ndarray, frame_size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """(N,2) floor metres → (N,2) pixels (of ``frame_size`` if given)."""
        pts = _project(np.linalg.inv(self.matrix), np.asarray(points_m, np.float64).reshape(-1, 2))
        if frame_size is not None:
            pts = pts / self._scale_to_calibration(frame_size)
        return pts

    def _scale_to_calibration(self, frame_size: tuple[int, int]) -> float:
        if self.image_size is None:  # size unknown: no rescale, no aspect-ratio check
            return 1.0
        fw, fh = frame_size
        cw, ch = self.image_size
        sx, sy = cw / fw, ch / fh
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise CalibrationError(
                f"frame {fw}x{fh} is not a scaled copy of the calibrated {cw}x{ch} view: "
                "re-run `storesense calibrate` for this camera"
            )
        return sx


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a homography; points whose projective w is ~0 or negative (above the horizon:
    they would land behind the camera) become NaN instead of a huge wrong coordinate."""
    if pts.size == 0:
        return np.empty((0, 2), dtype=np.float64)
    homog = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    w = homog[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = homog[:, :2] / w
    # the sign of w on the floor side is the sign it has at the calibration points; fit_homography
    # normalises the matrix so that sign is positive
    out[(w[:, 0] <= 1e-12) | ~np.isfinite(out).all(axis=1)] = np.nan
    return out


def _check_spread(pts: np.ndarray, what: str) -> None:
    """Refuse too few distinct points, and point sets without area (a line fixes no plane map)."""
    distinct = {(round(float(a), 6), round(float(b), 6)) for a, b in pts}
    if len(distinct) < MIN_POINTS:
        raise CalibrationError(
            f"{what}: only {len(distinct)} distinct points; at least {MIN_POINTS} different "
            "marks are needed"
        )
    centred = pts - pts.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    if s[0] == 0 or s[1] / s[0] < 1e-3:
        raise CalibrationError(
            f"{what}: the points lie on one line; spread the marks over the floor area"
        )
    if len(pts) == MIN_POINTS:
        for tri in combinations(range(len(pts)), 3):
            a, b, c = pts[list(tri)]
            area = abs((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])) / 2
            scale = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])) ** 2
            if area < 1e-4 * scale:
                raise CalibrationError(
                    f"{what}: with 4 points no 3 may be on one line (rows {[i + 1 for i in tri]})"
                )


def fit_homography(
    image_px: np.ndarray, floor_m: np.ndarray, image_size: tuple[int, int] | None = None
) -> tuple[Homography, FitReport]:
    """Least-squares homography from ≥4 marks; CalibrationError for inputs that cannot work.

    Plain least squares (not RANSAC): an installer's handful of marks has no outlier budget,
    and the report's worst point tells them which one to re-measure. The fit itself needs only
    the marks; ``image_size`` (frame w, h the u,v refer to) is stored so frames of another
    resolution can be rescaled or refused later, and may be None when it is not known.
    """
    img = np.asarray(image_px, dtype=np.float64).reshape(-1, 2)
    flo = np.asarray(floor_m, dtype=np.float64).reshape(-1, 2)
    if len(img) != len(flo):
        raise CalibrationError(f"{len(img)} image points but {len(flo)} floor points")
    if len(img) < MIN_POINTS:
        raise CalibrationError(
            f"{len(img)} points given; a homography needs at least {MIN_POINTS} "
            "(8 or more spread over the floor are recommended)"
        )
    if not (np.isfinite(img).all() and np.isfinite(flo).all()):
        raise CalibrationError("a coordinate is NaN or infinite")
    if image_size is not None:
        w, h = image_size
        if w <= 0 or h <= 0:
            raise CalibrationError(f"image size {w}x{h} must be positive")
    _check_spread(img, "image points (u,v)")
    _check_spread(flo, "floor points (x,y)")
    mat, _ = cv2.findHomography(img, flo, 0)
    if mat is None or not np.isfinite(mat).all() or abs(np.linalg.det(mat)) < 1e-15:
        raise CalibrationError("OpenCV found no homography for these points (degenerate layout)")
    w_at = (np.hstack([img, np.ones((len(img), 1))]) @ mat.T)[:, 2]
    if not ((w_at > 0).all() or (w_at < 0).all()):
        raise CalibrationError(
            "the points do not fit one floor plane seen by one camera (the horizon falls "
            "between them): check for swapped u/v or x/y columns"
        )
    if w_at[0] < 0:  # make w positive on the floor side, so _project can spot the horizon
        mat = -mat
    if mat[2, 2] > 1e-12:  # conventional scale; dividing by a positive keeps that sign
        mat = mat / mat[2, 2]
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    hom = Homography(matrix=mat, image_size=size)
    err = np.linalg.norm(hom.to_floor(img) - flo, axis=1)
    report = FitReport(
        n_points=len(img),
        rms_m=float(np.sqrt(np.mean(err**2))),
        max_m=float(err.max()),
        worst_index=int(err.argmax()),
    )
    return hom, report


def read_points_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``u,v,x,y`` rows (pixels, metres; header optional, ``#`` comments) → (image, floor)."""
    a = read_number_csv(path, ("u", "v", "x", "y"))
    return a[:, :2], a[:, 2:]


def read_number_csv(
    path: Path,
    columns: Sequence[str],
    check: Callable[[list[float]], str | None] | None = None,
) -> np.ndarray:
    """Rows of ``len(columns)`` finite numbers → an ``(n, len(columns))`` float64 array.

    The installer's CSV format, shared by the calibration marks (``u,v,x,y``) and the
    calibrate-check boxes (``x1,y1,x2,y2``) so both accept the same files: an optional header
    naming ``columns`` (the first row that is not a comment), ``#`` comment and blank rows.
    ``check`` may refuse a row of numbers with a reason. Every refusal is a
    ``CalibrationError`` naming the file and line, so the installer can fix that line.
    """
    want = [c.lower() for c in columns]
    names = ",".join(columns)
    try:
        fh = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read: {exc.strerror}") from None
    with fh:
        reader = csv.reader(fh)
        try:
            rows = _number_rows(path, reader, want, names, check)
        except (UnicodeDecodeError, csv.Error) as exc:  # not text, or a broken quote
            raise CalibrationError(f"{path}:{reader.line_num + 1}: unreadable: {exc}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(want))


def _number_rows(
    path: Path,
    reader: Iterator[list[str]],
    want: list[str],
    names: str,
    check: Callable[[list[float]], str | None] | None,
) -> list[list[float]]:
    """The rows of :func:`read_number_csv`; a bad one is a ``CalibrationError`` at its line."""
    rows: list[list[float]] = []
    for n, rec in enumerate(reader, 1):
        cells = [c.strip() for c in rec]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if not rows and [c.lower() for c in cells] == want:
            continue  # the header, if any, is the first row that is not a comment
        if len(cells) != len(want):
            raise CalibrationError(
                f"{path}:{n}: expected {len(want)} values {names}, got {len(cells)}"
            )
        try:
            vals = [float(c) for c in cells]
        except ValueError:
            raise CalibrationError(f"{path}:{n}: not a number in {','.join(cells)!r}") from None
        if not all(math.isfinite(v) for v in vals):
            raise CalibrationError(f"{path}:{n}: NaN or infinite value")
        problem = check(vals) if check is not None else None
        if problem:
            raise CalibrationError(f"{path}:{n}: {problem}")
        rows.append(vals)
    return rows


def save_calibration(path: Path, hom: Homography, report: FitReport, *, source: str = "") -> None:
    """Write the calibration YAML that ``cameras[].calibration`` points to."""
    doc = {
        "version": CALIBRATION_VERSION,
        "image_size": None if hom.image_size is None else list(hom.image_size),
        "homography": [[float(v) for v in row] for row in hom.matrix],
        "fit": {
            "points": report.n_points,
            "rms_error_m": round(report.rms_m, 4),
            "max_error_m": round(report.max_m, 4),
        },
        "source": source,
    }
    Path(path).write_text(
        "# image pixels -> floor metres; written by `storesense calibrate`\n"
        + yaml.safe_dump(doc, sort_keys=False),
        encoding="utf-8",
    )


def load_calibration(path: Path) -> Homography:
    """Read a calibration YAML; CalibrationError naming the file and the problem.

    ``image_size: null`` (written by ``calibrate`` without ``--image-size``) is accepted and
    logged: frames are then mapped without the rescale / other-view check. A missing key is
    still refused, so a hand-edited file cannot drop the check by accident.
    """
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{path}: not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != CALIBRATION_VERSION:
        raise CalibrationError(f"{path}: not a version-{CALIBRATION_VERSION} calibration file")
    try:
        mat = np.asarray(doc["homography"], dtype=np.float64)
        raw_size = doc["image_size"]
        size = None if raw_size is None else tuple(int(v) for v in raw_size)
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{path}: missing or malformed key: {exc}") from None
    if mat.shape != (3, 3) or not np.isfinite(mat).all() or abs(np.linalg.det(mat)) < 1e-15:
        raise CalibrationError(f"{path}: homography must be a finite invertible 3x3 matrix")
    if size is not None and (len(size) != 2 or size[0] <= 0 or size[1] <= 0):
        raise CalibrationError(f"{path}: image_size must be two positive numbers [w, h]")
    if size is None:
        log.info(
            "%s has no image_size: frames are mapped as they come, without the check that "
            "they are the calibrated view",
            path,
        )
    return Homography(matrix=mat, image_size=None if size is None else (size[0], size[1]))


def foot_points(
    boxes: np.ndarray, frame_size: tuple[int, int], *, edge_px: float = 2.0
) -> np.ndarray:
    """Bottom centre of each x1,y1,x2,y2 box, extended where the frame cuts the box.

    A person walking out at the bottom of the frame has a box that ends at the frame edge,
    above their feet; its bottom centre would put them too far from the camera. When a box
    touches the bottom edge and is squatter than a person (height < width / PERSON_ASPECT),
    the foot is moved down to where a person-shaped box would end. Likewise a box cut at the
    left or right edge is narrower than a person, so its centre is moved away from the edge
    by half the missing width. Boxes well inside the frame are returned as they are.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    fw, fh = frame_size
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    w, h = x2 - x1, y2 - y1
    cx, foot = (x1 + x2) / 2, y2.copy()
    expected_h = w / PERSON_ASPECT
    cut_bottom = (y2 >= fh - edge_px) & (expected_h > h) & (y1 > edge_px)
    foot[cut_bottom] = y1[cut_bottom] + expected_h[cut_bottom]
    expected_w = h * PERSON_ASPECT
    missing = np.maximum(expected_w - w, 0.0)
    cut_left = (x1 <= edge_px) & (x2 < fw - edge_px)
    cut_right = (x2 >= fw - edge_px) & (x1 > edge_px)
    cx[cut_left] -= missing[cut_left] / 2
    cx[cut_right] += missing[cut_right] / 2
    return np.stack([cx, foot], axis=1)


# -- the installer's check: residuals, leave-one-out, and a camera model for person heights --

PERSON_HEIGHT_M = 1.7
# Median height implied by the people in a still must fall in this range (m) for the map to
# count as consistent: adults are 1.5-1.9 m, and a box is drawn a little above the head.
PERSON_HEIGHT_RANGE_M = (1.45, 2.05)


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera recovered from a floor homography: ``K [R | t]`` with world z up.

    Why: a homography only maps the floor plane; where a person's *head* appears, and so how
    tall they look, needs the camera itself. With square pixels, no skew and the principal
    point at the image centre (true for the cameras we install, to a few per cent), the focal
    length follows from the homography alone (Zhang 2000: the floor axes are orthogonal and
    equally long in metres), and with it R and t.
    """

    K: np.ndarray  # (3,3)
    R: np.ndarray  # (3,3), columns: floor x, floor y, up
    t: np.ndarray  # (3,)
    image_size: tuple[int, int]

    @property
    def height_m(self) -> float:
        """The camera's height above the floor, metres."""
        return float(-(self.R.T @ self.t)[2])

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """(N,3) world metres (z up from the floor) → (N,2) pixels; NaN behind the camera."""
        p = np.asarray(xyz, np.float64).reshape(-1, 3) @ self.R.T + self.t
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (p @ self.K.T)[:, :2] / p[:, 2:3]
        uv[p[:, 2] <= 1e-9] = np.nan
        return uv

    def person_px(self, floor_xy: np.ndarray, height_m: float = PERSON_HEIGHT_M) -> np.ndarray:
        """(N,2) foot pixels and (N,2) head pixels of people ``height_m`` tall → (N,2,2)."""
        xy = np.asarray(floor_xy, np.float64).reshape(-1, 2)
        foot = self.project(np.c_[xy, np.zeros(len(xy))])
        head = self.project(np.c_[xy, np.full(len(xy), height_m)])
        return np.stack([foot, head], axis=1)


# Horizontal fields of view a floor camera can have (a long telephoto to a fisheye). A level
# camera's homography alone cannot tell its focal length from unequal floor units, so a
# calibration with x in metres and y in centimetres shows up as an absurd focal length.
MIN_FOV_DEG, MAX_FOV_DEG = 8.0, 170.0


def recover_camera(hom: Homography, image_size: tuple[int, int]) -> CameraModel:
    """The :class:`CameraModel` behind ``hom`` for frames of ``image_size`` (a scaled copy of
    the calibrated view); raises :class:`CalibrationError` saying why if no floor camera fits.

    The one derivation of the camera from a calibration, used by ``calibrate-check`` (people's
    implied heights) and by the floor role's tile plan (person sizes), so a calibration the
    installer's check accepts is one the camera can plan with. Zhang's constraints give 1/f²
    (linear after centring); the pose is then projected onto the nearest rotation (a noisy fit
    gives axes that are not quite orthogonal) and its sign chosen so that the floor at the
    bottom centre of the frame is in front of the camera: the floor origin need not be in view
    (a level camera's origin right below it is not), so it cannot decide the sign.
    """
    scale = hom._scale_to_calibration(image_size)  # refuses another view; frame -> calibration
    cal = hom.image_size or image_size
    cx, cy = cal[0] / 2.0, cal[1] / 2.0
    g = np.linalg.inv(hom.matrix)  # floor (x, y, 1) -> calibration pixels
    a: np.ndarray = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]]) @ g
    a = a / np.linalg.norm(a)  # the homography's scale is arbitrary; the thresholds are not
    h1, h2 = a[:, 0], a[:, 1]
    # r1 . r2 = 0 and |r1| = |r2| with K = diag(f, f, 1) after centring: linear in 1/f^2
    c = np.array([h1[0] * h2[0] + h1[1] * h2[1], h1[0] ** 2 + h1[1] ** 2 - h2[0] ** 2 - h2[1] ** 2])
    d = np.array([-h1[2] * h2[2], -(h1[2] ** 2 - h2[2] ** 2)])
    inv_f2 = float(c @ d / (c @ c)) if np.isfinite(c).all() and c @ c > 1e-24 else 0.0
    if not inv_f2 > 1e-12:
        raise CalibrationError(
            "the calibration homography fits no pinhole camera with square pixels "
            f"(1/f^2 = {inv_f2:.3g}): either the camera looks straight down (no "
            "perspective, so a person's height cannot be derived: set `tiles` by hand) or "
            "the floor marks are wrong (swapped x/y, a mistyped distance): re-measure them"
        )
    f = 1.0 / math.sqrt(inv_f2)
    hfov = math.degrees(2 * math.atan(cal[0] / (2 * f)))
    if not MIN_FOV_DEG <= hfov <= MAX_FOV_DEG:
        raise CalibrationError(
            f"the calibration implies a {hfov:.1f} deg wide field of view (no floor camera "
            f"has under {MIN_FOV_DEG:.0f} or over {MAX_FOV_DEG:.0f}): the floor marks are "
            "probably wrong (x and y in different units, a mistyped distance); re-measure"
        )
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    m: np.ndarray = np.linalg.inv(k) @ g
    m = m / ((np.linalg.norm(m[:, 0]) + np.linalg.norm(m[:, 1])) / 2)
    ratio = np.linalg.norm(m[:, 0]) / np.linalg.norm(m[:, 1])
    if not 0.5 < ratio < 2.0:
        raise CalibrationError(
            f"the calibration's floor axes differ {ratio:.2f}x in scale: not a metric floor "
            "map (are x and y both in metres?)"
        )
    seen = hom.to_floor(np.array([[cx, cal[1] - 1.0]]))[0]
    if np.isfinite(seen).all() and (m @ np.r_[seen, 1.0])[2] < 0:
        m = -m
    r = np.column_stack([m[:, 0], m[:, 1], np.cross(m[:, 0], m[:, 1])])
    u, _, vt = np.linalg.svd(r)
    r = u @ vt
    t = m[:, 2]
    up = float(-(r.T @ t)[2])  # the camera's floor z; negative: floor z points away from it
    if abs(up) < 0.05:
        raise CalibrationError(
            f"the calibration puts the camera {abs(up):.2f} m above the floor: "
            "re-measure the floor marks"
        )
    if up < 0:  # world z must point up, towards the camera
        r[:, 2] = -r[:, 2]
    if not np.isfinite(r).all() or not np.isfinite(t).all():
        raise CalibrationError("the calibration homography gives no finite camera pose")
    k_frame = np.diag([1.0 / scale, 1.0 / scale, 1.0]) @ k  # calibration -> frame pixels
    return CameraModel(K=k_frame, R=r, t=t, image_size=(int(image_size[0]), int(image_size[1])))


def leave_one_out_errors(image_px: np.ndarray, floor_m: np.ndarray) -> np.ndarray:
    """Per mark: how far (m) a map fitted *without* it puts it; NaN if the rest cannot fit.

    Why: the residuals of a least-squares fit are optimistic, most of all with few marks (with
    4 they are always 0): a mistyped mark pulls the map towards itself. Leaving each mark out
    and predicting it is what the map will do at places no mark was measured, i.e. to people.
    """
    img = np.asarray(image_px, np.float64).reshape(-1, 2)
    flo = np.asarray(floor_m, np.float64).reshape(-1, 2)
    out = np.full(len(img), np.nan)
    for i in range(len(img)):
        keep = np.arange(len(img)) != i
        try:
            hom, _ = fit_homography(img[keep], flo[keep])
        except CalibrationError:
            continue
        out[i] = float(np.linalg.norm(hom.to_floor(img[i : i + 1])[0] - flo[i]))
    return out


@dataclass(frozen=True)
class CalibrationCheck:
    """Everything ``storesense calibrate-check`` reports; ``problems`` empty means accepted."""

    homography: Homography
    fit: FitReport
    residual_m: np.ndarray  # (N,) fitted-map error at each mark
    loo_m: np.ndarray  # (N,) leave-one-out error at each mark (NaN: could not fit without it)
    camera: CameraModel | None
    implied_height_m: np.ndarray  # (B,) person height each given box implies (NaN: no model)
    max_error_m: float
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_calibration(
    image_px: np.ndarray,
    floor_m: np.ndarray,
    image_size: tuple[int, int],
    boxes: np.ndarray | None = None,
    *,
    person_m: float = PERSON_HEIGHT_M,
    max_error_m: float = 0.5,
) -> CalibrationCheck:
    """Fit the marks and judge whether the map would place people within ``max_error_m``.

    Refused (``problems``) when a mark is off by more than ``max_error_m`` in the fit or when
    left out of it, when fewer than 5 marks leave nothing to cross-check, and when the people
    in ``boxes`` (x1,y1,x2,y2 px in the still) are not the height the map says a person there
    should appear (a scale error in the metres fits perfectly and misplaces everyone).
    CalibrationError if the marks cannot give a homography at all.
    """
    hom, rep = fit_homography(image_px, floor_m, image_size)
    img = np.asarray(image_px, np.float64).reshape(-1, 2)
    flo = np.asarray(floor_m, np.float64).reshape(-1, 2)
    residual = np.linalg.norm(hom.to_floor(img) - flo, axis=1)
    problems: list[str] = []
    if len(img) < MIN_POINTS + 1:
        loo = np.full(len(img), np.nan)
        problems.append(
            f"only {len(img)} marks: at least {MIN_POINTS + 1} are needed to cross-check the "
            "map (each mark is predicted from the others); 8 or more spread over the floor "
            "are recommended"
        )
    else:
        loo = leave_one_out_errors(img, flo)
    if residual.max() > max_error_m:
        i = int(residual.argmax())
        problems.append(
            f"mark {i + 1} is {residual[i]:.2f} m from where the fitted map puts it "
            f"(limit {max_error_m} m): re-measure it or re-click its pixel"
        )
    if len(img) > MIN_POINTS:
        unfit = [i for i in range(len(loo)) if not np.isfinite(loo[i])]
        over = [i for i in range(len(loo)) if np.isfinite(loo[i]) and loo[i] > max_error_m]
        if over:
            worst = max(over, key=lambda i: float(loo[i]))
            problems.append(
                f"mark {worst + 1}: a map fitted without it puts it {loo[worst]:.2f} m away "
                f"(limit {max_error_m} m; {len(over)} mark(s) over): people between the marks "
                "would be misplaced; re-measure that mark or add marks around it"
            )
        if unfit:
            problems.append(
                f"without mark(s) {', '.join(str(i + 1) for i in unfit)} the other marks cannot "
                "define the floor (too few left off one line), so the map cannot be "
                "cross-checked there: add marks"
            )
    camera: CameraModel | None = None
    no_camera = ""
    try:
        camera = recover_camera(hom, image_size)
    except CalibrationError as exc:
        no_camera = str(exc)
    b = np.asarray(boxes if boxes is not None else np.empty((0, 4)), np.float64).reshape(-1, 4)
    implied = np.full(len(b), np.nan)
    if len(b) and camera is not None:
        feet = foot_points(b, image_size)
        on_floor = hom.to_floor(feet, image_size)
        px = camera.person_px(on_floor, person_m)
        pred = np.linalg.norm(px[:, 0] - px[:, 1], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            implied = person_m * (b[:, 3] - b[:, 1]) / pred
        implied[~np.isfinite(implied)] = np.nan
        med = float(np.nanmedian(implied)) if np.isfinite(implied).any() else math.nan
        lo, hi = PERSON_HEIGHT_RANGE_M
        if not lo <= med <= hi:
            problems.append(
                f"the {len(b)} people in the still are {med:.2f} m tall by this map (median; "
                f"{lo}-{hi} m expected): the metres of the marks are probably at the wrong "
                "scale, or the pixels belong to another frame size"
            )
    elif len(b):
        problems.append(
            "no real camera fits this map, so people's heights cannot be checked: " + no_camera
        )
    return CalibrationCheck(
        homography=hom,
        fit=rep,
        residual_m=residual,
        loo_m=loo,
        camera=camera,
        implied_height_m=implied,
        max_error_m=max_error_m,
        problems=problems,
    )
