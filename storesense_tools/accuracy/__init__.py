"""The accuracy and bias report for door recognition (docs/accuracy.md).

Why a generated report and not hand-written figures: recognising people at a shop door is a
biometric decision about them, so the rates we quote (customers recognised, strangers wrongly
matched) must come from the code that runs at the door, with their uncertainty, the number of
people behind them and the limits of the data, and must be re-creatable by anyone with one
command. Hand-copied numbers drift from the code; this package, run by
``scripts/accuracy_report.py``, is the only source of docs/accuracy.md.

What runs: the live edge ``FacePipeline`` through ``storesense_tools.face_eval.embed_images`` (the
same embeddings and cache as ``scripts/calibrate_threshold.py`` and the tests), the live
``TemplateIndex`` search and the live ``OpenSetPolicy.decide_one`` at the hub's configured
threshold and margin. Every figure is computed from per-probe rows (``ProbeRow``), so the
rates can be checked by counting rows (``--rows`` writes them as CSV).

Modules, in the order the data flows:

- ``protocols``: who is enrolled, who is probed, who is a stranger, per data set;
- ``evaluate``: embed, search, decide, count; the operating points and their held-out check;
  why images have no usable face; the ``Report``;
- ``rows``: the per-probe row and its CSV;
- ``stats``: rates with exact intervals, summaries, the threshold for a target FPIR;
- ``render`` and ``render_sections``: the markdown;
- ``checkout``: the repository root, its git state and the calibration script beside it.
"""
