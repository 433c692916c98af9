#!/usr/bin/env bash
# The demo command from README.md: set up .venv if needed, then run the end-to-end demo on the
# embedded broker, a fresh SQLite home and the bundled clip. Extra args go to `storesense demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/storesense --home "${STORESENSE_HOME:-demo-out/home}" demo --out demo-out "$@"
