#!/usr/bin/env bash
# A study on a real (one-node) Slurm cluster, checked against the same
# study trained locally, then interrupted and resumed. Needs the cluster
# of scripts/slurm-local.sh (started here when it is not up) and the
# reproml binary ($REPROML, default target/debug/reproml).
#
#   scripts/slurm-study-test.sh
#
# Prints one line per check and "N passed, M failed" at the end; exits 1
# when a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPROML=$(realpath "${REPROML:-target/debug/reproml}")
export SLURM_CONF=${SLURM_CONF:-/tmp/reproml-slurm/slurm.conf}
if ! sinfo -h >/dev/null 2>&1; then
    bash scripts/slurm-local.sh start
fi
work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    for side in buggy corrected; do scancel --name="reproml-slurmtest-b1-$side" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
check() { # check NAME COMMAND...
    local name=$1
    shift
    if "$@"; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name"
        failed=$((failed + 1))
    fi
}

cd "$work"
cat > study.toml <<'TOML'
name = "slurm"
runs = 4
retries = 1
[base]
model = "mlp"
challenge = "digits"
epochs = 2
[[bug]]
id = "b1"
buggy = { kind = "builtin", fault = "momentum-ignored" }
corrected = { kind = "builtin" }
[[bug]]
id = "b2"
buggy = { kind = "builtin", fault = "grad-scale" }
corrected = { kind = "builtin" }
TOML

# The server every task reaches (loopback: one node), and its seeds equal
# to the local run's (same master seed).
"$REPROML" server --listen 127.0.0.1:0 --db server.db --master-seed 11 --allow-delete 2> server.log &
server_pid=$!
for _ in $(seq 100); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' server.log | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
done

"$REPROML" study run study.toml --db local.db --master-seed 11 --json --out local-report > local.json 2> local.log
"$REPROML" study run study.toml --server "$url" --executor slurm --poll-seconds 1 --json \
    --slurm-dir slurm-jobs --out slurm-report > slurm.json 2> slurm.log
check "the study ran as Slurm job arrays" grep -q "Slurm job [0-9]*, 4 array task(s)" slurm.log
check "the Slurm report equals the local one (same seeds, same digests)" cmp -s local.json slurm.json
"$REPROML" study status study.toml --server "$url" --slurm-dir slurm-jobs > status.txt
check "study status lists the jobs" grep -q 'buggy: Slurm job [0-9]* (4 task(s)): ended' status.txt

# Interrupted: a bigger study's arrays cancelled midway, then resumed.
sed -e 's/^name = "slurm"/name = "slurmtest"/' -e 's/^runs = 4/runs = 8/' -e 's/^epochs = 2/epochs = 12/' \
    study.toml | sed '/\[\[bug\]\]/,$d' > big.toml
cat >> big.toml <<'TOML'
[[bug]]
id = "b1"
buggy = { kind = "builtin", fault = "momentum-ignored" }
corrected = { kind = "builtin" }
TOML
"$REPROML" study run big.toml --server "$url" --executor slurm --poll-seconds 1 --slurm-dir big-jobs \
    --out big-report > /dev/null 2> big.log &
driver=$!
# Runs of slurmtest-b1 recorded: all, distinct (variant, run), per side.
counts() {
    "$REPROML" experiment runs slurmtest-b1 --server "$url" --json 2>/dev/null | python3 -c '
import collections, json, sys
runs = json.load(sys.stdin)
pairs = collections.Counter((r["variant"], r["run"]) for r in runs)
sides = collections.Counter(v for v, _ in pairs)
print(len(runs), len(pairs), " ".join(f"{v}={n}" for v, n in sorted(sides.items())))' 2>/dev/null || echo "0 0"
}
for _ in $(seq 600); do
    set -- $(counts)
    [ "$1" -ge 2 ] && break
    sleep 0.2
done
kill "$driver" 2>/dev/null || true
wait "$driver" 2>/dev/null || true
for side in buggy corrected; do scancel --name="reproml-slurmtest-b1-$side"; done
while [ -n "$(squeue -h --name=reproml-slurmtest-b1-buggy,reproml-slurmtest-b1-corrected)" ]; do sleep 0.5; done
set -- $(counts)
midway=$1
check "cancelled midway ($midway of 16 runs recorded)" test "$midway" -ge 1 -a "$midway" -lt 16
"$REPROML" study run big.toml --server "$url" --executor slurm --poll-seconds 1 --slurm-dir big-jobs \
    --json --out big-report > big.json 2> resume.log
submitted=$(grep -o 'Slurm job [0-9]*, [0-9]* array task' resume.log | awk '{s += $4} END {print s + 0}')
check "resuming submitted only the $((16 - midway)) missing runs ($submitted)" test "$submitted" -eq $((16 - midway))
check "after resuming: every run once, 8 a side ($(counts))" test "$(counts)" = "16 16 buggy=8 corrected=8"

# Trained twice (the same job script submitted twice at once): one result
# per run, and both arrays succeed (the server takes the identical result
# as already there).
"$REPROML" experiment delete slurmtest-b1 --variant buggy --server "$url" --yes > /dev/null
"$REPROML" study run big.toml --server "$url" --executor print --slurm-dir twice > /dev/null 2>&1
script=$(ls twice/slurmtest-b1-buggy-*.sbatch)
first=$(sbatch --parsable "$script")
second=$(sbatch --parsable "$script")
while [ -n "$(squeue -h -j "$first,$second")" ]; do sleep 0.5; done
check "a side trained twice at once has every run once ($(counts))" test "$(counts)" = "16 16 buggy=8 corrected=8"
check "both arrays ended without an error" sh -c "! grep -il error twice/logs/*"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
