"""Which ``edge.role.Role`` a camera runs: its config's ``role`` looked up in :data:`BUILDERS`.

Apart from ``edge.role`` (the interface the roles import) so that nothing imports in a circle,
and so the agent holds no list of roles. Each builder imports its role when called: an entrance
camera never loads the person detector, a floor camera never loads dlib's ResNet.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.role import Role
from storesense.config import CameraConfig, StoreConfig
from storesense.topics import Topics


def _entrance(cfg: StoreConfig, camera: CameraConfig, topics: Topics) -> Role:
    from edge.entrance.role import EntranceRole

    return EntranceRole(cfg, camera, topics.faces(camera.id))


def _floor(cfg: StoreConfig, camera: CameraConfig, topics: Topics) -> Role:
    from edge.floor.role import FloorRole

    return FloorRole(cfg, camera, topics.floor(camera.id))


BUILDERS: dict[str, Callable[[StoreConfig, CameraConfig, Topics], Role]] = {
    "entrance": _entrance,
    "floor": _floor,
}


def make_role(cfg: StoreConfig, camera: CameraConfig, topics: Topics) -> Role:
    """The role the camera's config names, with its models loaded.

    Raises ``ConfigError`` for a role that cannot run as configured (a floor camera without
    calibration), before the agent connects anywhere.
    """
    return BUILDERS[camera.role](cfg, camera, topics)
