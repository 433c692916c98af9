"""Sealing a camera's face tracks for the hub alone (AES-256-GCM, ``cryptography``).

Why: a ``FaceTrack`` carries 128-d embeddings, of enrolled customers and of never-enrolled
visitors alike. While the hub is down Mosquitto queues them for the hub's persistent session
and writes them to ``mosquitto.db`` at every autosave; the camera's SQLite outbox holds them
too. Sealed on the camera, before the outbox, the broker, its persistence, the outbox and any
MQTT tap see ciphertext only (docs/privacy.md).

Why a per-camera symmetric key and not a sealed box to the hub's public key: the hub must know
*which camera* sent a message (a public key lets anyone seal), must be able to revoke one
camera without re-flashing the others, and already trusts ``cryptography``'s AES-GCM for its
templates; a 32-byte key provisioned at flash time, next to the camera's MQTT password, is the
same kind of secret as that password.

The wire form is :class:`storesense.messages.SealedFaceTrack`; its plaintext is the whole
``FaceTrack`` JSON. The associated data binds the outer fields the hub acts on before it opens
anything (schema version, message id, camera id, sent time, key id): a ciphertext moved to
another message id, camera or time fails to open. Both sides use this module; it imports
neither.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storesense import messages as m

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE_FORMAT = "storesense-face-seal-key"


@dataclass(frozen=True)
class CameraKey:
    """One camera's sealing key: ``key_id`` names it on every message (rotation, revocation)."""

    key_id: str
    camera_id: str
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"face seal key {self.key_id!r}: {len(self.key)} bytes, expected 32")


def new_key(camera_id: str) -> CameraKey:
    """A fresh random key with a fresh id (hex, 16 chars: unique without coordination)."""
    return CameraKey(secrets.token_hex(8), camera_id, AESGCM.generate_key(bit_length=256))


def _aad(v: int, msg_id: str, camera_id: str, sent_at: float, key_id: str) -> bytes:
    # repr-exact JSON of the authenticated fields: the float goes through json both ways, so
    # the hub rebuilds the same bytes from the parsed message
    return json.dumps([v, msg_id, camera_id, sent_at, key_id], separators=(",", ":")).encode()


def seal(track: m.FaceTrack, key: CameraKey) -> m.SealedFaceTrack:
    """``track`` → its sealed form, with the same message id, camera and time outside."""
    if track.camera_id != key.camera_id:
        raise ValueError(f"key {key.key_id} is camera {key.camera_id}'s, not {track.camera_id}'s")
    nonce = os.urandom(NONCE_BYTES)
    aad = _aad(track.v, track.msg_id, track.camera_id, track.sent_at, key.key_id)
    ct = AESGCM(key.key).encrypt(nonce, track.to_bytes(), aad)
    return m.SealedFaceTrack(
        msg_id=track.msg_id,
        sent_at=track.sent_at,
        camera_id=track.camera_id,
        key_id=key.key_id,
        nonce=base64.b64encode(nonce).decode(),
        ciphertext=base64.b64encode(ct).decode(),
    )


def open_sealed(sealed: m.SealedFaceTrack, key: CameraKey) -> m.FaceTrack:
    """The ``FaceTrack`` inside; ``PayloadError('bad_seal')`` for a wrong key, a tampered
    ciphertext or outer field, or an inner message that is not the outer one's."""
    if sealed.key_id != key.key_id or sealed.camera_id != key.camera_id:
        raise m.PayloadError("bad_seal", f"key {key.key_id} does not belong to this message")
    aad = _aad(sealed.v, sealed.msg_id, sealed.camera_id, sealed.sent_at, sealed.key_id)
    try:
        plain = AESGCM(key.key).decrypt(
            base64.b64decode(sealed.nonce), base64.b64decode(sealed.ciphertext), aad
        )
    except InvalidTag:
        raise m.PayloadError(
            "bad_seal", f"does not open under key {sealed.key_id}: wrong key or tampered"
        ) from None
    inner = m.decode(plain, m.FaceTrack)
    if (inner.msg_id, inner.camera_id, inner.sent_at) != (
        sealed.msg_id,
        sealed.camera_id,
        sealed.sent_at,
    ):
        raise m.PayloadError("bad_seal", "the sealed track's id, camera or time differ outside")
    return inner


# -- key files (the camera's copy) -------------------------------------------------------------
def key_file_text(key: CameraKey) -> str:
    """The camera's key file: JSON naming the format, the camera and the key id."""
    return json.dumps(
        {
            "format": KEY_FILE_FORMAT,
            "camera_id": key.camera_id,
            "key_id": key.key_id,
            "key": base64.b64encode(key.key).decode(),
        }
    )


def write_key_file(path: Path, key: CameraKey) -> None:
    """Write ``path`` 0600 atomically (a camera reading it mid-rotation sees old or new)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key_file_text(key) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_key_file(path: Path, raw: bytes | None = None) -> CameraKey:
    """A camera key file (``raw``: its bytes, already read); ``ValueError`` naming the file
    for anything else."""
    try:
        data = json.loads(path.read_bytes() if raw is None else raw)
        if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT:
            raise ValueError(f"not a {KEY_FILE_FORMAT} file")
        return CameraKey(
            str(data["key_id"]),
            str(data["camera_id"]),
            base64.b64decode(data["key"], validate=True),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable face seal key ({exc})") from None


class KeyFileSealer:
    """The camera's sealer: re-reads its key file when it changes, so a rotation needs no
    restart. Compared by content (a read of ~150 bytes per message, microseconds next to an
    embedding's ~50 ms): two writes in one timestamp tick can show the same mtime and inode."""

    def __init__(self, path: Path, camera_id: str) -> None:
        self.path = path
        self.camera_id = camera_id
        self._raw = b""
        self._key = self._load(path.read_bytes())

    def _load(self, raw: bytes) -> CameraKey:
        key = read_key_file(self.path, raw)
        if key.camera_id != self.camera_id:
            raise ValueError(f"{self.path}: key for camera {key.camera_id}, not {self.camera_id}")
        self._raw = raw
        return key

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def seal(self, track: m.FaceTrack) -> m.SealedFaceTrack:
        try:
            raw = self.path.read_bytes()
            if raw != self._raw:
                self._key = self._load(raw)
        except (OSError, ValueError):
            pass  # a key file gone or unreadable: keep sealing with the key we have
        return seal(track, self._key)
