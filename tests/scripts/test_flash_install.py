"""scripts/flash_device.sh with its real venv install (no ``--skip-install``), into a root tree.

``test_flash_device.py`` skips the install to stay fast; this is the one run of the part a
device depends on most: a venv built with this machine's Python 3.11, the package built from a
copy of this checkout (so the checkout stays clean), a camera's dependencies only, and the
venv's paths rewritten to ``/opt/storesense/venv`` for the node. pip fetches from PyPI or its
cache (``~/.cache/pip``): minutes on a cold cache, about a minute on a warm one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "flash_device.sh"
EXAMPLE = REPO / "config" / "store.example.yaml"
NODE_VENV = "/opt/storesense/venv"


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH, no venv of ours: the node's venv must work on its own."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _build_litter() -> dict[str, int]:
    """What an in-tree setuptools build leaves in the checkout, with modification times (not
    ``git status``: other work may change the checkout meanwhile)."""
    found = [REPO / "build", *REPO.glob("*.egg-info")]
    return {str(p): p.stat().st_mtime_ns for p in found if p.exists()}


def test_camera_flash_installs_a_venv_that_runs_storesense(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    before = _build_litter()
    argv = ["bash", str(SCRIPT), "--role", "entrance", "--camera", "door-1"]
    argv += ["--hub-address", "10.0.0.2", "--store-config", str(EXAMPLE), "--root", str(root)]
    started = time.monotonic()
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**_clean_env(), "PYTHON": sys.executable},
        timeout=1500,
    )
    took = time.monotonic() - started
    print(f"flash_device.sh with the venv install took {took:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "installed a new package version or code into" in result.stdout

    venv = root / NODE_VENV.lstrip("/")
    console = venv / "bin" / "storesense"
    # On the node the venv lives at /opt/storesense/venv: the script's shebang says so…
    assert console.read_text().splitlines()[0] == f"#!{NODE_VENV}/bin/python"
    assert str(root) not in (venv / "bin" / "activate").read_text()
    # …so here, where there is no /opt/storesense, the venv's own Python runs that script.
    python = venv / "bin" / "python"
    help_out = subprocess.run(
        [str(python), str(console), "--help"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert help_out.returncode == 0, help_out.stderr
    assert help_out.stdout.startswith("usage: storesense")
    for command in ("hub", "edge", "broker-config", "config"):
        assert command in help_out.stdout

    # It is the venv's copy of the package (not this checkout), the camera's core only, and
    # it can read the node's store.yaml the script wrote. (cryptography is core: the camera
    # seals its face tracks, storesense.face_seal.)
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, storesense, edge.camera_agent; print(storesense.__file__);"
            " print(sorted(m for m in ('fastapi', 'matplotlib', 'implicit', 'uvicorn',"
            " 'psycopg', 'shapely') if u.find_spec(m)))",
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    where, hub_libs = probe.stdout.splitlines()
    assert where.startswith(str(venv)), where
    assert hub_libs == "[]", f"a camera got hub libraries: {hub_libs}"
    check = subprocess.run(
        [str(python), str(console), "config", "check", str(root / "etc/storesense/store.yaml")],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert ": ok (store store-001, 2 cameras)" in check.stdout

    assert _build_litter() == before, "the install built inside the checkout"


pytestmark = pytest.mark.timeout(1800)
