"""Frame decoders behind one small interface, so ``VideoSource`` can treat them alike.

``grab``/``retrieve`` are split so throttled file frames skip the colour conversion.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


class Capture(Protocol):
    def grab(self) -> bool: ...
    def pts_s(self) -> float | None: ...
    def retrieve(self) -> np.ndarray | None: ...
    def release(self) -> None: ...


class CvCapture:
    """``cv2.VideoCapture`` behind grab/retrieve so throttled file frames skip colour conversion."""

    def __init__(self, cap: cv2.VideoCapture) -> None:
        self._cap = cap
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def grab(self) -> bool:
        return bool(self._cap.grab())

    def pts_s(self) -> float | None:
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        return ms / 1000.0 if ms is not None and ms >= 0 else None

    def retrieve(self) -> np.ndarray | None:
        ok, img = self._cap.retrieve()
        return img if ok else None

    def release(self) -> None:
        self._cap.release()


class PillowGifCapture:
    """GIF decoder for OpenCV builds without an FFmpeg/GIF backend; same BGR uint8 frames."""

    def __init__(self, path: Path) -> None:
        from PIL import Image  # only needed on the fallback path

        self._im = Image.open(path)
        self.frame_count = int(getattr(self._im, "n_frames", 1))
        self._next = 0
        self._pts = 0.0
        self._cur_pts: float | None = None

    def grab(self) -> bool:
        if self._next >= self.frame_count:
            return False
        try:
            self._im.seek(self._next)
        except (EOFError, OSError):
            return False
        self._cur_pts = self._pts
        self._pts += float(self._im.info.get("duration") or 100) / 1000.0
        self._next += 1
        return True

    def pts_s(self) -> float | None:
        return self._cur_pts

    def retrieve(self) -> np.ndarray | None:
        rgb = np.asarray(self._im.convert("RGB"))
        return np.ascontiguousarray(rgb[:, :, ::-1])

    def release(self) -> None:
        self._im.close()


def redact(source: str | int) -> str:
    """Never log camera passwords (rtsp://user:pass@host)."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", str(source))


def clean_frame(img: np.ndarray | None) -> np.ndarray | None:
    """Return a HxWx3 uint8 BGR image, or None for frames a detector must not see."""
    if not isinstance(img, np.ndarray) or img.size == 0 or img.dtype != np.uint8:
        return None
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    return None
