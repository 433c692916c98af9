"""The checkout the report runs from: its root, its git state, the calibration script beside it.

Everything that locates files relative to the repository lives here, so the rest of the
package works on the paths and data it is given.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
# Code whose change changes the figures: a modified copy of these is flagged in the report.
RESULT_CODE = (
    "edge/entrance/face_",
    "edge/models/",
    "hub/faces/matcher.py",
    "storesense_tools/face_eval.py",
    "storesense/config.py",
    "storesense_tools/accuracy/",
    "scripts/accuracy_report.py",
    "scripts/calibrate_threshold.py",
)


def default_data_root() -> Path:
    """``$STORESENSE_SHARED_DATA/faces`` or ``<checkout>/../shared/data/faces``.

    Resolved the same way as ``tests/conftest.py`` and ``calibrate_threshold.DEFAULT_LFW`` so the
    image paths, and therefore the embedding cache keys, are the same for all three.
    """
    env = os.environ.get("STORESENSE_SHARED_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data"
    return (base / "faces").resolve()


def calibration() -> ModuleType:
    """scripts/calibrate_threshold.py as a module (scripts/ is not a package).

    Reused rather than copied: its list of LFW label errors and its one-sided bound are what
    docs/calibration.md quotes, and the two documents must agree.
    """
    if "calibrate_threshold" in sys.modules:
        return sys.modules["calibrate_threshold"]
    spec = importlib.util.spec_from_file_location(
        "calibrate_threshold", REPO / "scripts" / "calibrate_threshold.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["calibrate_threshold"] = mod  # before exec: dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def git_state() -> tuple[str, list[str]]:
    """HEAD commit and the modified files among the code that determines the figures."""

    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    head = run("rev-parse", "HEAD").strip() or "unknown"
    dirty = [
        ln[3:] for ln in run("status", "--porcelain").splitlines() if ln[3:].startswith(RESULT_CODE)
    ]
    return head, dirty
