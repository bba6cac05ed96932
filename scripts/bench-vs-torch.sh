#!/usr/bin/env bash
# The engine against PyTorch, side by side, in one invocation: one epoch of
# LeNet-5 (1×28×28, 4,096 images) and VGG-X (3×32×32, 512 images), batch
# 64, on 1 and 2 threads, with the engine (`cargo bench -p reproml-runner
# --bench train`'s throughput child) and with the Python client's models of
# the same networks on PyTorch (scripts/torch_train_bench.py). Prints
# images/s, the median of ROUNDS epochs each, and the engine's ratio to
# each PyTorch.
#
#   scripts/bench-vs-torch.sh                   # Debian's PyTorch, if installed
#   TORCH_PYTHON=venv/bin/python scripts/bench-vs-torch.sh
#   INSTALL_TORCH=1 scripts/bench-vs-torch.sh   # PyTorch 2.x from PyPI into .bench/torch
#
# ROUNDS (default 3) epochs per configuration. Compare ratios within one
# invocation: the machine's load changes figures from one day to the next.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}

pythons=()
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    pythons+=("/usr/bin/python3")
fi
if [[ -n ${TORCH_PYTHON:-} ]]; then
    pythons+=("$TORCH_PYTHON")
fi
if [[ ${INSTALL_TORCH:-0} == 1 ]]; then
    venv=.bench/torch
    if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
        echo "installing PyTorch from PyPI into $venv (a few GB) …" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check torch numpy
    fi
    pythons+=("$venv/bin/python")
fi
if [[ ${#pythons[@]} == 0 ]]; then
    echo "error: no Python with PyTorch: install Debian's python3-torch, set TORCH_PYTHON, or set INSTALL_TORCH=1" >&2
    exit 1
fi

cargo bench --quiet -p reproml-runner --bench train --no-run 2> /dev/null
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# The median images/s of ROUNDS runs of a command that prints `images/s seconds`.
measure() {
    for _ in $(seq "$ROUNDS"); do "$@" | awk 'END {print $1}'; done | median
}

names=()
for py in "${pythons[@]}"; do
    names+=("PyTorch $("$py" -c 'import torch; print(torch.__version__.split("+")[0])')")
done
printf '| model | threads | this engine |'
for name in "${names[@]}"; do printf ' %s | engine / it |' "$name"; done
printf '\n|---|---|---|'
for _ in "${names[@]}"; do printf -- '---|---|'; done
printf '\n'
for model in lenet5 vgg-x; do
    for threads in 1 2; do
        engine=$(measure cargo bench --quiet -p reproml-runner --bench train -- --throughput-child "$model" "$threads")
        printf '| %s | %s | %.1f |' "$model" "$threads" "$engine"
        for py in "${pythons[@]}"; do
            theirs=$(PYTHONPATH=clients/python measure "$py" scripts/torch_train_bench.py "$model" "$threads")
            printf ' %.1f | %s |' "$theirs" "$(awk -v a="$engine" -v b="$theirs" 'BEGIN {printf "%.2f", a / b}')"
        done
        printf '\n'
    done
done
echo "(images/s, median of $ROUNDS epochs each; $(nproc) cores; $(date -u +%Y-%m-%d))"
