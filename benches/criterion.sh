#!/usr/bin/env bash
# Runs the criterion benches (benches/local.rs, benches/remote.rs) several times
# and prints, per bench, the median over the runs of criterion's median.
#
#   benches/criterion.sh              3 runs (about a minute each)
#   RUNS=5 benches/criterion.sh       more runs
#   benches/criterion.sh local_call   only the benches whose name contains local_call
#
# Each run's console output and criterion estimates go to
# target/bench-results/criterion-<stamp>-<i>/. One bench at a time, on an
# otherwise idle machine: compare only figures measured in one session.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
RUNS=${RUNS:-3}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
OUT="$TARGET/bench-results"

cargo bench --bench local --bench remote --no-run -q
DIRS=()
for i in $(seq "$RUNS"); do
    dir="$OUT/criterion-$STAMP-$i"
    mkdir -p "$dir"
    touch "$dir/started"
    echo "# run $i/$RUNS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    cargo bench -q --bench local --bench remote -- "$@" 2>&1 | grep -v '^$' | tee "$dir/console.txt" |
        grep -E 'time:|thrpt:|^[a-z_]+/[a-z_]+$' || true
    # Keep the estimates this run wrote (a filter leaves the others' older ones in place).
    python3 - "$TARGET/criterion" "$dir" <<'PY'
import glob, os, shutil, sys
src, dst = sys.argv[1:]
since = os.path.getmtime(os.path.join(dst, "started"))
for f in glob.glob(os.path.join(src, "*/*/new/estimates.json")):
    if os.path.getmtime(f) >= since:
        to = os.path.join(dst, os.path.relpath(f, src))
        os.makedirs(os.path.dirname(to), exist_ok=True)
        shutil.copy(f, to)
PY
    DIRS+=("$dir")
done

python3 - "${DIRS[@]}" <<'PY'
import glob, json, os, statistics, sys
runs = {}
for d in sys.argv[1:]:
    for f in glob.glob(os.path.join(d, "*/*/new/estimates.json")):
        name = "/".join(f.split(os.sep)[-4:-2])
        runs.setdefault(name, []).append(json.load(open(f))["median"]["point_estimate"])
print(f"\n{'bench':32} {'median':>12}  runs (criterion's median per run)")
for name in sorted(runs):
    ns = runs[name]
    fmt = lambda x: f"{x / 1000:.2f} µs" if x >= 10_000 else f"{x:.1f} ns"
    print(f"{name:32} {fmt(statistics.median(ns)):>12}  {', '.join(fmt(x) for x in ns)}")
PY
