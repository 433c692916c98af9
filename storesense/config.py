"""The store configuration: one tree of typed models, validated once at start-up.

Defaults live here, in the models, and nowhere else. A wrong key or value becomes one
``ConfigError`` that names the key path and the YAML file line, so an installer fixing a
config on a ladder sees what to change instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storesense.floor_config import FloorConfig, ZoneConfig, check_zones
from storesense.ids import Ident  # the id rules: storesense/ids.py
from storesense.privacy_config import PrivacyConfig
from storesense.shop_config import AppConfig, LoyaltyConfig

# Calibrated on LFW folds 1-5 so that < 1 % of never-enrolled people are matched; see
# docs/calibration.md for the data, the procedure and the resulting numbers.
DEFAULT_MATCH_THRESHOLD = 0.46
DEFAULT_MATCH_MARGIN = 0.08
# Single-frame alerts (one very confident frame alerts alone): the strictest of the five
# fold-held-out picks of storesense_tools/accuracy/track_protocol.py on LFW folds 1-5, with
# the per-frame false alarm rate's 95 % upper bound <= 1/3 % (docs/accuracy.md, "Door tracks").
DEFAULT_SINGLE_FRAME_THRESHOLD = 0.432
DEFAULT_SINGLE_FRAME_MARGIN = 0.12


class ConfigError(ValueError):
    """A configuration problem an installer can act on: file, line, key path and reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)


class RecognitionConfig(_Strict):
    """Open-set decision: a match needs distance, a margin over the runner-up and agreement."""

    threshold: float = Field(DEFAULT_MATCH_THRESHOLD, gt=0, lt=2)
    margin: float = Field(DEFAULT_MATCH_MARGIN, ge=0, lt=1)
    min_votes: int = Field(2, ge=1, le=20)
    min_vote_share: float = Field(0.6, gt=0, le=1)
    track_timeout_s: float = Field(10.0, gt=0)
    # One very confident frame alerts at once (the door's first usable frame is published
    # alone); anything less waits for the agreement above. The same score as ``threshold`` /
    # ``margin``, never looser than them (hub.faces.recognizer clamps); chosen on LFW folds
    # with a held-out fold so single-frame alerts keep FPIR <= 1 % (docs/accuracy.md, "Door
    # tracks"). None: no single-frame alerts (the agreement rule only).
    single_frame_threshold: float | None = Field(DEFAULT_SINGLE_FRAME_THRESHOLD, gt=0, lt=2)
    single_frame_margin: float | None = Field(DEFAULT_SINGLE_FRAME_MARGIN, ge=0, lt=1)


class VisitConfig(_Strict):
    cooldown_s: float = Field(1800.0, ge=0, description="a match within this time joins the visit")
    alert_ttl_s: float = Field(120.0, gt=0, description="unclaimed alerts expire after this")
    # A claimer who walked away must not hold a customer for ever: after ``claim_idle_s`` with
    # no press the phone asks "still with …?", and ``claim_confirm_s`` later the hub ends it.
    claim_idle_s: float = Field(
        900.0, gt=0, description="a claim with no press for this long asks the claimer"
    )
    claim_confirm_s: float = Field(
        120.0, gt=0, description="unanswered for this long after the question, the claim ends"
    )


class QualityConfig(_Strict):
    min_face_px: float = Field(18.0, gt=0, description="inter-ocular distance in frame pixels")
    min_sharpness: float = Field(
        40.0, ge=0, description="Laplacian variance of the contrast-normalised 64 px chip"
    )
    min_frontalness: float = Field(0.55, ge=0, le=1)


class CameraConfig(_Strict):
    id: Ident
    role: Literal["entrance", "floor"]
    display_name: str = Field(
        "", max_length=60, description="what staff call this door ('Main door'); default: id"
    )
    source: str | int = Field(description="camera index, RTSP/HTTP URL, video file or GIF")
    fps: float = Field(8.0, gt=0, le=60, description="frames analysed per second")
    detector: Literal["blazeface-short", "blazeface-full", "dlib-hog"] = "blazeface-full"
    person_detector: Literal["ssdlite", "hog"] = Field(
        "ssdlite", description="floor role: the on-device person detector"
    )
    calibration: Path | None = Field(
        None, description="floor role: homography YAML from `storesense calibrate`"
    )
    loop: bool = Field(False, description="restart a video file at its end (demo, soak)")
    best_per_track: int = Field(3, ge=1, le=10)
    first_message_embeddings: int = Field(
        1,
        ge=1,
        le=10,
        description="entrance: usable embeddings in a track's first message (1: at once; "
        "2 was the policy before single-frame alerts)",
    )
    roi: tuple[int, int, int, int] | None = Field(
        None, description="x1, y1, x2, y2 in frame pixels: only the doorway is searched"
    )

    @field_validator("roi")
    @classmethod
    def _roi_is_a_box(
        cls, roi: tuple[int, int, int, int] | None
    ) -> tuple[int, int, int, int] | None:
        if roi is not None and not (0 <= roi[0] < roi[2] and 0 <= roi[1] < roi[3]):
            raise ValueError("roi must be x1, y1, x2, y2 with 0 <= x1 < x2 and 0 <= y1 < y2")
        return roi


class StoreConfig(_Strict):
    store_id: Ident
    name: str = ""
    mqtt: MqttConfig = MqttConfig()
    recognition: RecognitionConfig = RecognitionConfig()
    visits: VisitConfig = VisitConfig()
    quality: QualityConfig = QualityConfig()
    cameras: list[CameraConfig] = []
    floor: FloorConfig = FloorConfig()
    zones: list[ZoneConfig] = []
    loyalty: LoyaltyConfig = LoyaltyConfig()
    app: AppConfig = AppConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    staff: list[Ident] = Field(
        default_factory=list, description="staff ids allowed to claim; empty = anyone"
    )

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for cam in cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} appears twice")
            seen.add(cam.id)
        return cameras

    @model_validator(mode="after")
    def _staff_unique(self) -> StoreConfig:
        if len(set(self.staff)) != len(self.staff):
            raise ValueError("staff ids must be unique")
        return self

    @model_validator(mode="after")
    def _zones_fit(self) -> StoreConfig:
        problems = check_zones(self.floor, self.zones)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def entrance_name(self, camera_id: str) -> str:
        """The door's name for cards and notifications (staff do not know camera ids)."""
        for cam in self.cameras:
            if cam.id == camera_id and cam.display_name:
                return cam.display_name
        return camera_id

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        known = ", ".join(c.id for c in self.cameras) or "none"
        raise ConfigError(f"no camera {camera_id!r} in the config (known: {known})")


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Walk the composed YAML tree along a pydantic error location; stop where it ends."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for key, value in node.value:
                if key.value == str(part):
                    nxt = key if part == loc[-1] else value
                    break
            if nxt is None:
                return node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def parse_config(text: str, source: str = "<string>") -> StoreConfig:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    try:
        return StoreConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(
                p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function"))
            )
            key = ".".join(str(p) for p in loc) or "(top level)"
            node = _node_at(root, loc)
            where = f"{source}:{node.start_mark.line + 1}" if node is not None else source
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against config/store.example.yaml)"
            lines.append(f"{where}: {key}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path) -> StoreConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config: {exc.strerror}") from None
    return parse_config(text, str(p))
