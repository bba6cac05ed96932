#!/usr/bin/env bash
# Calibrates reproml's verdicts on faults of known effect: how often each
# built-in fault is detected with N = 10, 20 and 30 runs per side (power),
# and how often a null fault — one that changes every trajectory but not
# the distribution of results — is called a difference (false positives).
#
#   scripts/calibrate.sh [OUT]          # default OUT: calibration/
#   REPLICATES=20 REPROML=target/release/reproml scripts/calibrate.sh
#
# One study of REPLICATES independent experiments (each its own seeds), each
# with four sides of 30 runs: corrected (the reference), momentum
# (momentum-ignored), grad-half (grad-scale=-0.5: the first layer's gradient
# halved) and null (grad-scale=1e-6). Each experiment is then compared on
# its first 10, 20 and 30 runs (`compare --runs 0..N`), Holm across its own
# 3 comparisons × 4 metrics, and the verdicts are counted. The model is the
# MLP on digits, trained to about 98 % (30 epochs, lr 0.05, momentum 0.9),
# so that 2,400 runs take minutes; the method is the same for any model.
set -euo pipefail

REPROML=${REPROML:-target/release/reproml}
OUT=${1:-calibration}
REPLICATES=${REPLICATES:-20}
JOBS=${JOBS:-$(nproc)}
SIDES="corrected,momentum,grad-half,null"

if [[ ! -x $REPROML ]]; then
    echo "error: $REPROML is not built; run \`cargo build --release\` first (or set REPROML)" >&2
    exit 1
fi
if ! [[ $REPLICATES =~ ^[0-9]+$ ]] || (( REPLICATES < 1 || REPLICATES > 999 )); then
    echo "error: REPLICATES must be a number from 1 to 999, got $REPLICATES" >&2
    exit 1
fi
mkdir -p "$OUT"
study="$OUT/calibration.toml"
{
    echo 'name = "cal"'
    echo 'runs = 30'
    echo "sides = [\"corrected\", \"momentum\", \"grad-half\", \"null\"]"
    echo '[base]'
    echo 'model = "mlp"'
    echo 'challenge = "digits"'
    echo 'epochs = 30'
    echo '[base.optimizer]'
    echo 'lr = 0.05'
    echo 'momentum = 0.9'
    for r in $(seq -w 1 "$REPLICATES"); do
        echo '[[bug]]'
        echo "id = \"r$r\""
        echo '[bug.sides]'
        echo 'corrected = { kind = "builtin" }'
        echo 'momentum = { kind = "builtin", fault = "momentum-ignored" }'
        echo 'grad-half = { kind = "builtin", fault = "grad-scale=-0.5" }'
        echo 'null = { kind = "builtin", fault = "grad-scale=1e-6" }'
    done
} > "$study"

started=$(date +%s)
echo "training $REPLICATES experiments × 4 sides × 30 runs into $OUT/cal.db ($JOBS jobs)…" >&2
"$REPROML" study run "$study" --embedded --db "$OUT/cal.db" --master-seed 2026 \
    --jobs "$JOBS" --out "$OUT/study-report" > "$OUT/study.log"
echo "trained in $(( $(date +%s) - started )) s; comparing…" >&2

for n in 10 20 30; do
    for r in $(seq -w 1 "$REPLICATES"); do
        "$REPROML" compare --embedded --db "$OUT/cal.db" "cal-r$r" \
            --variants "$SIDES" --runs "0..$n" --json > "$OUT/r$r-n$n.json"
    done
done

python3 - "$OUT" "$REPLICATES" <<'PY'
import json, pathlib, sys
from collections import Counter

out, replicates = pathlib.Path(sys.argv[1]), int(sys.argv[2])
sides = ["momentum", "grad-half", "null"]
counts = {(s, n): Counter() for s in sides for n in (10, 20, 30)}
shifts = {s: [] for s in sides}
for n in (10, 20, 30):
    for r in range(1, replicates + 1):
        report = json.loads((out / f"r{r:0{len(str(replicates))}d}-n{n}.json").read_text())
        for c in report["comparisons"]:
            counts[(c["treatment"], n)][c["verdict"]] += 1
            if n == 30:
                shifts[c["treatment"]].append(c["metrics"][0]["treatment"]["mean"] - c["metrics"][0]["baseline"]["mean"])

lines = ["| side (fault) | mean accuracy shift at N = 30 | detected N = 10 | N = 20 | N = 30 | equivalent N = 10 | N = 20 | N = 30 |",
         "|---|---|---|---|---|---|---|---|"]
faults = {"momentum": "momentum-ignored", "grad-half": "grad-scale=-0.5", "null": "grad-scale=1e-6"}
for s in sides:
    mean_shift = sum(shifts[s]) / len(shifts[s]) + 0.0  # no "-0.0000"
    row = [f"{s} ({faults[s]})", f"{mean_shift:+.4f}"]
    row += [f"{counts[(s, n)]['detected']}/{replicates}" for n in (10, 20, 30)]
    row += [f"{counts[(s, n)]['equivalent']}/{replicates}" for n in (10, 20, 30)]
    lines.append("| " + " | ".join(row) + " |")
table = "\n".join(lines)
other = {f"{s} N={n}": dict(counts[(s, n)]) for s in sides for n in (10, 20, 30)}
false_positives = sum(counts[("null", n)]["detected"] for n in (10, 20, 30))
(out / "calibration.md").write_text(table + "\n")
(out / "calibration.json").write_text(json.dumps(other, indent=2) + "\n")
print(table)
print()
print(f"null fault called a difference: {false_positives} of {3 * replicates} comparisons "
      f"({replicates} experiments at N = 10, 20, 30)")
print("every verdict per side and N:", json.dumps(other))
PY
echo "total $(( $(date +%s) - started )) s; files in $OUT/" >&2
