"""`python -m reproml.run`: train an experiment's runs with PyTorch and post
them, like `reproml run` does with burn.

    python -m reproml.run --server URL --experiment ID --variant LABEL [--runs 0-3,7]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import sys
import time
import traceback
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from . import torch as rtorch
from .cache import DataCache
from .client import Client, Split, Unreachable
from .metrics import confusion_matrix, metrics_of
from .models import StreamDropout, build
from .streams import Stream, epoch_orders


def prepare(split: Split):
    """Normalised float32 images [n, c, h, w], labels, data set indices."""
    h = split.header
    s = h["shape"]
    n = len(split)
    raw = np.frombuffer(split.records, dtype=np.uint8).reshape(n, split.record_size)
    indices = raw[:, :4].copy().view("<u4").reshape(n)
    labels = raw[:, 4].astype(np.int64)
    if split.dataset is not None:
        # Indices only: the pixels are the cached data set's.
        every = np.frombuffer(split.dataset.pixels, dtype=np.uint8).reshape(len(split.dataset), -1)
        pixels = every[indices.astype(np.int64)].astype(np.float32)
    else:
        pixels = raw[:, 5:].astype(np.float32)
    pixels = pixels.reshape(n, s["channels"], s["height"], s["width"])
    norm = h["normalization"]
    mean = np.array(norm["mean"], dtype=np.float64).reshape(1, -1, 1, 1)
    std = np.array(norm["std"], dtype=np.float64).reshape(1, -1, 1, 1)
    images = ((pixels / norm["max_value"] - mean) / std).astype(np.float32)
    return torch.from_numpy(images), torch.from_numpy(labels), indices


def digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter (docs/protocol.md section 11)."""
    h = hashlib.sha256(b"reproml/params/v1")
    for name, p in model.named_parameters():
        data = p.detach().cpu().numpy().astype("<f4")
        h.update(struct.pack("<I", len(name.encode())) + name.encode())
        h.update(struct.pack("<I", data.ndim))
        for d in data.shape:
            h.update(struct.pack("<I", d))
        h.update(data.tobytes())
    return h.hexdigest()


def scores(truth: np.ndarray, predicted: np.ndarray, classes: int) -> Dict[str, float]:
    """Accuracy and macro precision/recall/F1 with scikit-learn's definitions."""
    return metrics_of(confusion_matrix(truth.tolist(), predicted.tolist(), classes))


def train_run(client: Client, experiment: Dict, run: int, threads: int = 1, device: str = "cpu",
              deterministic: bool = True) -> Dict:
    """Trains one run on `device` and returns its result (not yet posted).
    Initial weights, epoch orders and dropout masks come from the run's
    streams on the host, whatever the device. `deterministic=False` leaves
    PyTorch's determinism settings at their defaults (recorded as such):
    for measuring what they change, never for a study."""
    spec = experiment
    seed = client.seed(spec["id"], run)["seed"]
    fingerprint = rtorch.configure(seed, threads, deterministic=deterministic)
    dev = torch.device(device)
    fingerprint["device"] = str(dev)
    # What the run used, not what the machine has.
    fingerprint["backend"] = f"torch-{dev.type}"
    if dev.type == "cuda":
        fingerprint["gpu"] = torch.cuda.get_device_name(dev)
    else:
        fingerprint["gpu"] = "none"
    train = client.split(spec["id"], run, "train", seed)
    test = client.split(spec["id"], run, "test", seed)
    x_train, y_train, idx = (t.to(device) if isinstance(t, torch.Tensor) else t for t in prepare(train))
    x_test, y_test, _ = (t.to(device) if isinstance(t, torch.Tensor) else t for t in prepare(test))
    s = train.header["shape"]
    model = build(spec["model"], (s["channels"], s["height"], s["width"]), train.header["classes"])
    model.initialise(seed)
    model.to(device)
    o = spec["optimizer"]
    optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"], dampening=0.0,
                                weight_decay=o["weight_decay"])
    sorted_positions = np.argsort(idx, kind="stable")
    has_dropout = any(isinstance(m, StreamDropout) for m in model.modules())
    batch = spec["batch"]["train"]
    epochs = []
    orders = epoch_orders(len(idx), seed, range(spec["epochs"]))
    for epoch in range(spec["epochs"]):
        order = sorted_positions[np.array(orders[epoch], dtype=np.int64)]
        model.train()
        losses = []
        for step, start in enumerate(range(0, len(order), batch)):
            positions = torch.from_numpy(order[start : start + batch]).to(device)
            # One stream per batch, shared by all dropout layers in order: the
            # Rust trainer's masks (docs/protocol.md section 5); none for a
            # model without dropout.
            masks = Stream(seed, "dropout", epoch, step) if has_dropout else None
            optimizer.zero_grad()
            loss = F.nll_loss(model(x_train[positions], masks), y_train[positions])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            predicted = torch.cat([model(x_test[i : i + spec["batch"]["test"]]).argmax(1)
                                   for i in range(0, len(x_test), spec["batch"]["test"])])
        matrix = confusion_matrix(y_test.tolist(), predicted.tolist(), train.header["classes"])
        epochs.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "test": metrics_of(matrix),
                       "confusion": matrix, "digest": digest(model)})
    fingerprint["dataset"] = train.header["dataset_digest"]
    return {
        "seed": seed,
        "metrics": epochs[-1]["test"],
        "epochs": epochs,
        "fingerprint": fingerprint,
        "artifact": {"kind": "command", "name": rtorch.artifact_name(), "details": {"model": spec["model"]}},
    }


