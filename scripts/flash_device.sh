#!/usr/bin/env bash
# Provision one Storesense node — the hub or one camera's edge device — from a store config.
#
#   flash_device.sh --role entrance|floor|hub --store-config FILE [--camera ID]
#       [--hub-address HOST]... [--mqtt-credentials FILE] [--ca-cert FILE] [--face-key FILE]
#       [--root DIR]
#       [--dry-run] [--force] [--skip-install] [--wheel PATH | --source DIR]
#
# What it does (docs/deployment.md has the whole store bring-up):
#   1. checks everything first and refuses (exit 2, one line on stderr) before changing anything:
#      unknown role, missing --camera/--hub-address for a camera, a camera that is not in the
#      config or has another role, credentials made for another device, missing files, and any
#      existing node file (store.yaml, credentials, CA) that differs unless --force;
#   2. venv in <root>/opt/storesense/venv with the package from --wheel or --source (default:
#      this checkout; --skip-install leaves the venv alone, as the tests do);
#      the hub also gets Debian's mosquitto package (apt; printed, not run, with --root);
#   3. <root>/etc/storesense/store.yaml: the store config with this node's MQTT account, CA and,
#      for cameras, the hub's address as the MQTT host; root:storesense 0640 because it holds the
#      MQTT password. mqtt-credentials.yaml (0600, root) and ca.crt (0644) beside it. A door
#      camera's face seal key (--face-key, from `storesense camera-key issue` on the hub) as
#      face-seal.key, root:storesense 0640: the agent seals its face tracks with it
#      (docs/deployment.md, "Face seal keys"); without it they go out unsealed (warned).
#      The hub's broker: `storesense broker-config` into <root>/etc/storesense/mosquitto (store
#      CA, TLS-only mosquitto.conf, one account per device, ACLs) only if that folder is absent;
#      --force regenerates it (a new CA and new passwords for every device). The hub's own
#      account and CA come from that folder; --hub-address (repeatable on the hub) names the
#      broker certificate must cover: the names and IPs the cameras reach the hub by. A drop-in
#      <root>/etc/systemd/system/mosquitto.service.d/storesense.conf runs Mosquitto on it;
#      On the hub also web.yaml (root:storesense-web 0640): the same config without any MQTT
#      password, for the web process, which has its own account (phone-gateway.yaml);
#   4. the `storesense` system user (sysusers.d) and the file ownership above (tmpfiles.d; on
#      the hub also the `storesense-web` user of the web process, a stateless gateway that may
#      read neither the hub's database nor its credentials, and the broker's files the
#      mosquitto user must read);
#   5. the units into <root>/etc/systemd/system and enabled: without --root by systemctl
#      (daemon-reload, enable --now, restart when something changed; on the hub Mosquitto
#      first); with --root by creating the *.target.wants symlinks, as systemctl would, for an
#      image that boots later. On the hub the nightly report and suggestions timers are enabled
#      with the hub service.
# Re-running with the same arguments changes nothing. --dry-run prints every step, changes nothing.
#
# With --root and an install, the venv is built with this machine's Python: only valid for a
# tree of the same architecture and OS (a cross-architecture image needs --skip-install and the
# install run on the device itself).
set -euo pipefail

PROG=flash_device.sh
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/storesense              # paths as the node sees them (the units hard-code these)
CONF_DIR=/etc/storesense
UNIT_DIR=/etc/systemd/system
BROKER_DIR=$CONF_DIR/mosquitto       # the hub's `storesense broker-config` output
BROKER_DROPIN=$UNIT_DIR/mosquitto.service.d/storesense.conf
MOSQUITTO_BIN=/usr/sbin/mosquitto    # Debian's package
# What a broker-config folder holds; the hub's account is credentials/hub.yaml.
BROKER_FILES=(mosquitto.conf passwd acl ca.crt ca.key broker.crt broker.key credentials/hub.yaml)

die() { echo "$PROG: $*" >&2; exit 2; }
say() { echo "$PROG: $*"; }
changed=0    # something the daemons read changed: restart them

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

role="" store_config="" camera="" credentials="" ca_cert="" face_key="" root=""
dry_run=0 force=0 skip_install=0 wheel="" source_dir=""
hub_addresses=()

