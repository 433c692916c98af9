"""scripts/flash_device.sh, run for real into a throwaway root tree.

An installer flashes devices on a ladder with a laptop: every refusal must be one clear line
before anything is touched, a re-run must change nothing, and the tree it leaves must be what
systemd will boot (wants-symlinks pointing at the unit files, the camera id in the instance
name, secrets not world-readable). The venv install is skipped (``--skip-install``): it needs
the network and minutes, and is plain ``pip``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from storesense.config import load_config

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "flash_device.sh"
EXAMPLE = REPO / "config" / "store.example.yaml"
UNITS = REPO / "systemd"
ETC = Path("etc/storesense")
SYSTEMD = Path("etc/systemd/system")
WANTS = SYSTEMD / "multi-user.target.wants"


def flash(root: Path | None, *args: str, env: dict[str, str] | None = None):
    """Run the script; --root and --skip-install unless the test passes its own."""
    argv = ["bash", str(SCRIPT), *args]
    if root is not None:
        argv += ["--root", str(root)]
    if "--wheel" not in args and "--source" not in args:
        argv.append("--skip-install")
    full_env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=60)


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything that matters about a tree: paths, kinds, modes, contents, link targets."""
    out: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        st = p.lstat()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """What `storesense broker-config` hands the installer: per-device credentials and the CA."""
    out = tmp_path / "bundle"
    (out / "credentials").mkdir(parents=True)
    for account in ("hub", "cam-door-1", "cam-floor-1"):
        creds = {"password": f"pw-{account}", "port": 8883, "tls_ca": "ca.crt", "username": account}
        (out / "credentials" / f"{account}.yaml").write_text(yaml.safe_dump(creds))
    (out / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


def entrance_args(bundle: Path, camera: str = "door-1", role: str = "entrance") -> list[str]:
    return [
        "--role",
        role,
        "--camera",
        camera,
        "--hub-address",
        "10.0.0.2",
        "--store-config",
        str(EXAMPLE),
        "--mqtt-credentials",
        str(bundle / "credentials" / f"cam-{camera}.yaml"),
        "--ca-cert",
        str(bundle / "ca.crt"),
    ]


def hub_args(bundle: Path) -> list[str]:
    return [
        "--role",
        "hub",
        "--store-config",
        str(EXAMPLE),
        "--mqtt-credentials",
        str(bundle / "credentials" / "hub.yaml"),
        "--ca-cert",
        str(bundle / "ca.crt"),
    ]


# -- refusals: exit 2, one line on stderr, nothing written ------------------------------------


def _refusal_cases(bundle: Path, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    creds = bundle / "credentials"
    cfg = ["--store-config", str(EXAMPLE)]
    cam = ["--hub-address", "10.0.0.2", *cfg]
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("store_id: s1\nvisits:\n  cooldown: 5\n")
    plain_creds = tmp_path / "plain.yaml"
    plain_creds.write_text("username: cam-door-1\npassword: pw\ntls_ca: ca.crt\n")
    return {
        "wrong role": (["--role", "door", *cfg], "--role must be hub, entrance or floor"),
        "no role": (cfg, "--role is required"),
        "no hub address": (
            ["--role", "entrance", "--camera", "door-1", *cfg],
            "--hub-address HOST is required for the entrance role",
        ),
        "no camera": (["--role", "floor", *cam], "--camera ID is required for the floor role"),
        "camera not in config": (
            ["--role", "entrance", "--camera", "door-9", *cam],
            "camera 'door-9' is not in",
        ),
        "camera of another role": (
            ["--role", "entrance", "--camera", "floor-1", *cam],
            "camera 'floor-1' is a floor camera in",
        ),
        "camera on the hub": (
            ["--role", "hub", "--camera", "door-1", *cfg],
            "--camera is for camera roles",
        ),
        "missing store config": (
            ["--role", "hub", "--store-config", str(tmp_path / "nope.yaml")],
            "nope.yaml not found",
        ),
        "invalid store config": (
            ["--role", "hub", "--store-config", str(bad_cfg)],
            "visits.cooldown: unknown key",
        ),
        "missing credentials": (
            ["--role", "hub", *cfg, "--mqtt-credentials", str(creds / "nope.yaml")],
            "MQTT credentials",
        ),
        "missing CA": (
            ["--role", "hub", *cfg, "--ca-cert", str(bundle / "nope.crt")],
            "CA certificate",
        ),
        "another device's credentials": (
            [
                "--role",
                "entrance",
                "--camera",
                "door-1",
                *cam,
                "--ca-cert",
                str(bundle / "ca.crt"),
                "--mqtt-credentials",
                str(creds / "cam-floor-1.yaml"),
            ],
            "is for MQTT account 'cam-floor-1', this node is 'cam-door-1'",
        ),
        "TLS credentials without the CA": (
            [
                "--role",
                "entrance",
                "--camera",
                "door-1",
                *cam,
                "--mqtt-credentials",
                str(plain_creds),
            ],
            "pass --ca-cert FILE",
        ),
        "unknown option": (["--role", "hub", *cfg, "--colour", "red"], "unknown argument"),
    }


REFUSALS = [
    "wrong role",
    "no role",
    "no hub address",
    "no camera",
    "camera not in config",
    "camera of another role",
    "camera on the hub",
    "missing store config",
    "invalid store config",
    "missing credentials",
    "missing CA",
    "another device's credentials",
    "TLS credentials without the CA",
    "unknown option",
]


@pytest.mark.parametrize("case", REFUSALS)
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_refusals_are_one_line_and_touch_nothing(
    case: str, dry_run: bool, bundle: Path, root: Path, tmp_path: Path
) -> None:
    args, expected = _refusal_cases(bundle, tmp_path)[case]
    result = flash(root, *args, *(["--dry-run"] if dry_run else []))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("flash_device.sh: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not list(root.iterdir())


# -- provisioning -------------------------------------------------------------------------------


def test_hub_is_provisioned(bundle: Path, root: Path) -> None:
    result = flash(root, *hub_args(bundle))
    assert result.returncode == 0, result.stderr

    store = root / ETC / "store.yaml"
    assert mode(store) == 0o640
    assert mode(root / ETC / "mqtt-credentials.yaml") == 0o600
    assert mode(root / ETC / "ca.crt") == 0o644
    cfg = load_config(store)
    assert cfg.mqtt.host == "127.0.0.1"  # the hub talks to the broker beside it
    assert (cfg.mqtt.username, cfg.mqtt.password, cfg.mqtt.port) == ("hub", "pw-hub", 8883)
    assert str(cfg.mqtt.tls_ca) == "/etc/storesense/ca.crt"
    assert (root / ETC / "ca.crt").read_bytes() == (bundle / "ca.crt").read_bytes()

    for unit in (
        "storesense-hub.service",
        "storesense-web.service",
        "storesense-report.service",
        "storesense-report.timer",
        "storesense-suggest.service",
        "storesense-suggest.timer",
    ):
        assert (root / SYSTEMD / unit).read_bytes() == (UNITS / unit).read_bytes()
    link = root / WANTS / "storesense-hub.service"
    assert os.readlink(link) == "/etc/systemd/system/storesense-hub.service"
    assert sorted(p.name for p in (root / WANTS).iterdir()) == [
        "storesense-hub.service",
        "storesense-web.service",
    ]
    timers = root / SYSTEMD / "timers.target.wants"
    for timer in ("storesense-report.timer", "storesense-suggest.timer"):
        assert os.readlink(timers / timer) == f"/etc/systemd/system/{timer}"
    assert not list(root.glob("etc/systemd/system/*edge*"))

    assert "u storesense" in (root / "etc/sysusers.d/storesense.conf").read_text()
    assert (
        "z /etc/storesense/store.yaml 0640 root storesense"
        in (root / "etc/tmpfiles.d/storesense.conf").read_text()
    )


def test_entrance_camera_is_provisioned(bundle: Path, root: Path) -> None:
    result = flash(root, *entrance_args(bundle))
    assert result.returncode == 0, result.stderr

    cfg = load_config(root / ETC / "store.yaml")
    assert cfg.mqtt.host == "10.0.0.2"  # the hub address, not the config's 127.0.0.1
    assert (cfg.mqtt.username, cfg.mqtt.password) == ("cam-door-1", "pw-cam-door-1")
    assert cfg.camera("door-1").role == "entrance"
    assert mode(root / ETC / "store.yaml") == 0o640
    assert mode(root / ETC / "mqtt-credentials.yaml") == 0o600

    link = root / WANTS / "storesense-edge@door-1.service"
    assert os.readlink(link) == "/etc/systemd/system/storesense-edge@.service"
    assert (root / SYSTEMD / "storesense-edge@.service").is_file()
    assert sorted(p.name for p in (root / WANTS).iterdir()) == ["storesense-edge@door-1.service"]
    assert not (root / SYSTEMD / "storesense-hub.service").exists()


def test_rerun_is_idempotent(bundle: Path, root: Path) -> None:
    assert flash(root, *entrance_args(bundle)).returncode == 0
    before = snapshot(root)
    again = flash(root, *entrance_args(bundle))
    assert again.returncode == 0, again.stderr
    assert snapshot(root) == before
    assert not [line for line in again.stdout.splitlines() if line.startswith("+ ")]


def test_a_different_config_needs_force(bundle: Path, root: Path, tmp_path: Path) -> None:
    assert flash(root, *entrance_args(bundle)).returncode == 0
    before = snapshot(root)
    moved = [a if a != "10.0.0.2" else "10.0.0.3" for a in entrance_args(bundle)]

    refused = flash(root, *moved)
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1
    assert "store.yaml exists and differs" in refused.stderr
    assert "--force" in refused.stderr
    assert snapshot(root) == before

    forced = flash(root, *moved, "--force")
    assert forced.returncode == 0, forced.stderr
    assert load_config(root / ETC / "store.yaml").mqtt.host == "10.0.0.3"


def test_reflashing_as_another_camera_drops_the_old_agent(bundle: Path, root: Path) -> None:
    """One device, one node: the previous camera's agent must not keep starting at boot."""
    assert flash(root, *entrance_args(bundle)).returncode == 0
    result = flash(root, *entrance_args(bundle, "floor-1", "floor"), "--force")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (root / WANTS).iterdir()) == ["storesense-edge@floor-1.service"]


def test_dry_run_changes_nothing(bundle: Path, root: Path) -> None:
    result = flash(root, *entrance_args(bundle), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not list(root.iterdir())
    steps = [line for line in result.stdout.splitlines() if line.startswith("[dry-run] ")]
    assert any("etc/storesense/store.yaml" in s for s in steps)
    assert any("mqtt-credentials.yaml" in s for s in steps)
    assert any("ln -sfn /etc/systemd/system/storesense-edge@.service" in s for s in steps)
    assert "nothing was changed" in result.stdout


def test_dry_run_of_the_machine_itself_only_prints(bundle: Path) -> None:
    """Without --root the steps are systemctl calls; --dry-run must print, not run, them."""
    if Path("/etc/storesense/store.yaml").exists():
        pytest.skip("this machine is a provisioned node: its own store.yaml would be compared")
    result = flash(None, *hub_args(bundle), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "[dry-run] systemctl daemon-reload" in result.stdout
    assert "[dry-run] systemctl enable" in result.stdout
    assert "+ " not in result.stdout


@pytest.mark.parametrize("role", ["hub", "entrance"])
def test_only_the_hub_installs_the_hub_libraries(role: str, bundle: Path, root: Path) -> None:
    """Cameras get the core package; the hub `.[hub]` (web app, report, ALS, crypto)."""
    args = hub_args(bundle) if role == "hub" else entrance_args(bundle)
    result = flash(root, *args, "--source", str(REPO), "--dry-run")
    assert result.returncode == 0, result.stderr
    pip = [line for line in result.stdout.splitlines() if "-m pip install" in line]
    assert len(pip) == 1, result.stdout
    assert pip[0].rstrip().endswith("src\\[hub\\]") == (role == "hub"), pip[0]


# -- the units themselves -----------------------------------------------------------------------


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    names = [
        "storesense-hub.service",
        "storesense-edge@.service",
        "storesense-report.service",
        "storesense-report.timer",
        "storesense-suggest.service",
        "storesense-suggest.timer",
        "storesense-web.service",
    ]
    # As shipped, the only complaint allowed is the venv binary this machine does not have.
    as_shipped = subprocess.run(
        [analyze, "verify", *(str(UNITS / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    other = [
        line
        for line in (as_shipped.stdout + as_shipped.stderr).splitlines()
        if line.strip() and "/opt/storesense/venv/bin/storesense is not executable" not in line
    ]
    assert not other, "\n".join(other)

    # Everything else, with ExecStart pointed at a binary that exists and a real instance name.
    for n in names:
        text = (UNITS / n).read_text().replace("/opt/storesense/venv/bin/storesense", "/bin/true")
        (tmp_path / n).write_text(text)
    shutil.copy(tmp_path / "storesense-edge@.service", tmp_path / "storesense-edge@door-1.service")
    units = [tmp_path / n for n in names if n != "storesense-edge@.service"]
    units.append(tmp_path / "storesense-edge@door-1.service")
    result = subprocess.run(
        [analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (
            "storesense-hub.service",
            [
                "Type=notify",
                "NotifyAccess=main",
                "WatchdogSec=30",
                "Restart=on-failure",
                "User=storesense",
                "CapabilityBoundingSet=\n",
                "ProtectSystem=strict",
                "ConfigurationDirectory=storesense",
                "Environment=STORESENSE_HOME=%S/storesense\n",
            ],
        ),
        (
            "storesense-edge@.service",
            [
                "Type=notify",
                "NotifyAccess=main",
                "WatchdogSec=30",
                "Restart=always",
                "SupplementaryGroups=video",
                "--camera %i",
                "StateDirectory=storesense-edge/%i",
            ],
        ),
        ("storesense-report.timer", ["OnCalendar=*-*-* 02:30:00", "Persistent=true"]),
        ("storesense-report.service", ["report --date yesterday", "Type=oneshot"]),
    ],
)
def test_unit_contract(unit: str, expected: list[str]) -> None:
    """What the daemons and docs rely on; systemd-analyze cannot know these are wanted."""
    text = (UNITS / unit).read_text()
    for needle in expected:
        assert needle in text, f"{unit} lacks {needle!r}"