def parse_runs(text: str) -> List[int]:
    """A run selection, as `reproml run --runs` reads it: comma-separated
    parts, each N (run N), A..B (B excluded) or A-B (B included); run
    indices from 0. Ascending, without repeats."""
    def bad() -> ValueError:
        return ValueError(f"{text!r} is not a run selection; use run indices from 0: N, A..B (B excluded), "
                          "A-B (B included), or a comma-separated list such as 0-3,7,9")

    def number(t: str) -> int:
        t = t.strip()
        if not (t.isascii() and t.isdigit()) or int(t) >= 2**32 - 1:
            raise bad()
        return int(t)

    runs = set()
    for part in text.split(","):
        if ".." in part:
            a, b = part.split("..", 1)
            lo, hi = number(a), number(b)
        elif "-" in part:
            a, b = part.split("-", 1)
            lo, hi = number(a), number(b) + 1
        else:
            lo = number(part)
            hi = lo + 1
        if lo >= hi:
            raise bad()
        runs.update(range(lo, hi))
    return sorted(runs)


def _with_hash_seed(argv) -> None:
    """Python fixes its string hashing at start-up: when PYTHONHASHSEED is
    not set, start this command again with PYTHONHASHSEED=0, so that no run
    depends on a random hash seed (and the user need not remember it)."""
    if argv is None and not os.environ.get("PYTHONHASHSEED"):
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable, "-m", "reproml.run", *sys.argv[1:]], env)


def _token(args) -> "str | None":
    """--token, else the file of --token-file or REPROML_TOKEN_FILE, as
    `reproml` reads them."""
    if args.token:
        return args.token
    path = args.token_file or os.environ.get("REPROML_TOKEN_FILE")
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _report_failure(client: Client, experiment: str, variant: str, run: int, error: BaseException) -> None:
    """Tells the server that `run` failed, for the dashboard and `reproml
    study status`: the exception first, then where it was raised. Best
    effort: when the server is what failed, so does the report."""
    where = "".join(traceback.format_tb(error.__traceback__)[-3:])
    text = f"{type(error).__name__}: {error}\n{where}".rstrip()
    if isinstance(error, Unreachable):
        return  # nobody to tell
    try:
        quick = client.quick()
        quick.post_failure(experiment, variant, run, quick.seed(experiment, run)["seed"], text)
    except Exception:  # noqa: BLE001 - the run's own error is the one to raise
        pass


def main(argv=None) -> int:
    _with_hash_seed(argv)
    parser = argparse.ArgumentParser(prog="python -m reproml.run", description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("REPROML_SERVER") or None,
                        help="URL of a running reproml server (default: $REPROML_SERVER)")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--variant", required=True, help="e.g. buggy or corrected")
    parser.add_argument("--runs", type=parse_runs, help="run indices from 0: N, A..B (B excluded), A-B (B included) "
                        "or a comma-separated list such as 0-3,7,9; all of the experiment's runs by default")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's CPU threads (results depend on it)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--no-determinism", action="store_true",
                        help="leave PyTorch's determinism settings at their defaults (to measure what they change; "
                             "the fingerprint says so)")
    parser.add_argument("--token", default=None, help="the server's bearer token")
    parser.add_argument("--token-file", default=None,
                        help="file holding the server's token (default: $REPROML_TOKEN_FILE)")
    parser.add_argument("--ca-cert", default=os.environ.get("REPROML_CA_CERT") or None,
                        help="CA certificate(s) to trust for an https:// server (PEM), instead of the system's roots "
                        "(default: $REPROML_CA_CERT)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only errors")
    args = parser.parse_args(argv)
    if not args.server:
        parser.error("no server given: --server URL, or set REPROML_SERVER")
    side = f"{args.experiment} / {args.variant}"
    note = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    wanted, skipped, recorded = [], [], 0
    try:
        client = Client(args.server, _token(args), ca_cert=args.ca_cert, cache=DataCache.from_env())
        experiment = client.experiment(args.experiment)
        wanted = args.runs if args.runs is not None else list(range(experiment["runs"]))
        done = {r["run"] for r in client.runs(args.experiment, args.variant)}
        skipped = [run for run in wanted if run in done]
        todo = [run for run in wanted if run not in done]
        if skipped:
            note(f"{side}: {len(skipped)} run(s) already recorded; skipping them")
        for run in todo:
            started = time.time()
            try:
                result = train_run(client, experiment, run, args.threads, args.device, not args.no_determinism)
                client.post_result(args.experiment, args.variant, run, result)
            except Exception as error:
                _report_failure(client, args.experiment, args.variant, run, error)
                raise
            recorded += 1
            m = result["metrics"]
            # The same line as `reproml run` off a terminal, with the
            # artifact: a study's log holds several sides' runs.
            note(f"{side}: run {run} recorded ({recorded}/{len(todo)}): seed {result['seed']}, "
                 f"accuracy {m['accuracy']:.4f}, {time.time() - started:.1f} s ({result['artifact']['name']})")
    except KeyboardInterrupt:
        counted = f"{len(skipped) + recorded}/{len(wanted)} runs recorded; " if wanted else ""
        print(f"interrupted: {counted}run the same command again to resume", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
