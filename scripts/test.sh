#!/usr/bin/env bash
# The test command from README.md: set up .venv if needed, lint, then the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -ra "$@"
