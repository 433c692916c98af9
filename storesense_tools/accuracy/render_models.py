"""The "Models" section of docs/accuracy.md: dlib's ResNet against SFace, same pipeline.

Issue 13's lever "a stronger embedding model", measured as the other levers are: the same
images through the same live front end (BlazeFace and its fallbacks, dlib's 5 points, the
quality gate, the photo pipeline's second pass, flip), only the network differs; per model
the shipped rule at that model's own defaults as fixed, and re-chosen by the held-out recipe
(``levers.held_out``: choose on four LFW folds, count on the fifth, pool). The fixed rows
choose nothing, so they are the held-out estimate of what each model ships with.
"""

from __future__ import annotations

from collections.abc import Mapping

from storesense.config import RecognitionConfig
from storesense.face_models import DECISION_DEFAULTS, SFACE
from storesense_tools.accuracy.face_records import FaceRecords, Variant
from storesense_tools.accuracy.protocols import Protocol
from storesense_tools.accuracy.render_levers import (
    LeverSpec,
    LeverStudy,
    lever_study,
    lever_table,
    replace_v,
)

PROTOCOLS = ("lfw", "lfw-enrol3")


def model_specs(model: str, shipped: Variant, agg: str) -> list[LeverSpec]:
    """Per protocol: the model at its own defaults (fixed), and the rule re-chosen; for SFace
    also without flip (whether the mirror helps a model trained with flipped faces)."""
    d = DECISION_DEFAULTS[model]
    specs: list[LeverSpec] = []
    for proto in PROTOCOLS:
        specs += [
            LeverSpec(
                model, f"its defaults ({d.threshold:g} / {d.margin:g}), as fixed", proto,
                shipped, agg=agg, family="fixed", fixed_at=(d.threshold, d.margin),
            ),
            LeverSpec(model, "the rule re-chosen", proto, shipped, agg=agg),
        ]  # fmt: skip
        if model == SFACE:
            specs.append(
                LeverSpec(
                    model, "no flip, the rule re-chosen", proto, replace_v(shipped, flip=False),
                    agg=agg,
                )
            )  # fmt: skip
    return specs


def model_study(
    records: Mapping[str, FaceRecords],
    protocols: dict[str, Protocol],
    folds: dict[str, int],
    shipped: Variant,
    agg: str,
) -> LeverStudy | None:
    """Every model's rows on its own LFW records (one embedding order for all)."""
    rows = []
    study = None
    for model, rec in records.items():
        d = DECISION_DEFAULTS[model]
        study = lever_study(
            rec, protocols, folds, model_specs(model, shipped, agg), (d.threshold, d.margin)
        )
        rows += study.rows
    if study is None:
        return None
    return LeverStudy(rows, study.titles, study.target, study.default)


def model_section(study: LeverStudy | None) -> list[str]:
    """The markdown lines (none without LFW: the study needs its folds)."""
    if study is None or not study.rows:
        return []
    shipped = RecognitionConfig().model
    return [
        "## Models: dlib's ResNet and SFace on the same faces",
        "",
        "The same images through the same live front end for photos (detection with the second "
        "pass, dlib's 5 landmarks, the quality gate, flip, a customer's mean template); only "
        "the embedding network differs. SFace (OpenCV Zoo, int8, Apache-2.0; "
        "docs/face-models.md has its licence, provenance and caveats) reads a 112 px crop "
        "warped from the same 5 points. Each model's thresholds are its own distances (dlib's "
        "near 0.45, SFace's unit vectors near 1.0). *As fixed* rows choose nothing: they are "
        "the held-out estimate of the model at its shipped defaults; *re-chosen* rows choose "
        f"margin and threshold on four folds (≤ {100 * study.target:g} % of their strangers "
        f"matched) and count on the fifth. The door ships **{shipped}** "
        "(`recognition.model`).",
        "",
        *lever_table(study),
        "",
        "Caveat: SFace's distributor does not state its training data, and the public "
        "recipes use data sets of public figures, so LFW's people may have been seen in "
        "training (dlib's author states LFW identities were kept out of the ResNet's); part of "
        "the gap may be that. Check on the store's own consented door data "
        "(`storesense eval faces`) before relying on these figures (docs/face-models.md, "
        '"Caveats").',
        "",
    ]
