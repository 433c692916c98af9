from pathlib import Path

import pytest

from storesense.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def test_example_config_loads_with_typed_values() -> None:
    cfg = load_config(REPO / "config" / "store.example.yaml")
    assert cfg.store_id == "store-001"
    assert cfg.camera("door-1").role == "entrance"
    assert cfg.recognition.threshold > 0
    assert isinstance(cfg.visits.cooldown_s, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("store_id: s1\nrecogniton: {}\n", "bad.yaml:2: recogniton: unknown key"),
        ("store_id: s1\nvisits:\n  cooldown_s: -5\n", "bad.yaml:3: visits.cooldown_s"),
        (
            "store_id: s1\ncameras:\n  - id: c1\n    role: door\n    source: 0\n",
            "bad.yaml:4: cameras.0.role",
        ),
        ("store_id: 's 1'\n", "bad.yaml:1: store_id"),
        ("store_id: s1\ncameras: [\n", "not valid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_config_names_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "bad.yaml")
    assert expected in str(err.value)
    assert "Traceback" not in str(err.value)


def test_duplicate_camera_ids_refused() -> None:
    text = (
        "store_id: s1\ncameras:\n  - {id: c1, role: entrance, source: 0}\n"
        "  - {id: c1, role: floor, source: 1}\n"
    )
    with pytest.raises(ConfigError, match="appears twice"):
        parse_config(text, "dup.yaml")


def test_unknown_camera_lookup_is_a_clear_error() -> None:
    cfg = parse_config("store_id: s1\n")
    with pytest.raises(ConfigError, match="no camera 'door-9'"):
        cfg.camera("door-9")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_roi_must_be_a_box() -> None:
    cam = "store_id: s1\ncameras:\n  - {{id: c1, role: entrance, source: 0, roi: {roi}}}\n"
    with pytest.raises(ConfigError, match="roi must be"):
        parse_config(cam.format(roi="[50, 0, 10, 10]"))
    assert parse_config(cam.format(roi="[0, 0, 10, 10]")).cameras[0].roi == (0, 0, 10, 10)


def test_floor_person_detector_choices() -> None:
    """``person_detector`` takes the detectors the floor role can build (``ensemble``: SSDLite
    plus NanoDet fused, issue 14) and refuses any other name at its line."""
    for name in ("ssdlite", "nanodet", "ensemble", "hog"):
        cfg = parse_config(
            f"store_id: s1\ncameras:\n  - {{id: f1, role: floor, source: 0, "
            f"person_detector: {name}}}\n"
        )
        assert cfg.cameras[0].person_detector == name
    with pytest.raises(ConfigError) as err:
        parse_config(
            "store_id: s1\ncameras:\n  - {id: f1, role: floor, source: 0, person_detector: yolo}\n",
            "bad.yaml",
        )
    assert "bad.yaml:3: cameras.0.person_detector" in str(err.value)
