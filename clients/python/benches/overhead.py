"""What the client adds to a PyTorch run: `reproml.run.train_run` (splits
fetched and verified, initialisation and epoch orders from the streams,
per-epoch metrics from the confusion matrix, digests) against a bare
training loop on the same data already in memory (torch.randperm order,
the same model, optimiser and per-epoch test accuracy), in one process.

    REPROML_BIN=target/release/reproml PYTHONPATH=clients/python \\
        python3 clients/python/benches/overhead.py [--epochs 30] [--repeats 15]

Prints min / median / max seconds per run of each and the overhead of the
medians. Both use one PyTorch thread."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import torch
import torch.nn.functional as F

from reproml import Client
from reproml.models import build
from reproml.run import prepare, train_run


def start_server(binary: str, folder: str) -> tuple:
    process = subprocess.Popen([binary, "server", "--listen", "127.0.0.1:0", "--db", os.path.join(folder, "b.db")],
                               stderr=subprocess.PIPE, text=True)
    url = next(word for word in process.stderr.readline().split() if word.startswith("http://"))
    # The server logs every request: keep reading, or a full pipe blocks it.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, url


def bare_run(x_train, y_train, x_test, y_test, shape, classes, spec, seed) -> None:
    torch.manual_seed(seed)
    model = build(spec["model"], shape, classes)
    o = spec["optimizer"]
    optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"])
    batch = spec["batch"]["train"]
    for _ in range(spec["epochs"]):
        model.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), batch):
            positions = order[start:start + batch]
            optimizer.zero_grad()
            F.nll_loss(model(x_train[positions]), y_train[positions]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            (model(x_test).argmax(1) == y_test).float().mean().item()


def show(label: str, times: list) -> float:
    median = statistics.median(times)
    print(f"{label:<34} min {min(times):7.3f} s  median {median:7.3f} s  max {max(times):7.3f} s  ({len(times)} runs)")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    binary = os.environ.get("REPROML_BIN", "target/release/reproml")
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_server(binary, folder)
        try:
            client = Client(url)
            experiment = client.create_experiment({
                "id": "overhead", "model": "lenet5", "challenge": "digits", "epochs": args.epochs,
                "runs": args.repeats, "optimizer": {"lr": 0.05, "momentum": 0.9}})
            seed = client.seed("overhead", 0)["seed"]
            train = client.split("overhead", 0, "train", seed)
            test = client.split("overhead", 0, "test", seed)
            x_train, y_train, _ = prepare(train)
            x_test, y_test, _ = prepare(test)
            s = train.header["shape"]
            shape = (s["channels"], s["height"], s["width"])
            bare, whole = [], []
            # Interleaved, so that a slow moment of the machine hits both.
            for run in range(args.repeats):
                started = time.perf_counter()
                bare_run(x_train, y_train, x_test, y_test, shape, train.header["classes"], experiment, seed)
                bare.append(time.perf_counter() - started)
                started = time.perf_counter()
                train_run(client, experiment, run, threads=1)
                whole.append(time.perf_counter() - started)
        finally:
            process.terminate()
            process.wait()
    print(f"LeNet-5 on digits, {args.epochs} epochs, 1 PyTorch thread, torch {torch.__version__}")
    b = show("bare training loop", bare)
    w = show("reproml.run.train_run (whole run)", whole)
    print(f"overhead of the client: {100 * (w / b - 1):+.1f} % (medians), "
          f"{100 * (min(whole) / min(bare) - 1):+.1f} % (minima)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
