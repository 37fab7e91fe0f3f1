#!/usr/bin/env bash
# Runs krarup's workloads (W1-W4) beside the reference anchors in one session
# and prints medians side by side.
#
#   benches/compare.sh              3 runs of our workloads + one anchors run
#   RUNS=5 benches/compare.sh       more runs
#   ANCHORS=0 benches/compare.sh    ours only (reuse earlier anchor results)
#   ONLY='W1|W3' ...                workloads matching the regex
#
# Our RESULT lines go to target/bench-results/krarup-<stamp>-<i>.results, one
# file per run (summarize.py counts each file as a run); the anchors write to
# ../shared/anchors/results/. The summary table mixes both.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
RUNS=${RUNS:-3}
ANCHORS=${ANCHORS:-1}
ONLY=${ONLY:-}
ANCHOR_DIR=${ANCHOR_DIR:-$HERE/../shared/anchors}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$HERE/target/bench-results"
mkdir -p "$OUT"

cargo build --release --examples -q
EX="$HERE/target/release/examples"

want() { [[ -z "$ONLY" || "$1" =~ $ONLY ]]; }

FILES=()
for i in $(seq "$RUNS"); do
    f="$OUT/krarup-$STAMP-$i.results"
    : > "$f"
    echo "# krarup run $i/$RUNS"
    if want W1; then
        "$EX/ring" --processes 1000 --rounds 1000 | tee -a "$f" | grep -v '^RESULT'
        "$EX/ring" --processes 100000 --rounds 10 | tee -a "$f" | grep -v '^RESULT'
    fi
    if want W2; then "$EX/spawn" --processes 1000000 | tee -a "$f" | grep -v '^RESULT'; fi
    if want W3; then "$EX/local_call" --k 1000000 --clients 100 --calls 10000 | tee -a "$f" | grep -v '^RESULT'; fi
    if want W4; then "$EX/remote_bench" --calls 100000 --messages 1000000 | tee -a "$f" | grep -v '^RESULT'; fi
    grep -h '^RESULT' "$f" > "$f.tmp" && mv "$f.tmp" "$f"
    FILES+=("$f")
done

if [[ "$ANCHORS" == 1 && -x "$ANCHOR_DIR/run.sh" ]]; then
    echo "# anchors (ONLY=${ONLY:-W1|W2|W3|W4|W5})"
    (cd "$ANCHOR_DIR" && ONLY="${ONLY:-W1|W2|W3|W4|W5}" ./run.sh > "$OUT/anchors-$STAMP.log" 2>&1) || echo "# some anchor benchmarks failed (see $OUT/anchors-$STAMP.log)"
    latest=$(ls -t "$ANCHOR_DIR"/results/run-*.results 2>/dev/null | head -1 || true)
    [[ -n "$latest" ]] && FILES+=("$latest")
fi

python3 "$ANCHOR_DIR/summarize.py" --compact "${FILES[@]}"
