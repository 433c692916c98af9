"""Each embedding model brings its own decision defaults; a YAML's own numbers win."""

from __future__ import annotations

import pytest

from storesense.config import ConfigError, RecognitionConfig, parse_config
from storesense.face_models import DECISION_DEFAULTS, DEFAULT_MODEL, DLIB_RESNET, SFACE


@pytest.mark.parametrize("model", [DLIB_RESNET, SFACE])
def test_naming_a_model_brings_its_thresholds(model: str) -> None:
    d = DECISION_DEFAULTS[model]
    cfg = parse_config(f"store_id: s1\nrecognition: {{model: {model}}}\n").recognition
    assert (cfg.model, cfg.threshold, cfg.margin) == (model, d.threshold, d.margin)
    assert (cfg.single_frame_threshold, cfg.single_frame_margin) == (
        d.single_frame_threshold,
        d.single_frame_margin,
    )


def test_the_default_model_and_a_yaml_threshold() -> None:
    rc = RecognitionConfig()
    assert rc.model == DEFAULT_MODEL == SFACE
    assert rc.threshold == DECISION_DEFAULTS[SFACE].threshold
    own = parse_config(
        f"store_id: s1\nrecognition: {{model: {DLIB_RESNET}, threshold: 0.40}}\n"
    ).recognition
    assert (own.threshold, own.margin) == (0.40, DECISION_DEFAULTS[DLIB_RESNET].margin)


def test_an_unknown_model_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"recognition\.model"):
        parse_config("store_id: s1\nrecognition: {model: facenet}\n")
