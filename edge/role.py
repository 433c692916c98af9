"""What a camera does with its frames, behind one interface the camera agent runs blindly.

A camera's ``role`` in the store config picks an implementation (``edge.roles.make_role``):
``entrance`` → :class:`edge.entrance.role.EntranceRole` (faces → ``FaceTrack`` messages),
``floor`` → :class:`edge.floor.role.FloorRole` (people → ``FloorPositions``).
``edge.camera_agent`` owns everything the roles share (capture, outbox, MQTT, heartbeat,
watchdog) and never asks which role it runs: a third role is a new module and one entry in
``edge.roles.BUILDERS``, not a branch in the agent.

The two trackers behind the roles share :class:`Tracker`: frames in time order, "is anyone
still being followed". That is all they truly have in common; what a finished track *means*
(a face track's final message, a floor track simply ageing out) is each role's business.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from storesense import messages as m

# Every message a role may publish; the agent only needs ``to_bytes``.
Outgoing = m.FaceTrack | m.FloorPositions

D_contra = TypeVar("D_contra", contravariant=True)
O_co = TypeVar("O_co", covariant=True)


@runtime_checkable
class Tracker(Protocol[D_contra, O_co]):
    """A multi-object tracker fed one frame's detections at a time, in time order.

    ``t`` is in seconds on a clock that never goes back (monotonic capture time, or frame index
    / fps offline). Implemented by ``FaceTracker`` (observations → ``TrackUpdate``) and
    ``PersonTracker`` (``Detections`` → ``TrackedPerson``).
    """

    def update(self, t: float, detections: D_contra, /) -> Sequence[O_co]:
        """Associate this frame's detections with the tracks; what each one did."""
        ...

    def active(self) -> bool:
        """True while any track is alive (seen, or lost but still kept for re-association)."""
        ...


@runtime_checkable
class Role(Protocol):
    """One camera's analysis: frames in, messages for one MQTT topic out; never an image.

    ``process`` and ``flush`` are called from the agent's thread only. ``t_capture`` is the
    frame's monotonic capture time; roles turn it into epoch seconds with :func:`wall_time`
    for the messages (latency is measured across machines).
    """

    topic: str  # where this role's messages go (topics.faces / topics.floor of the camera)
    counters: Counter[str]  # the role's own figures (messages published, work skipped, ...)

    def process(self, image_bgr: np.ndarray, t_capture: float) -> list[Outgoing]:
        """Analyse one frame; the messages now due (often none)."""
        ...

    def flush(self, t_capture: float, *, everything: bool = False) -> list[Outgoing]:
        """Messages due by time alone (tracks that ended); ``everything`` on shutdown / EOF."""
        ...

    def rejections(self) -> dict[str, int]:
        """Why frames or detections were refused so far, for the camera's status heartbeat."""
        ...


def wall_time(t_monotonic: float) -> float:
    """Monotonic capture time → epoch seconds, for latency measured across machines."""
    return time.time() - (time.monotonic() - t_monotonic)
