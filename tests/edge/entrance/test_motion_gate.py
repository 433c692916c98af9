import numpy as np

from edge.entrance.motion_gate import MotionGate


def _frame(value: int = 90) -> np.ndarray:
    return np.full((480, 640, 3), value, np.uint8)


def test_still_scene_is_skipped_but_rechecked_now_and_then() -> None:
    gate = MotionGate(max_skip=5)
    assert gate.changed(_frame())  # the first frame is always analysed
    decisions = [gate.changed(_frame()) for _ in range(12)]
    assert decisions[:5] == [False] * 5
    assert decisions[5] is True  # a still face in view is still looked at every max_skip frames
    assert decisions.count(True) == 2


def test_someone_walking_in_is_motion() -> None:
    gate = MotionGate()
    gate.changed(_frame())
    gate.changed(_frame())
    person = _frame()
    person[200:400, 300:360] = 230  # a bright figure appears in the doorway
    assert gate.changed(person)


def test_sensor_noise_is_not_motion() -> None:
    rng = np.random.default_rng(0)
    gate = MotionGate(max_skip=1000)
    gate.changed(_frame())
    noisy = [
        np.clip(_frame().astype(int) + rng.integers(-6, 7, (480, 640, 3)), 0, 255).astype(np.uint8)
        for _ in range(10)
    ]
    assert not any(gate.changed(f) for f in noisy)
