#!/usr/bin/env bash
# Determinism measured, not assumed: the Python client trains LeNet-5 on
# digits RUNS times with PyTorch's determinism settings on, then the same
# runs again (same seeds), then once more with the settings off, and prints,
# run by run, whether the repeats are bit-identical epoch by epoch or where
# they first diverge, with the time each took.
#
#   scripts/gpu-determinism.sh [DEVICE]     # cuda, cuda:N or cpu
#   PYTHON=venv/bin/python REPROML=target/release/reproml RUNS=3 EPOCHS=5 \
#       scripts/gpu-determinism.sh cuda
#
# DEVICE defaults to cuda when PyTorch sees a GPU, else cpu (where CI runs
# it, so the script itself stays tested). PYTHON must import torch and this
# repository's client (`pip install ./clients/python`, or PYTHONPATH).
set -euo pipefail

REPROML=${REPROML:-target/release/reproml}
PYTHON=${PYTHON:-python3}
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-5}
if [[ ! -x $REPROML ]]; then
    echo "error: $REPROML is not built; run \`cargo build --release\` (or set REPROML)" >&2
    exit 1
fi
if ! "$PYTHON" -c "import torch, reproml.run" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch and reproml; install the client (clients/python/README.md) or set PYTHON" >&2
    exit 1
fi
device=${1:-$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}

dir=$(mktemp -d)
server=""
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
"$REPROML" server --listen 127.0.0.1:0 --db "$dir/g.db" 2> "$dir/server.log" &
server=$!
url=""
for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.:]*' "$dir/server.log" | head -1 || true)
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || { echo "error: the server did not start:" >&2; cat "$dir/server.log" >&2; exit 1; }

printf 'id = "gpu-determinism"\nmodel = "lenet5"\nchallenge = "digits"\nepochs = %s\nruns = %s\n[optimizer]\nlr = 0.05\nmomentum = 0.9\n' \
    "$EPOCHS" "$RUNS" > "$dir/spec.toml"
"$REPROML" experiment create --server "$url" --spec "$dir/spec.toml" > /dev/null

declare -A millis
for variant in on off repeat; do
    flags=()
    [[ $variant == off ]] && flags=(--no-determinism)
    started=$(date +%s%N)
    PYTHONHASHSEED=0 "$PYTHON" -m reproml.run --server "$url" --experiment gpu-determinism \
        --variant "$variant" --device "$device" "${flags[@]}" > "$dir/$variant.log" 2>&1 \
        || { cat "$dir/$variant.log" >&2; exit 1; }
    millis[$variant]=$(( ($(date +%s%N) - started) / 1000000 ))
done

"$PYTHON" - "$url" "$device" "$EPOCHS" "${millis[on]}" "${millis[repeat]}" "${millis[off]}" <<'PY'
import sys
from reproml import Client

url, device, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = {v: int(ms) / 1000 for v, ms in zip(["on", "repeat", "off"], sys.argv[4:7])}
client = Client(url)
runs = {v: {r["run"]: r for r in client.runs("gpu-determinism", v)} for v in times}
first = next(iter(runs["on"].values()))["fingerprint"]
train_images = len(client.split("gpu-determinism", 0, "train", client.seed("gpu-determinism", 0)["seed"]))
print(f"device {device} ({first.get('gpu', 'none')}), torch {first['torch']}, "
      f"LeNet-5 on digits, {epochs} epochs, {len(runs['on'])} runs per variant")


def compare(a, b):
    for e, (x, y) in enumerate(zip(a["epochs"], b["epochs"]), start=1):
        if x["digest"] != y["digest"]:
            return f"diverges at epoch {e}"
    return "identical"


print(f"{'run':>4}  {'settings on, repeated':<24}  {'settings off, against on':<24}")
identical = 0
for run in sorted(runs["on"]):
    again = compare(runs["on"][run], runs["repeat"][run])
    off = compare(runs["on"][run], runs["off"][run])
    identical += again == "identical"
    print(f"{run:>4}  {again:<24}  {off:<24}")
for v in ["on", "repeat", "off"]:
    images = sum(len(r["epochs"]) for r in runs[v].values()) * train_images
    print(f"{v:<7} {times[v]:6.1f} s for {len(runs[v])} runs ({images / times[v]:,.0f} training images/s, start-up included)")
print(f"repeats with the settings on: {identical}/{len(runs['on'])} bit-identical")
sys.exit(0 if identical == len(runs["on"]) else 1)
PY