need_value() { [[ $# -ge 2 && -n $2 && $2 != --* ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --role) need_value "$@"; role=$2; shift 2 ;;
        --store-config) need_value "$@"; store_config=$2; shift 2 ;;
        --camera) need_value "$@"; camera=$2; shift 2 ;;
        --hub-address) need_value "$@"; hub_addresses+=("$2"); shift 2 ;;
        --mqtt-credentials) need_value "$@"; credentials=$2; shift 2 ;;
        --ca-cert) need_value "$@"; ca_cert=$2; shift 2 ;;
        --face-key) need_value "$@"; face_key=$2; shift 2 ;;
        --root) need_value "$@"; root=$2; shift 2 ;;
        --wheel) need_value "$@"; wheel=$2; shift 2 ;;
        --source) need_value "$@"; source_dir=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        --force) force=1; shift ;;
        --skip-install) skip_install=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# ---- 1. checks: nothing below this block may run before all of them pass --------------------
case $role in
    hub|entrance|floor) ;;
    "") die "--role is required: hub, entrance or floor" ;;
    *) die "--role must be hub, entrance or floor, not '$role'" ;;
esac
[[ -n $store_config ]] || die "--store-config FILE is required"
[[ -f $store_config ]] || die "store config $store_config not found"
if [[ $role == hub ]]; then
    [[ -z $camera ]] || die "--camera is for camera roles (entrance, floor), not the hub"
