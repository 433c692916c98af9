"""Skips face detection on frames where nothing moved: an empty doorway costs almost nothing.

Compares a tiny blurred greyscale copy of each frame with a slowly updated background; the
fraction of changed pixels decides. Cheap enough (well under 1 ms at 640×480) to run on every
frame of a Raspberry Pi 4.
"""

from __future__ import annotations

import cv2
import numpy as np


class MotionGate:
    def __init__(
        self,
        *,
        width: int = 96,
        pixel_delta: int = 18,
        min_changed: float = 0.004,
        learn_rate: float = 0.05,
        max_skip: int = 25,
    ) -> None:
        self.width = width
        self.pixel_delta = pixel_delta
        self.min_changed = min_changed
        self.learn_rate = learn_rate
        self.max_skip = max_skip  # re-check now and then: a still face in view must be seen
        self._background: np.ndarray | None = None
        self._skipped = 0

    def changed(self, image_bgr: np.ndarray) -> bool:
        h, w = image_bgr.shape[:2]
        small = cv2.resize(
            image_bgr,
            (self.width, max(1, self.width * h // max(w, 1))),
            interpolation=cv2.INTER_AREA,
        )
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        grey = grey.astype(np.float32)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey
            return True
        diff = np.abs(grey - self._background) > self.pixel_delta
        cv2.accumulateWeighted(grey, self._background, self.learn_rate)
        moving = float(diff.mean()) >= self.min_changed
        if moving or self._skipped >= self.max_skip:
            self._skipped = 0
            return True
        self._skipped += 1
        return False
