"""scripts/flash_device.sh, run for real into a throwaway root tree.

An installer flashes devices on a ladder with a laptop: every refusal must be one clear line
before anything is touched, a re-run must change nothing, and the tree it leaves must be what
systemd will boot (wants-symlinks pointing at the unit files, the camera id in the instance
name, secrets not world-readable). The hub's broker config is the real ``storesense
broker-config`` output, and a real Mosquitto is started on it. The venv install is skipped
(``--skip-install``) everywhere but in ``test_flash_install.py``: it needs PyPI and minutes.
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
from cryptography import x509

from storesense.config import MqttConfig, load_config
from storesense.face_seal import new_key, write_key_file
from storesense.mqtt_client import MqttConnectError, connect, make_client
from storesense_tools.broker_config import verify_mosquitto_hash
from storesense_tools.embedded_broker import free_port
from tests.mosquitto_proc import MosquittoProcess, require_mosquitto

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "flash_device.sh"
EXAMPLE = REPO / "config" / "store.example.yaml"
UNITS = REPO / "systemd"
ETC = Path("etc/storesense")
SYSTEMD = Path("etc/systemd/system")
WANTS = SYSTEMD / "multi-user.target.wants"
BROKER = ETC / "mosquitto"  # the hub's `storesense broker-config` folder
DROPIN = SYSTEMD / "mosquitto.service.d" / "storesense.conf"
HUB_ADDRESSES = ["hub.store.lan", "10.0.0.2"]


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


def hub_args() -> list[str]:
    """The hub: its MQTT account and CA come from the broker config it generates itself."""
    args = ["--role", "hub", "--store-config", str(EXAMPLE)]
    for addr in HUB_ADDRESSES:
        args += ["--hub-address", addr]
    return args


# -- refusals: exit 2, one line on stderr, nothing written ------------------------------------


def _refusal_cases(bundle: Path, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    creds = bundle / "credentials"
    cfg = ["--store-config", str(EXAMPLE)]
    cam = ["--hub-address", "10.0.0.2", *cfg]
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("store_id: s1\nvisits:\n  cooldown: 5\n")
    plain_creds = tmp_path / "plain.yaml"
    plain_creds.write_text("username: cam-door-1\npassword: pw\ntls_ca: ca.crt\n")
    other_key = tmp_path / "floor-1.key"
    write_key_file(other_key, new_key("floor-1"))
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
            ["--role", "hub", "--hub-address", "10.0.0.2", "--store-config", str(bad_cfg)],
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
        "hub without an address": (
            ["--role", "hub", *cfg],
            "--hub-address HOST is required for the hub when it generates its broker config",
        ),
        "hub address the certificate cannot hold": (
            ["--role", "hub", "--hub-address", "hub..lan", *cfg],
            "storesense broker-config failed: 'hub..lan' is not a host name",
        ),
        "credentials for a hub that makes its own": (
            [
                "--role",
                "hub",
                "--hub-address",
                "10.0.0.2",
                *cfg,
                "--mqtt-credentials",
                str(creds / "hub.yaml"),
            ],
            "--mqtt-credentials/--ca-cert are not for the hub",
        ),
        "two hub addresses for a camera": (
            ["--role", "entrance", "--camera", "door-1", "--hub-address", "10.0.0.9", *cam],
            "--hub-address is given once for a camera",
        ),
        "another camera's face seal key": (
            ["--role", "entrance", "--camera", "door-1", *cam, "--face-key", str(other_key)],
            "is camera floor-1's face seal key, not door-1's",
        ),
        "a face seal key that is not one": (
            ["--role", "entrance", "--camera", "door-1", *cam, "--face-key", str(plain_creds)],
            "is not a face seal key file",
        ),
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
    "hub without an address",
    "hub address the certificate cannot hold",
    "credentials for a hub that makes its own",
    "two hub addresses for a camera",
    "another camera's face seal key",
    "a face seal key that is not one",
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


def test_hub_is_provisioned(root: Path) -> None:
    result = flash(root, *hub_args())
    assert result.returncode == 0, result.stderr
    broker = root / BROKER

    # The broker config: what `storesense broker-config` writes, secrets closed, every path in
    # it the node's own (/etc/storesense/mosquitto), never the scratch folder or the --root.
    assert sorted(p.name for p in (broker / "credentials").iterdir()) == [
        "cam-door-1.yaml",  # one account per camera of the store YAML…
        "cam-floor-1.yaml",
        "hub.yaml",
        "phone-gateway.yaml",  # …and the web app's
    ]
    for name in ("ca.key", "broker.key", "passwd"):
        assert mode(broker / name) == 0o600, name
    for name in ("mosquitto.conf", "acl", "ca.crt", "broker.crt"):
        assert mode(broker / name) == 0o644, name
    assert mode(broker / "credentials") == mode(broker / "data") == 0o700
    assert all(mode(f) == 0o600 for f in (broker / "credentials").iterdir())
    conf = (broker / "mosquitto.conf").read_text().splitlines()
    for line in (
        "password_file /etc/storesense/mosquitto/passwd",
        "acl_file /etc/storesense/mosquitto/acl",
        "persistence_location /etc/storesense/mosquitto/data/",
        "cafile /etc/storesense/mosquitto/ca.crt",
        "certfile /etc/storesense/mosquitto/broker.crt",
        "keyfile /etc/storesense/mosquitto/broker.key",
        "listener 8883 0.0.0.0",
        "allow_anonymous false",
    ):
        assert line in conf, line
    for f in broker.rglob("*"):
        if f.is_file():
            text = f.read_bytes()
            assert str(root).encode() not in text and b"/tmp/" not in text, f
    cert = x509.load_pem_x509_certificate((broker / "broker.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = san.get_values_for_type(x509.DNSName) + [
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    ]
    assert set(names) == {"hub.store.lan", "localhost", "10.0.0.2", "127.0.0.1"}

    # The hub's own account, from that folder, in its store.yaml.
    hub_creds = yaml.safe_load((broker / "credentials" / "hub.yaml").read_text())
    store = root / ETC / "store.yaml"
    assert mode(store) == 0o640
    assert mode(root / ETC / "mqtt-credentials.yaml") == 0o600
    assert mode(root / ETC / "ca.crt") == 0o644
    cfg = load_config(store)
    assert cfg.mqtt.host == "127.0.0.1"  # the hub talks to the broker beside it
    assert (cfg.mqtt.username, cfg.mqtt.password, cfg.mqtt.port) == (
        "hub",
        hub_creds["password"],
        8883,
    )
    assert str(cfg.mqtt.tls_ca) == "/etc/storesense/ca.crt"
    assert hub_creds["tls_ca"] == "/etc/storesense/mosquitto/ca.crt"
    assert (root / ETC / "ca.crt").read_bytes() == (broker / "ca.crt").read_bytes()
    assert (root / ETC / "mqtt-credentials.yaml").read_bytes() == (
        broker / "credentials" / "hub.yaml"
    ).read_bytes()
    hashes = dict(line.split(":", 1) for line in (broker / "passwd").read_text().splitlines())
    assert verify_mosquitto_hash(cfg.mqtt.password, hashes["hub"])

    # Debian's mosquitto.service runs that config (a drop-in, so package upgrades keep it), and
    # the mosquitto user may read what it needs at every boot; the CA key stays root's.
    assert (root / DROPIN).read_text().splitlines()[-3:] == [
        "[Service]",
        "ExecStart=",
        "ExecStart=/usr/sbin/mosquitto -c /etc/storesense/mosquitto/mosquitto.conf",
    ]
    assert mode(root / DROPIN) == 0o644
    rules = (root / "etc/tmpfiles.d/storesense-mosquitto.conf").read_text().splitlines()
    for rule in (
        "z /etc/storesense/mosquitto/passwd 0600 mosquitto mosquitto -",
        "z /etc/storesense/mosquitto/broker.key 0600 mosquitto mosquitto -",
        "d /etc/storesense/mosquitto/data 0700 mosquitto mosquitto -",
        "z /etc/storesense/mosquitto/ca.key 0600 root root -",
    ):
        assert rule in rules, rule
    assert "skipped under --root: apt-get install -y mosquitto" in result.stdout

    for unit in (
        "storesense-hub.service",
        "storesense-web.service",
        "storesense-report.service",
        "storesense-report.timer",
        "storesense-suggest.service",
        "storesense-suggest.timer",
        "storesense-retention.service",
        "storesense-retention.timer",
    ):
        assert (root / SYSTEMD / unit).read_bytes() == (UNITS / unit).read_bytes()
    link = root / WANTS / "storesense-hub.service"
    assert os.readlink(link) == "/etc/systemd/system/storesense-hub.service"
    assert sorted(p.name for p in (root / WANTS).iterdir()) == [
        "storesense-hub.service",
        "storesense-web.service",
    ]
    timers = root / SYSTEMD / "timers.target.wants"
    for timer in (
        "storesense-report.timer",
        "storesense-suggest.timer",
        "storesense-retention.timer",
    ):
        assert os.readlink(timers / timer) == f"/etc/systemd/system/{timer}"
    assert not list(root.glob("etc/systemd/system/*edge*"))

    assert "u storesense" in (root / "etc/sysusers.d/storesense.conf").read_text()
    assert (
        "z /etc/storesense/store.yaml 0640 root storesense"
        in (root / "etc/tmpfiles.d/storesense.conf").read_text()
    )
    # the web process: its own user, its own config without any MQTT password
    assert "u storesense-web" in (root / "etc/sysusers.d/storesense.conf").read_text()
    assert (
        "z /etc/storesense/web.yaml 0640 root storesense-web"
        in (root / "etc/tmpfiles.d/storesense.conf").read_text()
    )
    store = yaml.safe_load((root / "etc/storesense/store.yaml").read_text())
    web = yaml.safe_load((root / "etc/storesense/web.yaml").read_text())
    assert store["mqtt"]["password"] and "password" not in web["mqtt"]
    assert "username" not in web["mqtt"] and web["store_id"] == store["store_id"]
    assert mode(root / "etc/storesense/web.yaml") == 0o640


def _runnable_broker(root: Path, tmp_path: Path) -> MosquittoProcess:
    """The flashed broker config as a Mosquitto process here: its /etc paths pointed into the
    tree and its listener moved to a free loopback port; nothing else changed."""
    port = free_port()
    text = (root / BROKER / "mosquitto.conf").read_text()
    text = text.replace("/etc/storesense/mosquitto", str(root / BROKER))
    assert "listener 8883 0.0.0.0\n" in text
    text = text.replace("listener 8883 0.0.0.0\n", f"listener {port} 127.0.0.1\n")
    conf = tmp_path / "flashed-mosquitto.conf"
    conf.write_text(text)
    return MosquittoProcess(conf, port)


def _node_mqtt(root: Path, port: int) -> MqttConfig:
    """The MQTT settings a flashed node's store.yaml gives it, with its CA path inside the tree
    and the test broker's port (a camera's hub address becomes loopback)."""
    mqtt = load_config(root / ETC / "store.yaml").mqtt
    assert mqtt.tls_ca is not None
    tls_ca = root / str(mqtt.tls_ca).lstrip("/")
    return mqtt.model_copy(update={"host": "127.0.0.1", "port": port, "tls_ca": tls_ca})


def test_the_flashed_broker_serves_the_hub_and_a_camera_flashed_from_its_bundle(
    bundle: Path, tmp_path: Path
) -> None:
    """A store from nothing: flash the hub, flash a camera with what the hub's folder hands the
    installer, start Mosquitto on the hub's generated config: both connect over TLS with the
    accounts their store.yaml holds; a wrong password and a client without TLS are refused."""
    require_mosquitto()
    hub_root, cam_root = tmp_path / "hub-root", tmp_path / "cam-root"
    hub_root.mkdir()
    cam_root.mkdir()
    assert flash(hub_root, *hub_args()).returncode == 0
    creds = hub_root / BROKER / "credentials"
    cam_args = [
        *entrance_args(bundle)[:-4],
        "--mqtt-credentials",
        str(creds / "cam-door-1.yaml"),
        "--ca-cert",
        str(hub_root / BROKER / "ca.crt"),
    ]
    result = flash(cam_root, *cam_args)
    assert result.returncode == 0, result.stderr

    broker = _runnable_broker(hub_root, tmp_path).start()
    try:
        for node_root, account in ((hub_root, "hub"), (cam_root, "cam-door-1")):
            cfg = _node_mqtt(node_root, broker.port)
            assert cfg.username == account
            client = make_client(account, cfg, persistent=False)
            connect(client, cfg)  # raises MqttConnectError on refusal
            client.disconnect()
            client.loop_stop()
        wrong = _node_mqtt(hub_root, broker.port).model_copy(update={"password": "guess"})
        with pytest.raises(MqttConnectError, match="refused"):
            connect(make_client("hub", wrong, persistent=False), wrong)
        plain = _node_mqtt(hub_root, broker.port).model_copy(update={"tls_ca": None})
        with pytest.raises(MqttConnectError):
            connect(make_client("hub", plain, persistent=False), plain, timeout_s=3)
    finally:
        broker.stop()


def test_hub_rerun_is_idempotent_and_keeps_the_broker_config(root: Path) -> None:
    """A re-run must not rotate the CA or the passwords: every camera would be locked out."""
    assert flash(root, *hub_args()).returncode == 0
    before = snapshot(root)
    for args in (hub_args(), ["--role", "hub", "--store-config", str(EXAMPLE)]):
        again = flash(root, *args)
        assert again.returncode == 0, again.stderr
        assert snapshot(root) == before
        assert not [line for line in again.stdout.splitlines() if line.startswith("+ ")]
        assert "unchanged: the broker config in" in again.stdout
        assert "generating the broker config" not in again.stdout


def test_upgraded_hub_gets_a_web_certificate_from_its_existing_store_ca(root: Path) -> None:
    """A hub provisioned before the phones' HTTPS has a broker config without web.crt: the
    upgrade issues it from the CA already there (phones and cameras keep trusting that CA),
    names every address, replaces no CA, key or password, and a re-run changes nothing."""
    from cryptography import x509

    from storesense import tls

    assert flash(root, *hub_args()).returncode == 0
    broker = root / BROKER
    for name in ("web.crt", "web.key"):  # what the older release's broker-config left
        (broker / name).unlink()
    kept = {f: (broker / f).read_bytes() for f in ("ca.crt", "ca.key", "broker.crt", "passwd")}
    store_yaml = (root / ETC / "store.yaml").read_bytes()

    up = flash(root, *hub_args())
    assert up.returncode == 0, up.stderr
    assert "has no web certificate" in up.stdout and "unchanged: the broker config" in up.stdout
    assert {f: (broker / f).read_bytes() for f in kept} == kept  # the same CA, no new passwords
    assert (root / ETC / "store.yaml").read_bytes() == store_yaml
    web = x509.load_pem_x509_certificate((broker / "web.crt").read_bytes())
    web.verify_directly_issued_by(x509.load_pem_x509_certificate(kept["ca.crt"]))
    assert set(HUB_ADDRESSES) <= set(tls.cert_hosts(broker / "web.crt"))
    assert mode(broker / "web.key") == 0o600 and mode(broker / "web.crt") == 0o644
    assert "no web certificate" not in flash(root, *hub_args(), "--dry-run").stdout

    before = snapshot(root)
    again = flash(root, *hub_args())
    assert again.returncode == 0 and snapshot(root) == before
    assert not [line for line in again.stdout.splitlines() if line.startswith("+ ")]


def test_hub_force_regenerates_the_broker_config_but_keeps_its_data(root: Path) -> None:
    assert flash(root, *hub_args()).returncode == 0
    broker = root / BROKER
    old_key = (broker / "ca.key").read_bytes()
    old_password = load_config(root / ETC / "store.yaml").mqtt.password
    (broker / "data" / "mosquitto.db").write_bytes(b"retained alerts, sessions")
    stale = broker / "credentials" / "cam-door-9.yaml"  # a camera no longer in the store YAML
    stale.write_text("username: cam-door-9\npassword: x\n")

    forced = flash(root, *hub_args(), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (broker / "ca.key").read_bytes() != old_key  # a new CA…
    cfg = load_config(root / ETC / "store.yaml")
    assert cfg.mqtt.password != old_password  # …and new passwords, the hub's in its store.yaml
    hub_creds = yaml.safe_load((broker / "credentials" / "hub.yaml").read_text())
    assert cfg.mqtt.password == hub_creds["password"]
    assert (root / ETC / "ca.crt").read_bytes() == (broker / "ca.crt").read_bytes()
    assert (broker / "data" / "mosquitto.db").read_bytes() == b"retained alerts, sessions"
    assert not stale.exists()
    assert "/etc/storesense/mosquitto/passwd" in (broker / "mosquitto.conf").read_text()
    for name in ("ca.key", "broker.key", "passwd", "credentials/hub.yaml"):
        assert mode(broker / name) == 0o600, name
    assert mode(broker / "credentials") == 0o700

    before = snapshot(root)
    again = flash(root, *hub_args())
    assert again.returncode == 0, again.stderr
    assert snapshot(root) == before


def test_hub_takes_only_its_own_bundle_credentials(bundle: Path, root: Path) -> None:
    """The old two-step bring-up passed the bundle's hub.yaml and ca.crt by hand: still fine.
    Credentials from anywhere else would not match the broker's passwd: refused."""
    assert flash(root, *hub_args()).returncode == 0
    before = snapshot(root)
    own = [
        "--mqtt-credentials",
        str(root / BROKER / "credentials" / "hub.yaml"),
        "--ca-cert",
        str(root / BROKER / "ca.crt"),
    ]
    same = flash(root, *hub_args(), *own)
    assert same.returncode == 0, same.stderr
    assert snapshot(root) == before

    for args, expected in (
        (["--mqtt-credentials", str(bundle / "credentials" / "hub.yaml")], "--mqtt-credentials"),
        (["--ca-cert", str(bundle / "ca.crt")], "--ca-cert"),
    ):
        refused = flash(root, *hub_args(), *args)
        assert refused.returncode == 2
        assert len(refused.stderr.splitlines()) == 1, refused.stderr
        assert f"leave {expected} out on the hub" in refused.stderr
        assert snapshot(root) == before


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_hub_refuses_a_broker_folder_it_cannot_use(
    dry_run: bool, root: Path, tmp_path: Path
) -> None:
    """An existing folder is kept, never half-trusted: an incomplete one, or one generated for
    another path (its mosquitto.conf would name files that are not there on the node)."""
    broker = root / BROKER
    broker.mkdir(parents=True)
    (broker / "mosquitto.conf").write_text("listener 8883\n")
    before = snapshot(root)
    extra = ["--dry-run"] if dry_run else []
    result = flash(root, *hub_args(), *extra)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "is not a complete broker config (no passwd): pass --force" in result.stderr
    assert snapshot(root) == before

    shutil.rmtree(broker)
    cli = [sys.executable, "-m", "storesense_tools.cli", "--home", str(tmp_path / "home")]
    made_here = subprocess.run(
        [*cli, "--config", str(EXAMPLE), "broker-config", "--out", str(broker)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made_here.returncode == 0, made_here.stderr
    before = snapshot(root)
    result = flash(root, *hub_args(), *extra)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "does not use /etc/storesense/mosquitto/passwd" in result.stderr
    assert snapshot(root) == before


def test_hub_refuses_an_address_its_kept_certificate_does_not_name(root: Path) -> None:
    """A camera sent to a new hub address would fail TLS on it: say so now, on the hub."""
    assert flash(root, *hub_args()).returncode == 0
    before = snapshot(root)
    case_and_ip = flash(root, *hub_args(), "--hub-address", "HUB.store.lan")
    assert case_and_ip.returncode == 0, case_and_ip.stderr  # DNS names are case-insensitive
    refused = flash(root, *hub_args(), "--hub-address", "10.9.9.9", "--hub-address", "new.lan")
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "does not name 10.9.9.9, new.lan: pass --force" in refused.stderr
    assert snapshot(root) == before


def test_hub_dry_run_changes_nothing(root: Path) -> None:
    result = flash(root, *hub_args(), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not list(root.iterdir())
    steps = [line for line in result.stdout.splitlines() if line.startswith("[dry-run] ")]
    assert any(f"{root}/etc/storesense/mosquitto.flash-tmp" in s for s in steps)
    assert any(f"{root}/etc/systemd/system/mosquitto.service.d/storesense.conf" in s for s in steps)
    assert any("storesense-mosquitto.conf" in s for s in steps)
    assert any("etc/storesense/store.yaml" in s for s in steps)
    assert "skipped under --root: apt-get install -y mosquitto" in result.stdout
    assert "nothing was changed" in result.stdout


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


def test_door_camera_gets_its_face_seal_key(bundle: Path, root: Path, tmp_path: Path) -> None:
    issued = tmp_path / "door-1.key"
    write_key_file(issued, new_key("door-1"))
    result = flash(root, *entrance_args(bundle), "--face-key", str(issued))
    assert result.returncode == 0, result.stderr
    on_node = root / ETC / "face-seal.key"
    assert on_node.read_bytes() == issued.read_bytes()
    assert mode(on_node) == 0o640  # group storesense (tmpfiles.d): the agent reads it
    tmpfiles = (root / "etc/tmpfiles.d/storesense.conf").read_text()
    assert "z /etc/storesense/face-seal.key 0640 root storesense -" in tmpfiles
    unit = (root / SYSTEMD / "storesense-edge@.service").read_text()
    assert "STORESENSE_FACE_KEY=/etc/storesense/face-seal.key" in unit


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


def test_dry_run_of_the_machine_itself_only_prints() -> None:
    """Without --root the steps are systemctl calls; --dry-run must print, not run, them."""
    if Path("/etc/storesense/store.yaml").exists() or Path("/etc/storesense/mosquitto").exists():
        pytest.skip("this machine is a provisioned node: its own store.yaml would be compared")
    result = flash(None, *hub_args(), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "[dry-run] systemctl daemon-reload" in result.stdout
    assert "[dry-run] systemctl enable" in result.stdout
    assert "+ " not in result.stdout
    # The hub's broker: the package, its config's ownership, then a restart on the new config
    # before the hub units (they connect to it).
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "mosquitto"], capture_output=True, text=True
    )
    if "ok installed" in installed.stdout:
        assert "unchanged: the mosquitto package is installed" in result.stdout
    else:
        assert "apt-get install -y mosquitto" in result.stdout
    steps = [line for line in result.stdout.splitlines() if line.startswith("[dry-run] ")]
    assert "[dry-run] systemd-tmpfiles --create /etc/tmpfiles.d/storesense-mosquitto.conf " in steps
    restart = steps.index("[dry-run] systemctl restart mosquitto.service ")
    assert restart < steps.index("[dry-run] systemctl enable storesense-hub.service ")
    assert not Path("/etc/storesense").exists()


@pytest.mark.parametrize("role", ["hub", "entrance"])
def test_only_the_hub_installs_the_hub_libraries(role: str, bundle: Path, root: Path) -> None:
    """Cameras get the core package; the hub `.[hub]` (web app, report, ALS, crypto)."""
    args = hub_args() if role == "hub" else entrance_args(bundle)
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
        "storesense-retention.service",
        "storesense-retention.timer",
        "storesense-web.service",
        "storesense-central.service",
        "storesense-central-web.service",
        "storesense-central-retention.service",
        "storesense-central-retention.timer",
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
    "unit",
    [
        "storesense-hub.service",
        "storesense-web.service",
        "storesense-edge@.service",
        "storesense-report.service",
        "storesense-retention.service",
        "storesense-suggest.service",
        "storesense-central.service",
        "storesense-central-web.service",
        "storesense-central-retention.service",
    ],
)
def test_units_rate_ok_or_better_in_systemd_analyze_security(unit: str) -> None:
    """Issue 15 part 2: each service's exposure is "OK" or better (docs/deployment.md lists
    the scores); a dropped hardening line shows up here as MEDIUM or worse."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", str(UNITS / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    verdict = result.stdout.strip().splitlines()[-1]
    assert "Overall exposure level" in verdict, result.stdout[-500:]
    score, level = verdict.rsplit(":", 1)[1].split()[:2]
    assert level in ("SAFE", "OK"), verdict
    assert float(score) <= 2.5, verdict


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
        (
            "storesense-web.service",
            [
                "User=storesense-web\n",
                "Group=storesense-web\n",
                "StateDirectory=storesense-web\n",
                "Environment=STORESENSE_HOME=%S/storesense-web\n",
                "--config /etc/storesense/web.yaml web run",
                "LoadCredential=mqtt:/etc/storesense/mosquitto/credentials/phone-gateway.yaml",
                "InaccessiblePaths=-/var/lib/storesense\n",
                "CapabilityBoundingSet=\n",
                "ProtectSystem=strict",
                "Type=notify\n",
                "WatchdogSec=30\n",
                "LimitNOFILE=65536\n",
                "--tls-cert /etc/storesense/mosquitto/web.crt",
                "--tls-key ${CREDENTIALS_DIRECTORY}/web.key",
                "LoadCredential=web.key:/etc/storesense/mosquitto/web.key",
            ],
        ),
        ("storesense-report.timer", ["OnCalendar=*-*-* 02:30:00", "Persistent=true"]),
        ("storesense-report.service", ["report --date yesterday", "Type=oneshot"]),
        ("storesense-retention.timer", ["OnCalendar=*-*-* 03:45:00", "Persistent=true"]),
        ("storesense-retention.service", ["retention run", "Type=oneshot", "User=storesense"]),
        (
            "storesense-central.service",
            ["central run --central-config /etc/storesense/central.yaml", "Type=notify",
             "NotifyAccess=main", "WatchdogSec=90", "User=storesense-central"],
        ),
        (
            "storesense-central-web.service",
            ["central web --central-config /etc/storesense/central.yaml",
             "--tls-key ${CREDENTIALS_DIRECTORY}/web.key", "User=storesense-central"],
        ),
        (
            "storesense-central-retention.timer",
            ["OnCalendar=*-*-* 04:30:00 UTC", "Persistent=true"],
        ),
        (
            "storesense-central-retention.service",
            ["central retention --central-config /etc/storesense/central.yaml", "Type=oneshot"],
        ),
    ],
)  # fmt: skip
def test_unit_contract(unit: str, expected: list[str]) -> None:
    """What the daemons and docs rely on; systemd-analyze cannot know these are wanted."""
    text = (UNITS / unit).read_text()
    for needle in expected:
        assert needle in text, f"{unit} lacks {needle!r}"


def test_the_web_unit_holds_nothing_of_the_hubs() -> None:
    """The web process is a stateless gateway: not the hub's user, folder or config file."""
    text = (UNITS / "storesense-web.service").read_text()
    hub_things = [
        "User=storesense\n",
        "Group=storesense\n",
        "StateDirectory=storesense\n",
        "STORESENSE_HOME=%S/storesense\n",
        "/etc/storesense/store.yaml",
        "hub.yaml",
    ]
    for hub_thing in hub_things:
        assert hub_thing not in text, hub_thing
