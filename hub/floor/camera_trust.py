"""How far to trust each floor camera's counts: its people's pixel sizes against measured recall.

Why: a floor camera's detector finds fewer of the people who appear small (far away, a high
wide-angle camera), and nothing in its counts says so. Each camera reports, per message, how
many of the people it counted fell in each pixel-height band (``FloorPositions.
height_counts``, bands ``storesense.messages.FLOOR_HEIGHT_BANDS_PX``); the floor room sums them
per camera and day (``floor_camera_heights``). ``recall_by_height.yaml`` next to this module
holds the share of people the camera's counts catch in each band, measured on the development
clips (bench/floor_count_eval.py --write-recall; how is written in the file).

Per camera, from the counted people ``c_b`` per band and the measured recall ``R_b``:

* the people there were ``n_b ≈ c_b / R_b`` (the missed ones are, by definition, not in the
  counts, so the raw distribution under-states the small bands);
* **expected recall** = Σ c_b / Σ n_b over the bands with a measured recall: the share of the
  people present that the camera's counts catch, on average;
* **share in low-recall bands**: Σ n_b over bands with ``R_b < LOW_RECALL``, over Σ n_b;
* **share unmeasured**: people in bands the development clips had too few people in to measure
  (for those no correction is possible; they are left out of the expected recall and said).

These are estimates from other scenes' recall, not a measurement of this camera: the report
says so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from storesense.messages import FLOOR_HEIGHT_BANDS_PX

RECALL_TABLE = Path(__file__).with_name("recall_by_height.yaml")
# A band whose measured recall is below this is "where the detector's recall drops": clearly
# under the goal of 0.85, so that measurement noise between neighbouring bands (a few
# hundred gt boxes each) does not decide it. Which bands fall below depends on the detector
# version the table was measured with (see the table's header).
LOW_RECALL = 0.80
MIN_COUNTED = 100  # fewer counted person-frames over the period: too little to say anything


class TrustError(ValueError):
    """The recall table is unreadable or does not match the contract's height bands."""


@dataclass(frozen=True)
class RecallTable:
    """Measured recall per FLOOR_HEIGHT_BANDS_PX band (None: not measured) and its provenance."""

    recall: tuple[float | None, ...]
    measured: str


def load_recall_table(path: Path = RECALL_TABLE) -> RecallTable:
    """Read ``recall_by_height.yaml``; TrustError naming the file and the problem."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        bands = doc["bands"]
        edges = tuple(int(b["min_px"]) for b in bands)
        recall = tuple(None if b["recall"] is None else float(b["recall"]) for b in bands)
        measured = str(doc["measured"]["by"]) + ", " + str(doc["measured"]["date"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise TrustError(f"{path}: unreadable recall table: {exc}") from None
    if edges != tuple(FLOOR_HEIGHT_BANDS_PX):
        raise TrustError(
            f"{path}: bands {edges} differ from the cameras' {tuple(FLOOR_HEIGHT_BANDS_PX)}: "
            "re-run bench/floor_count_eval.py --write-recall"
        )
    if any(r is not None and not 0 < r <= 1 for r in recall):
        raise TrustError(f"{path}: every measured recall must be in (0, 1]")
    return RecallTable(recall=recall, measured=measured)


@dataclass(frozen=True)
class CameraTrust:
    """One camera's self-check over a period (see the module docstring for the estimates)."""

    camera_id: str
    counted: int  # person-frames with a height band over the period
    expected_recall: float | None  # None: nothing in a measured band, or too few counted
    share_low: float | None  # estimated share of people in bands with recall < LOW_RECALL
    share_unmeasured: float | None  # …in bands without a measured recall
    low_bands_px: tuple[str, ...]  # the low-recall bands these people were in, e.g. "32-40"

    @property
    def enough(self) -> bool:
        return self.counted >= MIN_COUNTED and self.expected_recall is not None

    def sentence(self) -> str:
        """One line for the manager."""
        if not self.enough:
            return (
                f"{self.camera_id}: too few people with a size reported ({self.counted} "
                "person-frames) to judge; cameras on older software do not report sizes."
            )
        assert self.expected_recall is not None and self.share_low is not None
        text = (
            f"{self.camera_id}: counts catch about {self.expected_recall:.0%} of the people "
            f"present; {self.share_low:.0%} of people appear at sizes where the detector "
            f"finds fewer (recall under {LOW_RECALL:.0%})"
        )
        if self.low_bands_px:
            text += f" ({', '.join(self.low_bands_px)} px tall)"
        if self.share_unmeasured:
            text += f"; {self.share_unmeasured:.0%} appear at sizes not measured in testing"
        return text + "."


