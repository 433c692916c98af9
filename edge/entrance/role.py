"""The ``role: entrance`` camera: frames → faces → tracks → a few ``FaceTrack`` messages each.

Frames → motion gate → face pipeline (detect, align, quality gate) → face tracker → embed
only the faces a track will keep → the best embeddings per track → ``FaceTrack`` messages
(the first usable face at once, the agreement pair, at most one improvement, final; see
``edge.entrance.face_tracker``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from edge.entrance.face_pipeline import FacePipeline
from edge.entrance.face_tracker import FaceTracker, Track
from edge.entrance.motion_gate import MotionGate
from edge.role import Outgoing, wall_time
from storesense import messages as m
from storesense.config import CameraConfig, StoreConfig
from storesense.face_models import SAME_PERSON_RADIUS


class EntranceRole:
    """Implements ``edge.role.Role`` for a door camera."""

    def __init__(self, cfg: StoreConfig, camera: CameraConfig, topic: str) -> None:
        self.camera_id = camera.id
        self.topic = topic
        self.model = cfg.recognition.model  # named on every message (storesense.face_models)
        self.pipeline = FacePipeline(
            detector=camera.detector,
            quality=cfg.quality,
            roi=camera.roi,
            model=cfg.recognition.model,
        )
        self.tracker = FaceTracker(
            max_embed_dist=SAME_PERSON_RADIUS[self.model],
            k=camera.best_per_track,
            first_embeddings=camera.first_message_embeddings,
        )
        self.motion = MotionGate()
        self.counters: Counter[str] = Counter()

    def process(self, image_bgr: np.ndarray, t_capture: float) -> list[Outgoing]:
        """Analyse one frame; a still frame with nobody tracked costs only the motion gate."""
        if not self.motion.changed(image_bgr) and not self.tracker.active():
            self.counters["frames_skipped_still"] += 1
            return self.flush(t_capture)
        # Lazy embedding: the ResNet (~55 ms/face, most of the frame budget) runs only for the
        # faces their track will keep among its best samples; the rest stop after the gate.
        observations = self.pipeline.analyse_bgr(image_bgr)
        for up in self.tracker.update_lazily(t_capture, observations, self.pipeline.embed):
            if up.observation.quality.passed:
                key = "embeddings_computed" if up.usable else "embeddings_skipped"
                self.counters[key] += 1
        return self.flush(t_capture)

    def flush(self, t_capture: float, *, everything: bool = False) -> list[Outgoing]:
        """Tracks whose message is due now; ``everything`` ends every track (shutdown, EOF)."""
        return [
            self._face_track(track, final)
            for track, final in self.tracker.due_for_publication(t_capture, flush_all=everything)
        ]

    def rejections(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.pipeline.rejections.items()}

    def _face_track(self, track: Track, final: bool) -> m.FaceTrack:
        samples = [
            m.EmbeddingSample(
                vector=s.embedding,
                quality=s.quality.score,
                face_px=s.quality.face_px,
                sharpness=s.quality.sharpness,
                frontalness=s.quality.frontalness,
                t=wall_time(s.t),
            )
            for s in track.best_samples()
        ]
        self.counters["face_tracks_published"] += 1
        return m.FaceTrack(
            camera_id=self.camera_id,
            track_id=track.track_id,
            update=track.publications - 1,
            final=final,
            first_usable_at=wall_time(track.first_usable_t or track.first_seen_t),
            samples=samples,
            model=self.model,
        )
