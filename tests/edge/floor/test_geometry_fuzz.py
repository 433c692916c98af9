"""Fuzz: the installer's files on the camera (``edge.floor.geometry``): the calibration CSVs
(``read_number_csv``: marks ``u,v,x,y``, boxes ``x1,y1,x2,y2``) and the calibration YAML
(``load_calibration``) answer a broken file with a ``CalibrationError`` naming the file (and
line) or return valid numbers; never another exception. The shipped calibration, broken in a
few places, plus raw text. Bounds: tests/fuzzing.py."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edge.floor.geometry import CalibrationError, load_calibration, read_number_csv
from tests.fuzzing import FUZZ, mutated, nasty_text

CALIBRATION = Path(__file__).resolve().parents[3] / "config" / "calibration"
POINTS = (CALIBRATION / "pets09-s2l1-points.csv").read_text()
HOMOGRAPHY = yaml.safe_load((CALIBRATION / "pets09-s2l1.yaml").read_text())
COLUMNS = ("u", "v", "x", "y")


def _file(data: bytes, suffix: str) -> Any:
    fh = tempfile.NamedTemporaryFile(suffix=suffix)  # noqa: SIM115 - the caller closes it
    fh.write(data)
    fh.flush()
    return fh


def _read_or_refuse(data: bytes) -> None:
    with _file(data, ".csv") as fh:
        try:
            arr = read_number_csv(Path(fh.name), COLUMNS)
        except CalibrationError as exc:
            assert fh.name in str(exc)
            return
    assert arr.ndim == 2 and arr.shape[1] == len(COLUMNS) and np.isfinite(arr).all()


cell = st.one_of(st.text(max_size=10), nasty_text, st.floats().map(str))


@st.composite
def broken_points(draw: st.DrawFn) -> bytes:
    lines = POINTS.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        cells = lines[i].split(",")
        cells[draw(st.integers(0, len(cells) - 1))] = draw(cell)
        lines[i] = ",".join(cells) if draw(st.booleans()) else ";".join(cells)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def test_the_shipped_points_are_valid() -> None:
    _read_or_refuse(POINTS.encode())


@FUZZ
@given(broken_points() | st.binary(max_size=200))
def test_a_broken_calibration_csv_is_refused_by_line_or_valid(data: bytes) -> None:
    _read_or_refuse(data)


@FUZZ
@given(
    mutated(HOMOGRAPHY, max_changes=3).map(lambda d: yaml.safe_dump(d).encode())
    | st.binary(max_size=200).map(lambda b: b"version: 1\n" + b)
)
def test_a_broken_calibration_yaml_is_refused_or_valid(data: bytes) -> None:
    with _file(data, ".yaml") as fh:
        try:
            hom = load_calibration(Path(fh.name))
        except CalibrationError as exc:
            assert fh.name in str(exc)
            return
    assert hom.matrix.shape == (3, 3) and np.isfinite(hom.matrix).all()
