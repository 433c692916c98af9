"""The artefact a device really runs: the wheel, installed non-editable into fresh venvs.

Every other test imports the editable install, where a path computed from ``__file__`` lands in
the source tree and works by accident. ``scripts/flash_device.sh`` installs the wheel instead:
``storesense[hub]`` on the hub, the core alone on a camera. So this module builds the wheel once
(from a copy of the sources: a build must not leave ``build/`` in the checkout), installs it into
two new venvs with pip (no ``--system-site-packages``, no editable link), and runs the smoke a
device would:

* the wheel holds every data file of the packages (templates, migrations, models, assets);
* hub: ``storesense demo``, then ``db migrate``, ``pos import`` with the default category
  rules, ``suggest build`` and ``report`` on a fresh home;
* camera: no hub library is installed, ``storesense edge run --help`` works, every command is
  either a camera command or marked hub-only, and every hub-only command is refused with one
  line naming the extra to install (exit 2, no traceback).

The installs are real (minutes on a cold pip cache, seconds on a warm one), hence the timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = (
    "pyproject.toml", "README.md", "storesense", "storesense_tools", "hub", "edge", "central",
)  # fmt: skip
HUB_EXTRA_LINE = "needs the hub extra: pip install 'storesense[hub]'"
CENTRAL_EXTRA_LINE = "needs the central extra: pip install 'storesense[central]'"

pytestmark = pytest.mark.timeout(1800)  # a cold pip cache downloads OpenCV, dlib, SciPy …


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def storesense(self) -> Path:
        return self.root / "bin" / "storesense"

    def run(
        self, *argv: str, cwd: Path, timeout: float = 300, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``storesense ARGV`` (or ``python ARGV`` when argv[0] is ``-c``) outside the checkout.

        The environment loses the variables that could point back at the checkout or another
        home (``PYTHONPATH``, ``VIRTUAL_ENV``, ``STORESENSE_*``), and the working directory is a
        temporary one, so nothing but the installed files can be imported.
        """
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
            and not k.startswith("STORESENSE_")
        }
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        exe = [str(self.python)] if argv and argv[0] == "-c" else [str(self.storesense)]
        proc = subprocess.run(
            [*exe, *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert proc.returncode == 0, (argv, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc


def _pip(python: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` of a copy of the sources, as flash_device.sh would build it."""
    src = tmp_path_factory.mktemp("wheel-src")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=junk)
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    _pip(Path(sys.executable), "wheel", "--no-deps", "-q", "-w", str(out), str(src))
    (built,) = out.glob("storesense-*.whl")
    return built


def _fresh_venv(root: Path, requirement: str) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    venv = Venv(root)
    _pip(venv.python, "install", "-q", requirement)
    return venv


@pytest.fixture(scope="session")
def hub_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    venv = _fresh_venv(tmp_path_factory.mktemp("hub-venv") / "venv", f"{wheel}[hub]")
    yield venv
    shutil.rmtree(venv.root, ignore_errors=True)  # ~1 GB; pytest keeps old tmp dirs around


@pytest.fixture(scope="session")
def camera_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    venv = _fresh_venv(tmp_path_factory.mktemp("camera-venv") / "venv", str(wheel))
    yield venv
    shutil.rmtree(venv.root, ignore_errors=True)


def _installed_from_site_packages(venv: Venv, cwd: Path) -> None:
    """Guard for the rest: the packages are the venv's copies, not the checkout's files."""
    proc = venv.run(
        "-c",
        "import edge, hub, storesense, storesense_tools; "
        "print('\\n'.join(m.__file__ for m in (edge, hub, storesense, storesense_tools)))",
        cwd=cwd,
        check=True,
    )
    for line in proc.stdout.split():
        assert Path(line).is_relative_to(venv.root), line
        assert "site-packages" in line, line


# Files in the packages that a running device never opens, so the wheel leaves them out.
NOT_SHIPPED = {
    "edge/models/fetch_blazeface.sh",  # how the models were fetched: a maintainer's tool
    "edge/models/fetch_sface.sh",
    "edge/models/fetch_nanodet.sh",
}


def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    """Every non-Python file under the packages is in the wheel (or named in NOT_SHIPPED): a
    new template, migration or asset that pyproject's package-data misses fails here, not on
    a device (the SQL baseline migration was found missing that way)."""
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    source = {
        path.relative_to(REPO).as_posix()
        for pkg in SOURCES[2:]
        for path in (REPO / pkg).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert sorted(source - shipped - NOT_SHIPPED) == []
    assert source >= NOT_SHIPPED  # the exceptions still exist (else drop them from the list)


# -- hub install -------------------------------------------------------------------------------


def test_hub_wheel_carries_its_package_data(hub_venv: Venv, tmp_path: Path) -> None:
    """Every file the code opens at run time is in the install, found through the package."""
    _installed_from_site_packages(hub_venv, tmp_path)
    script = textwrap.dedent(
        """
        from importlib import resources
        from edge.model_files import MODELS_DIR
        from hub.shop.categories import DEFAULT_RULES_PATH
        files = [
            DEFAULT_RULES_PATH,
            MODELS_DIR / "ssdlite_person.tflite",
            resources.files("hub.floor") / "templates" / "report.html.j2",
            resources.files("hub.web") / "static" / "index.html",
            resources.files("storesense_tools") / "demo_assets" / "store-aisle-plan.png",
        ]
        for f in files:
            assert f.is_file(), f
            print(f)
        """
    )
    out = hub_venv.run("-c", script, cwd=tmp_path, check=True).stdout.split()
    assert len(out) == 5 and all(Path(p).is_relative_to(hub_venv.root) for p in out)


def test_hub_wheel_runs_the_demo(hub_venv: Venv, tmp_path: Path) -> None:
    proc = hub_venv.run(
        "--home",
        str(tmp_path / "home"),
        "demo",
        "--headless",
        "--seconds",
        "20",
        "--out",
        str(tmp_path / "out"),
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])  # 0: alerts sent
    assert "Traceback" not in proc.stderr


POS_CSV = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    + "".join(
        f"5370{i:02d},{code},{desc},{1 + i % 3},2010-12-0{1 + i % 5} 10:00:00,2.5,"
        f"1785{i % 4}.0,United Kingdom\n"
        for i, (code, desc) in enumerate(
            [
                ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER"),
                ("20725", "LUNCH BAG RED RETROSPOT"),
                ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS"),
                ("POST", "POSTAGE"),
            ]
            * 6
        )
    )
)
STORE_YAML = (
    "store_id: s1\nfloor: {width_m: 10, height_m: 8}\nzones:\n"
    "  - {name: lights, polygon: [[0, 0], [4, 0], [4, 4], [0, 4]], categories: [lighting]}\n"
    # a floor camera, so the page is the full report (a store without one gets a banner page)
    "cameras: [{id: aisle-1, role: floor, source: x}]\n"
)


def _cli(venv: Venv, home: Path, cwd: Path, *argv: str) -> str:
    return venv.run("--home", str(home), *argv, cwd=cwd, check=True).stdout


def test_hub_wheel_imports_sales_with_the_default_rules_and_reports(
    hub_venv: Venv, tmp_path: Path
) -> None:
    """The path that broke: ``pos import`` without ``--categories`` reads the shipped rules."""
    home = tmp_path / "home"
    csv = tmp_path / "sales.csv"
    csv.write_text(POS_CSV)
    (tmp_path / "store.yaml").write_text(STORE_YAML)
    _cli(hub_venv, home, tmp_path, "db", "migrate")  # what an installer runs on a new hub
    report = json.loads(
        _cli(hub_venv, home, tmp_path, "pos", "import", "--csv", str(csv), "--json")
    )
    assert (report["invoices_imported"], report["committed"]) == (24, True), report
    with sqlite3.connect(home / "hub.sqlite3") as conn:
        cats = dict(conn.execute("SELECT stock_code, category FROM pos_products").fetchall())
    assert cats == {
        "85123A": "lighting",
        "20725": "bags",
        "22086": "christmas",
        "POST": "non-product",
    }
    out = _cli(hub_venv, home, tmp_path, "suggest", "build", "--cutoff", "2010-12-06")
    assert json.loads(out)["customers"] == 3, out  # 17853 bought postage only: no product
    proc = hub_venv.run(
        "--home",
        str(home),
        "--config",
        str(tmp_path / "store.yaml"),
        "report",
        "--date",
        "2010-12-03",
        cwd=tmp_path,
    )
    # the camera never sent data: the nightly run fails loudly, but still writes the page
    assert proc.returncode == 1 and "no floor camera data for 2010-12-03" in proc.stderr, proc
    page = (home / "reports" / "2010-12-03" / "report.html").read_text()
    assert "<h2>Zones</h2>" in page and "data:image/png;base64," in page


# -- camera install ----------------------------------------------------------------------------


def test_camera_wheel_has_no_hub_libraries_and_runs_the_edge_agent_help(
    camera_venv: Venv, tmp_path: Path
) -> None:
    _installed_from_site_packages(camera_venv, tmp_path)
    for module in ("fastapi", "matplotlib", "jinja2"):
        probe = camera_venv.run("-c", f"import {module}", cwd=tmp_path)
        assert probe.returncode != 0, f"{module} is installed: not a camera install"
    # cryptography is core since the door camera seals its face tracks (storesense/face_seal.py)
    proc = camera_venv.run("-c", _SEAL_A_TRACK, cwd=tmp_path, check=True)
    assert proc.stdout.split() == ["sealed_face_track", "door-1"]
    proc = camera_venv.run("edge", "run", "--help", cwd=tmp_path, check=True)
    assert "--camera" in proc.stdout
    example = REPO / "config" / "store.example.yaml"
    proc = camera_venv.run("config", "check", str(example), cwd=tmp_path, check=True)
    assert "ok (store" in proc.stdout


_SEAL_A_TRACK = """
from storesense import face_seal, messages as m
track = m.FaceTrack(camera_id="door-1", track_id="0" * 32, update=0, final=True,
                    first_usable_at=0.0, samples=[])
key = face_seal.new_key("door-1")
sealed = face_seal.seal(track, key)
assert face_seal.open_sealed(sealed, key) == track
print(sealed.kind, sealed.camera_id)
"""

_SFACE_SAME_PERSON = """
import sys
import numpy as np
from edge.entrance.face_pipeline import FacePipeline
pipe = FacePipeline.for_photos(model="sface-2021dec-int8bq")
a, b = ([o.embedding for o in pipe.observations_from_image_file(p) if o.embedding is not None]
        for p in sys.argv[1:3])
print(pipe.model_id, len(a), len(b), round(float(np.linalg.norm(a[0])), 3),
      round(float(np.linalg.norm(a[0] - b[0])), 3))
"""


def test_camera_wheel_embeds_with_sface_from_its_own_package_data(
    camera_venv: Venv, tmp_path: Path, shared_data: Path
) -> None:
    """The SFace weights ship in the edge wheel and load from there (no checkout, no download):
    two photos of one person come out as unit vectors closer than SFace's match threshold."""
    from storesense.face_models import DECISION_DEFAULTS, SFACE

    colin = shared_data / "faces/lfw-dev/Colin_Powell"
    proc = camera_venv.run(
        "-c", _SFACE_SAME_PERSON, str(colin / "Colin_Powell_0001.jpg"),
        str(colin / "Colin_Powell_0002.jpg"), cwd=tmp_path, check=True,
    )  # fmt: skip
    model, n_a, n_b, norm, dist = proc.stdout.split()[-5:]
    assert (model, n_a, n_b, norm) == (SFACE, "1", "1", "1.0")
    assert float(dist) < DECISION_DEFAULTS[SFACE].threshold


# Every hub-only command and the arguments argparse needs before the extra check can speak.
HUB_ONLY: dict[str, tuple[str, ...]] = {
    "hub run": (),
    "demo": ("--headless",),
    "status": (),
    "db migrate": (),
    "broker-config": ("--out", "x"),
    "central bridge-config": ("--store", "s1", "--out", "x", "--host", "hq"),
    "chain resend": ("--hours", "1"),
    "chain peers": (),
    "enroll": ("--customer", "c1", "--name", "Ann", "x.jpg"),
    "faces review": (),
    "camera-key issue": ("--camera", "door-1", "--out", "x"),
    "camera-key retire": ("0123456789abcdef",),
    "camera-key revoke": ("--camera", "door-1"),
    "camera-key list": (),
    "erase": ("--customer", "c1"),
    "customer forget": ("c1",),
    "customer export": ("c1",),
    "customer withdraw-photo": ("c1",),
    "audit verify": (),
    "keys rotate": (),
    "retention run": (),
    "backup": ("--out", "x"),
    "restore": ("x",),
    "report": ("--date", "today"),
    "staff add": ("--id", "alice", "--name", "Alice", "--role", "manager"),
    "staff list": (),
    "staff disable": ("bob",),
    "staff enable": ("bob",),
    "web run": (),
    "web pos-token": (),
    "web cert": (),
    "web onboarding": (),
    "pos import": ("--csv", "x.csv"),
    "pos recategorize": (),
    "pos birthday": ("--customer", "c1", "--date", "12-03"),
    "pos card": ("--customer", "c1", "--reason", "x"),
    "suggest build": (),
    "suggest export": ("--out", "x.csv"),
    "suggest eval": ("--csv", "x.csv"),
}
# The central office's own commands (psycopg): only a head-office install has them.
CENTRAL_ONLY: dict[str, tuple[str, ...]] = {
    "central migrate": (), "central run": (), "central retention": (), "central web": (),
    "central user add": ("--user", "nora", "--role", "chain"),
    "central store set": ("--store", "s1"),
    "central pos import": ("x.csv", "--store", "s1"),
}  # fmt: skip
# What a camera runs: the agent and the camera-side tools (calibration, offline tracking).
CAMERA_COMMANDS = {
    "edge run",
    "eval faces",
    "config check",
    "calibrate",
    "calibrate-marks",
    "calibrate-check",
    "track",
    "occupancy",
}

_LIST_COMMANDS = """
import argparse, json
from storesense_tools.cli import build_parser
def leaves(p, words):
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(words), p.get_default("extra")
        return
    for name, sp in subs[0].choices.items():
        yield from leaves(sp, [*words, name])
print(json.dumps(dict(leaves(build_parser(), []))))
"""


def test_camera_wheel_knows_which_commands_need_the_hub(camera_venv: Venv, tmp_path: Path) -> None:
    """Every command is either marked hub-only (and refused below) or a camera command: a new
    command has to take a side, so none can reach a camera as a ModuleNotFoundError."""
    listed = json.loads(camera_venv.run("-c", _LIST_COMMANDS, cwd=tmp_path, check=True).stdout)
    assert {c for c, extra in listed.items() if extra is None} == CAMERA_COMMANDS
    assert {c for c, extra in listed.items() if extra == "hub"} == set(HUB_ONLY)
    assert {c for c, extra in listed.items() if extra == "central"} == set(CENTRAL_ONLY)


def test_camera_wheel_refuses_hub_commands_in_one_line(camera_venv: Venv, tmp_path: Path) -> None:
    """Each hub-only command says which extra to install: one line, exit 2, no traceback."""
    config = tmp_path / "store.yaml"
    config.write_text("store_id: s1\n")
    refusals = [(w, a, HUB_EXTRA_LINE) for w, a in HUB_ONLY.items()]
    refusals += [(w, a, CENTRAL_EXTRA_LINE) for w, a in CENTRAL_ONLY.items()]
    for words, args, line in refusals:
        argv = ("--home", str(tmp_path), "--config", str(config), *words.split(), *args)
        proc = camera_venv.run(*argv, cwd=tmp_path)
        expected = f"storesense: storesense {words} {line}"
        assert (proc.returncode, proc.stderr.strip()) == (2, expected), (words, proc.stderr)
        assert proc.stdout == ""


_ENSEMBLE_ON_A_FRAME = """
import numpy as np
from edge.floor.person_detect import NANODET_MODEL, SSD_MODEL, make_person_detector
from edge.floor.pipeline import DETECTOR_OPTIONS
det = make_person_detector("ensemble", **DETECTOR_OPTIONS["ensemble"])
print(SSD_MODEL, NANODET_MODEL, len(det.detect(np.zeros((360, 480, 3), np.uint8))))
"""


def test_camera_wheel_runs_the_floor_ensemble_from_its_own_package_data(
    camera_venv: Venv, tmp_path: Path
) -> None:
    """`person_detector: ensemble` needs both person networks (SSDLite and NanoDet-g) on the
    camera: both come from the installed package, and the fused detector runs there."""
    proc = camera_venv.run("-c", _ENSEMBLE_ON_A_FRAME, cwd=tmp_path, check=True)
    ssd, nano, n = proc.stdout.split()
    for path in (ssd, nano):
        assert Path(path).is_relative_to(camera_venv.root) and "site-packages" in path, path
    assert n == "0"  # a blank frame has no people
