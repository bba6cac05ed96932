#!/usr/bin/env bash
# Determinism measured, not assumed, on a device.
#
# 1. The built-in engine: LeNet-5 on digits and VGG-X on a generated
#    CIFAR-10-shaped data set, RUNS runs each, trained twice with the same
#    seeds on DEVICE. Prints, run by run, whether the repeat is bit-identical
#    epoch by epoch or where it first diverges, the first diverging parameter
#    (`reproml verify`), how the device's trajectories compare with the
#    CPU's, and images/s on the device beside the CPU's.
# 2. The Python client (when PYTHON imports torch): LeNet-5 on digits with
#    PyTorch's determinism settings on, on again, and off.
#
#   scripts/gpu-determinism.sh [DEVICE]     # cuda, cuda:N or cpu
#   REPROML=target/release/reproml RUNS=3 EPOCHS=3 scripts/gpu-determinism.sh cuda
#
# DEVICE defaults to cuda when nvidia-smi sees a GPU, else cpu (where CI runs
# it, so the script itself stays tested). On cuda, REPROML must be built with
# `--features cuda`. VGG_TRAIN and VGG_TEST size the generated set (default
# 1024 and 256); CPU_FIGURE=0 skips the CPU timing; PYTHON (default python3)
# runs the comparisons with this repository's client and, when it imports
# torch, part 2. Exit status: 0 when every repeat on DEVICE is bit-identical,
# 3 when some diverge (the output says where), 1 on failure.
set -euo pipefail

REPROML=${REPROML:-target/release/reproml}
PYTHON=${PYTHON:-python3}
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-3}
VGG_TRAIN=${VGG_TRAIN:-1024}
VGG_TEST=${VGG_TEST:-256}
CPU_FIGURE=${CPU_FIGURE:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -x $REPROML ]]; then
    echo "error: $REPROML is not built; run \`cargo build --release\` (with --features cuda for a GPU), or set REPROML" >&2
    exit 1
fi
if [[ -n ${1:-} ]]; then
    device=$1
elif nvidia-smi -L > /dev/null 2>&1; then
    device=cuda
else
    device=cpu
fi
export PYTHONPATH="$here/clients/python${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import reproml" 2>/dev/null; then
    echo "error: $PYTHON cannot import this repository's client (clients/python); set PYTHON" >&2
    exit 1
fi

