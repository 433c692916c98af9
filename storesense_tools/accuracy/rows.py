"""The per-probe row every figure is counted from, and its CSV (``--rows``)."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProbeRow:
    """One probe image's outcome: the unit every rate in the report is counted from."""

    dataset: str
    probe: str  # path relative to the data root
    true_id: str
    genuine: bool  # the person is in the gallery
    has_face: bool
    nearest: str
    distance: float
    second_distance: float
    decision: str  # "" = not matched

    @property
    def outcome(self) -> str:
        if not self.has_face:
            return "no usable face"
        if self.genuine:
            if self.decision == self.true_id:
                return "identified"
            return "wrong customer" if self.decision else "missed"
        return "false match" if self.decision else "rejected"


def rel_path(path: Path, root: Path) -> str:
    """``path`` relative to the data root; as it is when it lies outside."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def write_rows(path: Path, rows: Iterable[ProbeRow]) -> None:
    """Per-probe CSV, for auditing any figure by counting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "dataset",
                "probe",
                "true_id",
                "genuine",
                "has_face",
                "nearest",
                "distance",
                "second_distance",
                "decision",
                "outcome",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.dataset,
                    r.probe,
                    r.true_id,
                    int(r.genuine),
                    int(r.has_face),
                    r.nearest,
                    "" if math.isnan(r.distance) else f"{r.distance:.4f}",
                    "" if not math.isfinite(r.second_distance) else f"{r.second_distance:.4f}",
                    r.decision,
                    r.outcome,
                ]
            )
