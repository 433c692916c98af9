#!/usr/bin/env bash
# Before/after in one sitting: runs the hot-path benches on two checkouts (each with its own
# .venv, e.g. `git worktree add /tmp/before <rev>` + scripts/bootstrap.sh there), alternating
# per bench so both see the same machine state. Figures go to docs/benchmarks.md.
#   bash bench/compare_trees.sh /tmp/before .   [OUT_DIR]
set -u
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); out=${3:-/tmp/storesense-bench}
mkdir -p "$out"
run() {  # tree label bench args...
    local tree=$1 label=$2; shift 2
    (cd "$tree" && .venv/bin/python "$@") >"$out/$label-$(basename "$1" .py).txt" 2>&1
    echo "$(date +%T) $label $* -> rc=$?"
}
for pair in "bench/match_latency.py --sizes 100000 1000000 --queries 300" \
            "bench/hub_floor_ingest.py --seconds 120" \
            "bench/phones_claim_latency.py --phones 50 --rounds 40" \
            "bench/door_to_alert.py --seconds 60"; do
    # shellcheck disable=SC2086
    run "$before" before $pair
    # shellcheck disable=SC2086
    run "$after" after $pair
done
grep -h -E "p50|positions/s|^\| [0-9]" "$out"/*.txt
