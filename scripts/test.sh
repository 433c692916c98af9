#!/usr/bin/env bash
# The test command from README.md: set up .venv if needed, then the checks, then the suite.
#   1. ruff check and ruff format --check (lint and layout, whole repo);
#   2. mypy over the four packages (strictness stated in pyproject.toml [tool.mypy]);
#   3. the layering check (tests/test_layers.py: which room may import which, no cycles),
#      on its own first because it takes seconds and a broken layering makes later failures
#      hard to read;
#   4. the whole pytest suite (tests/test_installed_wheel.py builds the wheel and installs it
#      into fresh venvs: the artefact a device runs, not the editable checkout).
# Arguments go to the final pytest run (e.g. a test path or -k EXPR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_layers.py
exec .venv/bin/python -m pytest -q -ra "$@"