else
    [[ -n $camera ]] ||
        die "--camera ID is required for the $role role (a camera id from the store config)"
    [[ $camera =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] || die "--camera '$camera' is not a camera id"
    [[ ${#hub_addresses[@]} -gt 0 ]] ||
        die "--hub-address HOST is required for the $role role (the hub runs the MQTT broker)"
    [[ ${#hub_addresses[@]} -eq 1 ]] ||
        die "--hub-address is given once for a camera: the one address it reaches the hub by"
fi
for addr in "${hub_addresses[@]}"; do
    [[ $addr =~ ^[A-Za-z0-9.:-]+$ ]] || die "--hub-address '$addr' is not a host name or IP address"
done
# A camera's MQTT host; the hub keeps the store YAML's (its broker is local).
hub_address=""
[[ $role == hub ]] || hub_address=${hub_addresses[0]}
[[ -z $credentials || -f $credentials ]] || die "MQTT credentials $credentials not found"
[[ -z $ca_cert || -f $ca_cert ]] || die "CA certificate $ca_cert not found"
if [[ -n $face_key ]]; then
    [[ $role == entrance ]] || die "--face-key is for door (entrance) cameras, not the $role role"
    [[ -f $face_key ]] || die "face seal key $face_key not found"
    # the camera's copy from `storesense camera-key issue`, and this camera's
    key_camera=$("${PYTHON:-python3}" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d.get("format") == "storesense-face-seal-key"
print(d["camera_id"])' "$face_key" 2>/dev/null) ||
        die "$face_key is not a face seal key file (storesense camera-key issue --out)"
    [[ $key_camera == "$camera" ]] ||
        die "$face_key is camera $key_camera's face seal key, not $camera's"
fi
[[ -z $wheel || -z $source_dir ]] || die "pass --wheel or --source, not both"
[[ -z $wheel || -f $wheel ]] || die "wheel $wheel not found"
[[ -z $source_dir || -f $source_dir/pyproject.toml ]] ||
    die "--source $source_dir has no pyproject.toml"
if [[ $skip_install == 0 && -z $wheel && -z $source_dir ]]; then
    source_dir=$CHECKOUT
fi
if [[ -n $root ]]; then
    [[ -d $root ]] || die "--root $root is not a directory"
    root=$(cd "$root" && pwd)
    [[ $root != / ]] || root=""
fi
if [[ -z $root && $dry_run == 0 && $EUID -ne 0 ]]; then
    die "provisioning this machine needs root (or pass --root DIR, or --dry-run)"
fi
for unit in storesense-hub.service storesense-edge@.service storesense-report.service \
    storesense-report.timer storesense-suggest.service storesense-suggest.timer \
    storesense-retention.service storesense-retention.timer storesense-web.service; do
    [[ -f $CHECKOUT/systemd/$unit ]] || die "unit $CHECKOUT/systemd/$unit not found"
done

venv=$root$PREFIX/venv
live() { [[ -z $root ]]; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The hub's broker config: kept if the folder exists (re-runs change nothing), generated into
# $stage first when it is absent or with --force, so that store.yaml can be rendered with the
# new hub account and every check still runs before anything on the node changes.
broker_dest=$root$BROKER_DIR
broker_new=0
broker_src=""
if [[ $role == hub ]]; then
    [[ ! -e $broker_dest || -d $broker_dest ]] || die "$broker_dest exists and is not a folder"
    if [[ -e $broker_dest && $force == 0 ]]; then
        for f in "${BROKER_FILES[@]}"; do
            [[ -f $broker_dest/$f ]] || die "$broker_dest is not a complete broker config" \
                "(no $f): pass --force to regenerate it (new CA and passwords for every device)"
        done
        grep -qx "password_file $BROKER_DIR/passwd" "$broker_dest/mosquitto.conf" ||
            die "$broker_dest/mosquitto.conf does not use $BROKER_DIR/passwd (made for another" \
                "folder?): pass --force to regenerate it (new CA and passwords for every device)"
        broker_src=$broker_dest
    else
        broker_new=1
        broker_src=$stage/mosquitto
        [[ ${#hub_addresses[@]} -gt 0 ]] ||
            die "--hub-address HOST is required for the hub when it generates its broker config:" \
                "the name or IP the cameras reach it by (repeat it for each), for the certificate"
    fi
    # The hub's account is the bundle's: a file from elsewhere would not match the broker.
    if [[ -n $credentials || -n $ca_cert ]]; then
        [[ $broker_new == 0 ]] ||
            die "--mqtt-credentials/--ca-cert are not for the hub: its MQTT account and CA come" \
                "from the broker config this run generates in $broker_dest"
        [[ -z $credentials ]] || cmp -s "$credentials" "$broker_src/credentials/hub.yaml" ||
            die "$credentials is not $broker_src/credentials/hub.yaml, the hub's account in its" \
                "broker config: leave --mqtt-credentials out on the hub"
        [[ -z $ca_cert ]] || cmp -s "$ca_cert" "$broker_src/ca.crt" ||
            die "$ca_cert is not $broker_src/ca.crt, the store CA of the hub's broker config:" \
                "leave --ca-cert out on the hub"
    fi
    credentials=$broker_src/credentials/hub.yaml
    ca_cert=$broker_src/ca.crt
fi

# A Python that can run `storesense broker-config` (the package and its hub libraries).
storesense_python() {
    local py
    for py in "$venv/bin/python" "${PYTHON:-}" "$CHECKOUT/.venv/bin/python"; do
        [[ -n $py ]] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import storesense_tools.broker_config' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# A Python that can read YAML: the node's venv, $PYTHON, this checkout's .venv, python3.
yaml_python() {
    local py
    for py in "$venv/bin/python" "${PYTHON:-}" "$CHECKOUT/.venv/bin/python" python3; do
        [[ -n $py ]] || continue
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import yaml' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# Renders this node's store.yaml to stdout; refusals are one line on stderr, exit 2. When the
# storesense package is importable it validates with the real models (input and output).
render_config() {
    "$1" - "$store_config" "$role" "$camera" "$hub_address" "$credentials" \
        "${ca_cert:+$CONF_DIR/ca.crt}" <<'PY'
import sys

import yaml

prog = "flash_device.sh"
src, role, camera, hub_address, creds_path, ca_dest = sys.argv[1:7]


def refuse(msg):
    print(f"{prog}: {msg}", file=sys.stderr)
    sys.exit(2)


try:
    from storesense.config import ConfigError, parse_config
except ImportError:  # a bare python3-yaml: structural checks only
    parse_config = None


def validate(text, where):
    if parse_config is not None:
        try:
            parse_config(text, where)
        except ConfigError as exc:
            refuse("; ".join(str(exc).splitlines()))


with open(src, encoding="utf-8") as fh:
    text = fh.read()
validate(text, src)
try:
    data = yaml.safe_load(text)
except yaml.YAMLError as exc:
    refuse(f"{src} is not valid YAML: {' '.join(str(exc).split())}")
if not isinstance(data, dict):
    refuse(f"{src}: the top level must be a mapping of keys")

if role != "hub":
    cams = data.get("cameras") or []
    mine = [c for c in cams if isinstance(c, dict) and str(c.get("id")) == camera]
    if not mine:
        known = ", ".join(str(c.get("id")) for c in cams if isinstance(c, dict)) or "none"
        refuse(f"camera '{camera}' is not in {src} (known: {known})")
    if mine[0].get("role") != role:
        refuse(f"camera '{camera}' is a {mine[0].get('role')} camera in {src}, not {role}")

mqtt = data.get("mqtt") or {}
if hub_address:
    mqtt["host"] = hub_address
if creds_path:
    with open(creds_path, encoding="utf-8") as fh:
        try:
            creds = yaml.safe_load(fh)
        except yaml.YAMLError:
            creds = None
    if not isinstance(creds, dict) or not creds.get("username") or not creds.get("password"):
        refuse(f"{creds_path} is not an MQTT credentials file (username, password)")
    account = "hub" if role == "hub" else f"cam-{camera}"
    if creds["username"] != account:
        refuse(f"{creds_path} is for MQTT account '{creds['username']}', this node is '{account}'")
    if creds.get("tls_ca") and not ca_dest:
        refuse(f"{creds_path} expects a TLS CA: pass --ca-cert FILE (the store's ca.crt)")
    mqtt["username"] = creds["username"]
    mqtt["password"] = creds["password"]
    if creds.get("port"):
        mqtt["port"] = int(creds["port"])
if ca_dest:
    mqtt["tls_ca"] = ca_dest
data["mqtt"] = mqtt

node = "hub" if role == "hub" else f"{role} camera {camera}"
out = (
    f"# Written by scripts/flash_device.sh for the {node}. Holds this node's MQTT password.\n"
    "# Change the store's source config and re-run the script (--force) instead of editing here.\n"
    + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
)
validate(out, f"{src} (as rendered for the {node})")
sys.stdout.write(out)
PY
}

# The web process's config on the hub: the rendered store.yaml without the hub's MQTT account
# (username, password). The web's own account comes from phone-gateway.yaml (LoadCredential=).
render_web_config() { # python rendered-store.yaml
    "$1" - "$2" <<'PY'
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as fh:
    data = yaml.safe_load(fh)
mqtt = data.get("mqtt") or {}
for key in ("username", "password"):
    mqtt.pop(key, None)
data["mqtt"] = mqtt
sys.stdout.write(
    "# Written by scripts/flash_device.sh for the web process (storesense-web.service): no\n"
    "# MQTT password here; its account is credentials/phone-gateway.yaml. Re-run the script.\n"
    + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
)
PY
}

# `storesense broker-config` into $stage/mosquitto, its paths rewritten to the node's: the
# generated mosquitto.conf and credentials name their files by absolute path.
generate_broker() { # python
    local out=$stage/mosquitto hosts=() addr err
    for addr in "${hub_addresses[@]}"; do hosts+=(--host "$addr"); done
    say "generating the broker config for $broker_dest: storesense broker-config" \
        "--out $BROKER_DIR ${hosts[*]} (store CA, broker certificate, an account per device)"
    if ! err=$("$1" -m storesense_tools.cli --home "$stage/home" --config "$store_config" \
        broker-config --out "$out" "${hosts[@]}" 2>&1 >/dev/null); then
        die "storesense broker-config failed: $(tail -n 1 <<<"$err" | sed 's/^storesense: //')"
    fi
    local f
    for f in "$out/mosquitto.conf" "$out"/credentials/*.yaml; do
        sed -i "s|$out|$BROKER_DIR|g" "$f"
    done
    if grep -rqF "$stage" "$out"; then
        die "the generated broker config still names $stage: not rewritten to $BROKER_DIR"
    fi
}

# A kept broker config must still fit: its certificate has to name every --hub-address.
check_broker_hosts() { # python
    [[ ${#hub_addresses[@]} -gt 0 ]] || return 0
    local missing
    missing=$("$1" - "$broker_dest/broker.crt" "${hub_addresses[@]}" <<'PY'
import ipaddress
import sys

from cryptography import x509

cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
ips = set(san.get_values_for_type(x509.IPAddress))
for host in sys.argv[2:]:
    try:
        ok = ipaddress.ip_address(host) in ips
    except ValueError:
        ok = host.lower() in names
    if not ok:
        print(host)
PY
    ) || die "could not read the broker certificate $broker_dest/broker.crt"
    [[ -z $missing ]] ||
        die "the broker certificate in $broker_dest does not name ${missing//$'\n'/, }:" \
            "pass --force to regenerate the broker config (new CA and passwords for every device)"
}

# A kept broker config from a release before the phones' HTTPS has no web.crt/web.key (the web
# unit's --tls-cert/--tls-key): issue them from the store CA already there, for the names the
# broker certificate has and every --hub-address. The CA, the broker certificate and every
# password stay as they are (replacing the CA would lock out every camera and phone).
web_cert_new=0
issue_missing_web_cert() { # python
    [[ ! -f $broker_dest/web.crt || ! -f $broker_dest/web.key ]] || return 0
    say "the broker config in $broker_dest has no web certificate (made by an older release):" \
        "issuing $BROKER_DIR/web.crt from its store CA, which stays as it is"
    mkdir -p "$stage/webcert"
    "$1" - "$broker_dest" "$stage/webcert" "${hub_addresses[@]}" <<'PY' ||
import sys
from pathlib import Path

from storesense import tls

ca_dir, out, *extra = sys.argv[1:]
ca = tls.load_ca(Path(ca_dir))
hosts = list(dict.fromkeys([*extra, *tls.cert_hosts(Path(ca_dir) / "broker.crt")]))
tls.write_server_cert(ca, hosts, Path(out) / tls.WEB_CERT, Path(out) / tls.WEB_KEY)
PY
        die "could not issue the web certificate from the store CA in $broker_dest"
    web_cert_new=1
}

# Node files: an existing one that differs is only replaced with --force (idempotent re-runs).
conflict_check() { # staged target
    local dest=$root$2
    if [[ -e $dest ]] && ! cmp -s "$1" "$dest" && [[ $force == 0 ]]; then
        die "$dest exists and differs from what this run would write: pass --force to replace it"
    fi
}

# Everything that needs a Python (PyYAML; on a hub that generates its broker config, the
# storesense package): possible before any change when one is at hand, else right after the
# venv is installed. Refusals from here on still come before the node's files change.
node_files=()
prepared=0
can_prepare() {
    yaml_python >/dev/null || return 1
    [[ $role != hub ]] || storesense_python >/dev/null
}
prepare_node_files() {
    local py
    py=$(yaml_python)
    if [[ $role == hub && $broker_new == 1 ]]; then
        generate_broker "$(storesense_python)"
    elif [[ $role == hub ]]; then
        check_broker_hosts "$(storesense_python)"
        issue_missing_web_cert "$(storesense_python)"
    fi
    render_config "$py" > "$stage/store.yaml"
    node_files=("store.yaml:0640")
    if [[ $role == hub ]]; then
        render_web_config "$py" "$stage/store.yaml" > "$stage/web.yaml"
        node_files+=("web.yaml:0640")
    fi
    if [[ -n $credentials ]]; then
        cp "$credentials" "$stage/mqtt-credentials.yaml"
        node_files+=("mqtt-credentials.yaml:0600")
    fi
    if [[ -n $ca_cert ]]; then
        cp "$ca_cert" "$stage/ca.crt"
        node_files+=("ca.crt:0644")
    fi
    if [[ -n $face_key ]]; then
        cp "$face_key" "$stage/face-seal.key"
        node_files+=("face-seal.key:0640")
    fi
    local entry
    for entry in "${node_files[@]}"; do
        conflict_check "$stage/${entry%%:*}" "$CONF_DIR/${entry%%:*}"
    done
    prepared=1
}
if can_prepare; then
    prepare_node_files
elif [[ $dry_run == 1 || $skip_install == 1 ]]; then
    if yaml_python >/dev/null; then
        die "no Python with the storesense package for the hub's broker config:" \
            "set PYTHON to one (a checkout's .venv/bin/python after scripts/bootstrap.sh)"
    fi
    die "no Python with PyYAML to read $store_config: install python3-yaml or set PYTHON"
fi

# ---- 2.-5. the changes ------------------------------------------------------------------------
run() { # prints the command; runs it unless --dry-run
    if [[ $dry_run == 1 ]]; then
        echo "[dry-run] $(printf '%q ' "$@")"
    else
        echo "+ $(printf '%q ' "$@")"
        "$@"
    fi
}
put_changed=0 # whether the last put_file wrote
put_file() { # src target-path mode: write if missing or different, atomically
    local src=$1 dest=$root$2 mode=$3
    put_changed=0
    if [[ -e $dest ]] && cmp -s "$src" "$dest"; then
        if [[ $(stat -c %a "$dest") != "${mode#0}" ]]; then
            run chmod "$mode" "$dest"
        fi
        say "unchanged: $dest"
        return 0
    fi
    run install -D -m "$mode" "$src" "$dest.flash-tmp"
    run mv -f "$dest.flash-tmp" "$dest"
    changed=1
    put_changed=1
}
put_text() { # target-path mode text
    printf '%s\n' "$3" > "$stage/text"
    put_file "$stage/text" "$1" "$2"
}

# What is installed: our packages' files by content, the dependencies by version. pip always
# reinstalls a source tree, so "pip ran" is not "something changed".
installed_digest() {
    [[ -x $venv/bin/python ]] || return 0
    "$venv/bin/python" -I - <<'PY' 2>/dev/null || true
import hashlib
import importlib.metadata as md
import pathlib

h = hashlib.sha256()
for dist in sorted(md.distributions(), key=lambda d: d.metadata["Name"].lower()):
    h.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
try:
    files = md.distribution("storesense").files or []
except md.PackageNotFoundError:
    files = []
for f in sorted(files, key=str):
    path = pathlib.Path(f.locate())
    if path.suffix == ".py" and path.is_file():
        h.update(str(f).encode() + path.read_bytes())
print(h.hexdigest())
PY
}

# 2. venv and package
if [[ $skip_install == 1 ]]; then
    say "--skip-install: leaving $venv as it is"
else
    if [[ ! -x $venv/bin/python ]]; then
        base_python=${PYTHON:-python3.11}
        command -v "$base_python" >/dev/null 2>&1 || base_python=python3
        "$base_python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null ||
            die "the venv needs Python 3.11 and $base_python is not: set PYTHON=/path/to/python3.11"
        run mkdir -p "$(dirname "$venv")"
        run "$base_python" -m venv "$venv"
    fi
    target=$wheel
    if [[ -z $target ]]; then
        # Build from a copy: pip builds setuptools projects in-tree (build/, *.egg-info), and
        # the checkout is not ours to litter (nor, on a read-only mount, writable).
        target=$stage/src
        run mkdir -p "$target"
        run tar -C "$source_dir" --exclude=./.git --exclude=./.venv --exclude=./build \
            --exclude='*.egg-info' --exclude=__pycache__ -cf "$stage/src.tar" .
        run tar -C "$target" -xf "$stage/src.tar"
    fi
    # Camera devices get the core package only; the hub also gets its own libraries (web app,
    # report drawing, suggestions, crypto): see [project.optional-dependencies] hub.
    spec=$target
    [[ $role == hub ]] && spec="${target}[hub]"
    before=$(installed_digest)
    run "$venv/bin/python" -m pip install --quiet --upgrade "$spec"
    if [[ $dry_run == 0 && $(installed_digest) != "$before" ]]; then
        changed=1 # new code: the daemons restart
        say "installed a new package version or code into $venv"
    else
        say "unchanged: the package in $venv"
    fi
    if ! live && [[ $dry_run == 0 ]]; then
        # pip wrote <root>/opt/... into the scripts' shebangs; on the node it is /opt/...
        for f in "$venv"/bin/*; do
            if [[ -f $f && ! -L $f ]] && head -c 2 "$f" | grep -q '^#!'; then
                sed -i "1s|^#!$venv/|#!$PREFIX/venv/|" "$f"
            fi
        done
        sed -i "s|$venv|$PREFIX/venv|g" "$venv"/bin/activate*
        say "rewrote the venv's script paths from $venv to $PREFIX/venv"
    fi
    if [[ $prepared == 0 ]]; then # only now is there a Python for it
        can_prepare || die "no Python with PyYAML and the storesense package even after the" \
            "install; is $venv complete?"
        prepare_node_files
    fi
fi

# 2b. the hub's broker: Debian's Mosquitto (the drop-in below points it at our config)
broker_changed=0 # Mosquitto's config changed: restart it
if [[ $role == hub ]]; then
    if ! live; then
        say "skipped under --root: apt-get install -y mosquitto (the image needs the mosquitto" \
            "package: $MOSQUITTO_BIN and its mosquitto.service)"
    elif dpkg-query -W -f='${Status}' mosquitto 2>/dev/null | grep -q 'ok installed'; then
        say "unchanged: the mosquitto package is installed"
    else
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto
        broker_changed=1
    fi
fi

# 3. node files
for entry in "${node_files[@]}"; do
    put_file "$stage/${entry%%:*}" "$CONF_DIR/${entry%%:*}" "${entry##*:}"
done
if [[ $role == hub && $broker_new == 1 ]]; then
    if [[ ! -e $broker_dest ]]; then
        # Appears whole or not at all: a half-copied folder would be kept by the next run.
        [[ ! -e $broker_dest.flash-tmp ]] || run rm -rf "$broker_dest.flash-tmp"
        run mkdir -p "$(dirname "$broker_dest")"
        run cp -a "$broker_src" "$broker_dest.flash-tmp"
        run mv -T "$broker_dest.flash-tmp" "$broker_dest"
    else
        # --force over an existing folder: the generated files are replaced one by one and
        # credentials of devices no longer in the store YAML removed; anything else there
        # (the broker's persistence in data/) stays, as `broker-config --force` does.
        while IFS= read -r -d '' f; do
            rel=${f#"$broker_src"/}
            put_file "$f" "$BROKER_DIR/$rel" "0$(stat -c %a "$f")"
        done < <(find "$broker_src" -type f -print0 | sort -z)
        for f in "$broker_dest"/credentials/*.yaml; do
            [[ -e $f && ! -e $broker_src/credentials/$(basename "$f") ]] || continue
            run rm -f "$f"
        done
        for d in credentials data; do
            [[ $(stat -c %a "$broker_dest/$d" 2>/dev/null) == 700 ]] ||
                run install -d -m 0700 "$broker_dest/$d"
        done
    fi
    if [[ $dry_run == 0 ]]; then
        say "wrote a new broker config to $broker_dest: every camera needs its credentials" \
            "from $BROKER_DIR/credentials and the CA $BROKER_DIR/ca.crt"
    fi
    changed=1
    broker_changed=1
elif [[ $role == hub ]]; then
    say "unchanged: the broker config in $broker_dest (kept; --force regenerates it, with a" \
        "new CA and new passwords for every device)"
    if [[ $web_cert_new == 1 ]]; then
        put_file "$stage/webcert/web.key" "$BROKER_DIR/web.key" 0600
        put_file "$stage/webcert/web.crt" "$BROKER_DIR/web.crt" 0644
    fi
fi
if [[ $role == hub ]]; then
    put_text "$BROKER_DROPIN" 0644 \
"# Written by scripts/flash_device.sh: Debian's Mosquitto runs the store's TLS-only config from
# \`storesense broker-config\` (docs/broker-security.md) instead of /etc/mosquitto/mosquitto.conf.
[Service]
ExecStart=
ExecStart=$MOSQUITTO_BIN -c $BROKER_DIR/mosquitto.conf"
    [[ $put_changed == 0 ]] || broker_changed=1
fi
if [[ -f $CHECKOUT/docs/deployment.md ]]; then # the units' Documentation= link
    put_file "$CHECKOUT/docs/deployment.md" "$PREFIX/docs/deployment.md" 0644
fi

# 4. the service account and who may read the node files
sysusers="# Written by scripts/flash_device.sh: the account the Storesense units run as.
u storesense - \"Storesense services\" -"
tmpfiles="# Written by scripts/flash_device.sh: store.yaml holds the MQTT password; only the services
# (group storesense) and root may read it. Re-applied at every boot.
z $CONF_DIR/store.yaml 0640 root storesense -
z $CONF_DIR/mqtt-credentials.yaml 0600 root root -
z $CONF_DIR/ca.crt 0644 root root -
z $CONF_DIR/face-seal.key 0640 root storesense -"
if [[ $role == hub ]]; then
    # The web process runs as its own user: not in group storesense, so neither store.yaml (the
    # hub's MQTT password) nor /var/lib/storesense (database, template key) is readable to it.
    sysusers+="
u storesense-web - \"Storesense web app (stateless gateway)\" -"
    tmpfiles+="
z $CONF_DIR/web.yaml 0640 root storesense-web -"
fi
put_text /etc/sysusers.d/storesense.conf 0644 "$sysusers"
put_text /etc/tmpfiles.d/storesense.conf 0644 "$tmpfiles"
if [[ $role == hub ]]; then
    put_text /etc/tmpfiles.d/storesense-mosquitto.conf 0644 \
"# Written by scripts/flash_device.sh: Mosquitto reads its password file and key, and writes
# its persistence, as the mosquitto user; the CA key and the devices' credentials stay root's.
z $CONF_DIR 0755 root root -
z $BROKER_DIR 0755 root root -
z $BROKER_DIR/passwd 0600 mosquitto mosquitto -
z $BROKER_DIR/broker.key 0600 mosquitto mosquitto -
d $BROKER_DIR/data 0700 mosquitto mosquitto -
z $BROKER_DIR/ca.key 0600 root root -
z $BROKER_DIR/credentials 0700 root root -"
    [[ $put_changed == 0 ]] || broker_changed=1
fi
if live; then
    run systemd-sysusers /etc/sysusers.d/storesense.conf
    run systemd-tmpfiles --create /etc/tmpfiles.d/storesense.conf
    if [[ $role == hub ]]; then
        run systemd-tmpfiles --create /etc/tmpfiles.d/storesense-mosquitto.conf
    fi
elif [[ -f $root/etc/passwd && $EUID -eq 0 ]] && command -v systemd-sysusers >/dev/null 2>&1; then
    run systemd-sysusers --root="$root"
    gid=$(awk -F: '$1 == "storesense" { print $3 }' "$root/etc/group" 2>/dev/null || true)
    if [[ -n $gid && -e $root$CONF_DIR/store.yaml &&
        $(stat -c %g "$root$CONF_DIR/store.yaml") != "$gid" ]]; then
        run chgrp "$gid" "$root$CONF_DIR/store.yaml"
    fi
    web_gid=$(awk -F: '$1 == "storesense-web" { print $3 }' "$root/etc/group" 2>/dev/null || true)
    if [[ -n $web_gid && -e $root$CONF_DIR/web.yaml &&
        $(stat -c %g "$root$CONF_DIR/web.yaml") != "$web_gid" ]]; then
        run chgrp "$web_gid" "$root$CONF_DIR/web.yaml"
    fi
else
    say "note: no OS tree in $root: the storesense user is created at first boot by" \
        "systemd-sysusers, and store.yaml gets its group from tmpfiles.d at every boot"
fi

# 5. units
if [[ $role == hub ]]; then
    unit_files=(storesense-hub.service storesense-web.service storesense-report.service
        storesense-report.timer storesense-suggest.service storesense-suggest.timer
        storesense-retention.service storesense-retention.timer)
    enable=(storesense-hub.service storesense-web.service storesense-report.timer
        storesense-suggest.timer storesense-retention.timer)
else
    unit_files=(storesense-edge@.service)
    enable=("storesense-edge@$camera.service")
fi
for unit in "${unit_files[@]}"; do
    put_file "$CHECKOUT/systemd/$unit" "$UNIT_DIR/$unit" 0644
done

# A device is exactly one node: units of another role or camera left by an earlier run go.
stale=()
for link in "$root$UNIT_DIR"/multi-user.target.wants/storesense-*.service \
    "$root$UNIT_DIR"/timers.target.wants/storesense-*.timer; do
    [[ -L $link ]] || continue
    name=$(basename "$link")
    [[ " ${enable[*]} " == *" $name "* ]] || stale+=("$name")
done

wants_dir() { # unit -> the target it is WantedBy
    case $1 in *.timer) echo timers.target.wants ;; *) echo multi-user.target.wants ;; esac
}
if live; then
    for name in "${stale[@]}"; do run systemctl disable --now "$name"; done
    run systemctl daemon-reload
    if [[ $role == hub ]]; then # the broker first: the hub and the web app connect to it
        if [[ $broker_changed == 1 ]]; then
            run systemctl enable mosquitto.service
            run systemctl restart mosquitto.service
        else
            run systemctl enable --now mosquitto.service
        fi
    fi
    for unit in "${enable[@]}"; do
        if [[ $changed == 1 ]]; then
            run systemctl enable "$unit"
            run systemctl restart "$unit"
        else
            run systemctl enable --now "$unit"
        fi
    done
else
    for name in "${stale[@]}"; do run rm -f "$root$UNIT_DIR/$(wants_dir "$name")/$name"; done
    for unit in "${enable[@]}"; do
        template=${unit/@*./@.}                       # storesense-edge@door-1.service -> @.service
        link=$root$UNIT_DIR/$(wants_dir "$unit")/$unit
        if [[ $(readlink "$link" 2>/dev/null) == "$UNIT_DIR/$template" ]]; then
            say "unchanged: $link"
        else
            run mkdir -p "$(dirname "$link")"
            run ln -sfn "$UNIT_DIR/$template" "$link"
        fi
    done
fi

what="hub"
[[ $role == hub ]] || what="$role camera $camera (MQTT via $hub_address)"
if [[ $dry_run == 1 ]]; then
    say "dry run: nothing was changed; the $what would be provisioned${root:+ in $root}"
else
    say "provisioned the $what${root:+ in $root}; enabled: ${enable[*]}"
fi