dir=$(mktemp -d)
server=""
cleanup() {
    if [[ -n $server ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

# A CIFAR-10-shaped set in CIFAR-10's binary format (label byte, then 3×32×32
# pixels, channel-major): each class a colour and a stripe direction plus
# noise, so that VGG-X learns something in a few epochs.
"$PYTHON" - "$dir/cifar" "$VGG_TRAIN" "$VGG_TEST" <<'PY'
import os, random, sys
out, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out)
rng = random.Random(20261127)
def image(label):
    r, g, b = (label * 37) % 256, (label * 91) % 256, (label * 53) % 256
    pixels = bytearray([label])
    for base in (r, g, b):
        for y in range(32):
            for x in range(32):
                stripe = 40 if ((x if label % 2 else y) // 4) % 2 else 0
                pixels.append(max(0, min(255, base + stripe + rng.randint(-30, 30))))
    return bytes(pixels)
def write(name, n):
    with open(os.path.join(out, name), "wb") as f:
        for k in range(n):
            f.write(image(k % 10))
per_batch = -(-n_train // 5)
for b in range(5):
    write(f"data_batch_{b + 1}.bin", max(0, min(per_batch, n_train - b * per_batch)))
write("test_batch.bin", n_test)
PY
"$REPROML" data import cifar-shaped --format cifar10 "$dir/cifar" --db "$dir/g.db" > /dev/null

"$REPROML" server --listen 127.0.0.1:0 --db "$dir/g.db" 2> "$dir/server.log" &
server=$!
url=""
for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.:]*' "$dir/server.log" | head -1 || true)
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || { echo "error: the server did not start:" >&2; cat "$dir/server.log" >&2; exit 1; }

cat > "$dir/det-lenet5.toml" <<EOF
id = "det-lenet5"
model = "lenet5"
challenge = "digits"
epochs = $EPOCHS
runs = $RUNS
[optimizer]
lr = 0.05
momentum = 0.9
EOF
cat > "$dir/det-vgg-x.toml" <<EOF
id = "det-vgg-x"
model = "vgg-x"
challenge = "cifar-shaped"
epochs = $EPOCHS
runs = $RUNS
[split]
method = "official"
[batch]
train = 64
test = 256
[optimizer]
lr = 0.01
momentum = 0.5
EOF

declare -A seconds
train() { # experiment variant device [run selection]
    local started
    started=$(date +%s%N)
    "$REPROML" run --server "$url" --experiment "$1" --variant "$2" --device "$3" \
        ${4:+--runs "$4"} > "$dir/$1-$2.log" 2>&1 || { cat "$dir/$1-$2.log" >&2; exit 1; }
    seconds[$1-$2]=$(( ($(date +%s%N) - started) / 1000000 ))
}
for experiment in det-lenet5 det-vgg-x; do
    "$REPROML" experiment create --server "$url" --spec "$dir/$experiment.toml" > /dev/null
    train "$experiment" first "$device"
    train "$experiment" repeat "$device"
    # One run alone: the difference to RUNS runs is the time of RUNS - 1
    # runs without the process's start-up and the kernels' compilation.
    [[ $RUNS -gt 1 ]] && train "$experiment" single "$device" 0
    if [[ $CPU_FIGURE != 0 && $device != cpu ]]; then
        train "$experiment" cpu cpu 0
    fi
done

status=0
"$PYTHON" - "$url" "$device" "$EPOCHS" "$(declare -p seconds)" <<'PY' > "$dir/summary.txt" || status=$?
import re, sys
from reproml import Client

url, device, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
millis = dict(re.findall(r'\[([^\]]+)\]="?(\d+)', sys.argv[4]))
client = Client(url)


def first_difference(a, b):
    for e, (x, y) in enumerate(zip(a["epochs"], b["epochs"]), start=1):
        if x["digest"] != y["digest"]:
            return e
    return None


diverging = []
for experiment, title in [("det-lenet5", "LeNet-5 on digits"), ("det-vgg-x", "VGG-X on CIFAR-10-shaped data")]:
    runs = {v: {r["run"]: r for r in client.runs(experiment, v)} for v in ["first", "repeat", "single", "cpu"]}
    f = next(iter(runs["first"].values()))["fingerprint"]
    train_images = len(client.split(experiment, 0, "train", client.seed(experiment, 0)["seed"]))
    gpu = f"{f['gpu']}, driver {f.get('driver', '?')}, CUDA {f.get('cuda', '?')}" if "gpu" in f else "no GPU"
    print(f"{title}: {len(runs['first'])} runs × {epochs} epochs × {train_images} images, "
          f"device {f['device']} ({gpu}), backend {f['backend']}, deterministic: {f['deterministic']}")
    identical = 0
    for run in sorted(runs["first"]):
        e = first_difference(runs["first"][run], runs["repeat"][run])
        if e is None:
            identical += 1
            print(f"  run {run}: repeat bit-identical in all {epochs} epochs")
        else:
            print(f"  run {run}: repeat DIVERGES at epoch {e}")
            diverging.append((experiment, run))
        if run in runs["single"] and first_difference(runs["first"][run], runs["single"][run]):
            print(f"  run {run}: a third training DIVERGES")
            diverging.append((experiment, run))
        if run in runs["cpu"]:
            e = first_difference(runs["cpu"][run], runs["first"][run])
            same = "the same trajectory as the CPU" if e is None else f"leaves the CPU's trajectory at epoch {e}"
            print(f"  run {run}: on {device}, {same}")
    print(f"  repeats: {identical}/{len(runs['first'])} bit-identical")
    for variant, label in [("first", device), ("repeat", f"{device}, repeat"), ("cpu", "cpu")]:
        key = f"{experiment}-{variant}"
        if key in millis and runs[variant]:
            images = sum(len(r["epochs"]) for r in runs[variant].values()) * train_images
            s = int(millis[key]) / 1000
            print(f"  {label:<14} {images / s:10,.0f} training images/s ({len(runs[variant])} runs in {s:.1f} s, start-up included)")
    one, many = millis.get(f"{experiment}-single"), millis.get(f"{experiment}-repeat")
    if one and many and int(many) > int(one):
        images = (len(runs["repeat"]) - 1) * epochs * train_images
        s = (int(many) - int(one)) / 1000
        print(f"  {device + ', steady':<14} {images / s:10,.0f} training images/s (runs after the first: "
              f"{len(runs['repeat'])} runs' time less 1 run's)")
for experiment, run in diverging[:1]:
    print(f"VERIFY {experiment} {run}")
sys.exit(3 if diverging else 0)
PY
grep -v '^VERIFY ' "$dir/summary.txt"
# The first diverging run trained twice more, parameter by parameter (in one
# process, where autotuned kernels are reused: it may well repeat there).
if read -r _ experiment run < <(grep '^VERIFY ' "$dir/summary.txt"); then
    echo "reproml verify --device $device --experiment $experiment --run $run:"
    "$REPROML" verify --server "$url" --experiment "$experiment" --run "$run" --device "$device" 2>&1 \
        | sed 's/^/  /' || true
fi
[[ $status == 0 || $status == 3 ]] || exit "$status"

# 2. The Python client on PyTorch, when PYTHON has it.
if ! "$PYTHON" -c "import torch, reproml.run" 2>/dev/null; then
    echo "PyTorch: $PYTHON cannot import torch; the Python client's part is skipped"
    exit "$status"
fi
printf 'id = "det-torch"\nmodel = "lenet5"\nchallenge = "digits"\nepochs = %s\nruns = %s\n[optimizer]\nlr = 0.05\nmomentum = 0.9\n' \
    "$EPOCHS" "$RUNS" > "$dir/torch.toml"
"$REPROML" experiment create --server "$url" --spec "$dir/torch.toml" > /dev/null
declare -A millis
for variant in on off repeat; do
    flags=()
    [[ $variant == off ]] && flags=(--no-determinism)
    started=$(date +%s%N)
    PYTHONHASHSEED=0 "$PYTHON" -m reproml.run --server "$url" --experiment det-torch \
        --variant "$variant" --device "$device" "${flags[@]}" > "$dir/$variant.log" 2>&1 \
        || { cat "$dir/$variant.log" >&2; exit 1; }
    millis[$variant]=$(( ($(date +%s%N) - started) / 1000000 ))
done

"$PYTHON" - "$url" "$device" "$EPOCHS" "${millis[on]}" "${millis[repeat]}" "${millis[off]}" <<'PY' || status=$?
import sys
from reproml import Client

url, device, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = {v: int(ms) / 1000 for v, ms in zip(["on", "repeat", "off"], sys.argv[4:7])}
client = Client(url)
runs = {v: {r["run"]: r for r in client.runs("det-torch", v)} for v in times}
first = next(iter(runs["on"].values()))["fingerprint"]
train_images = len(client.split("det-torch", 0, "train", client.seed("det-torch", 0)["seed"]))
print(f"PyTorch: device {device} ({first.get('gpu', 'none')}), torch {first['torch']}, "
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
sys.exit(0 if identical == len(runs["on"]) else 3)
PY
exit "$status"