def _band_label(b: int) -> str:
    lo = FLOOR_HEIGHT_BANDS_PX[b]
    return (
        f"{lo}-{FLOOR_HEIGHT_BANDS_PX[b + 1]}" if b + 1 < len(FLOOR_HEIGHT_BANDS_PX) else f"{lo}+"
    )


def assess(camera_id: str, counts: Sequence[int], table: RecallTable) -> CameraTrust:
    """The estimates from one camera's counted person-frames per band (pure arithmetic)."""
    if len(counts) != len(table.recall):
        raise ValueError(f"{len(counts)} band counts for {len(table.recall)} bands")
    if any(c < 0 for c in counts):
        raise ValueError("band counts must not be negative")
    total = int(sum(counts))
    est = [c / r if r else float(c) for c, r in zip(counts, table.recall, strict=True)]
    people = sum(est)
    measured = [(c, n) for c, n, r in zip(counts, est, table.recall, strict=True) if r is not None]
    seen_m, est_m = sum(c for c, _ in measured), sum(n for _, n in measured)
    low = [b for b, r in enumerate(table.recall) if r is not None and r < LOW_RECALL]
    if people <= 0:
        return CameraTrust(camera_id, total, None, None, None, ())
    return CameraTrust(
        camera_id=camera_id,
        counted=total,
        expected_recall=None if est_m <= 0 else seen_m / est_m,
        share_low=sum(est[b] for b in low) / people,
        share_unmeasured=sum(n for n, r in zip(est, table.recall, strict=True) if r is None)
        / people,
        low_bands_px=tuple(_band_label(b) for b in low if counts[b]),
    )


def trust_by_camera(
    conn: sqlite3.Connection, days: Sequence[str], table: RecallTable | None = None
) -> list[CameraTrust]:
    """Every camera that reported sizes on ``days`` (YYYY-MM-DD), by camera id."""
    if not days:
        return []
    table = table or load_recall_table()
    marks = ",".join("?" * len(days))
    counts: dict[str, list[int]] = {}
    for cam, band, n in conn.execute(
        f"SELECT camera_id, band, SUM(n) FROM floor_camera_heights WHERE day IN ({marks}) "
        "GROUP BY camera_id, band",
        tuple(days),
    ):
        if 0 <= band < len(FLOOR_HEIGHT_BANDS_PX):
            counts.setdefault(str(cam), [0] * len(FLOOR_HEIGHT_BANDS_PX))[band] += int(n)
    return [assess(cam, c, table) for cam, c in sorted(counts.items())]


def report_section(conn: sqlite3.Connection, days: Sequence[str]) -> dict | None:
    """What the report's "How far to trust each camera's counts" block shows; None without
    any camera that reported sizes (older agents), so the block is left out."""
    try:
        table = load_recall_table()
    except TrustError as exc:
        return {"cameras": [], "problem": str(exc), "measured": ""}
    cams = trust_by_camera(conn, days, table)
    if not cams:
        return None
    return {
        "cameras": [
            {
                "camera": c.camera_id,
                "sentence": c.sentence(),
                "expected_recall": c.expected_recall,
                "share_low": c.share_low,
                "share_unmeasured": c.share_unmeasured,
                "counted": c.counted,
            }
            for c in cams
        ],
        "problem": None,
        "measured": table.measured,
    }
