"""The PyTorch runner against the real server: determinism, seeds, compare."""

import json
import subprocess

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch tests need torch (apt-get install python3-torch)")

from reproml import Client  # noqa: E402
from reproml.run import main, scores, train_run  # noqa: E402
from test_client import BINARY, server  # noqa: E402,F401

SPEC = {"id": "pt", "model": "lenet5", "challenge": "digits", "epochs": 2, "runs": 3,
        "optimizer": {"lr": 0.05, "momentum": 0.5}}


def test_the_same_seed_gives_identical_results_and_other_seeds_do_not(server):  # noqa: F811
    client = Client(server)
    experiment = client.create_experiment(SPEC)
    a = train_run(client, experiment, 0)
    b = train_run(client, experiment, 0)
    assert a["epochs"] == b["epochs"], "metrics and digests identical, epoch by epoch"
    c = train_run(client, experiment, 1)
    assert c["epochs"][-1]["digest"] != a["epochs"][-1]["digest"]
    assert a["fingerprint"]["deterministic"] == "True"
    assert a["metrics"]["accuracy"] > 0.1


def test_metrics_follow_scikit_learn():
    import numpy as np
    # truth 0 0 1 1 2 2, predictions 0 1 1 1 0 2: precision 1/2, 2/3, 1; recall 1/2, 1, 1/2.
    s = scores(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 0, 2]), 3)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert s["recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_pytorch_results_show_up_in_compare_next_to_rust_results(server):  # noqa: F811
    client = Client(server)
    client.create_experiment(SPEC)
    assert main(["--server", server, "--experiment", "pt", "--variant", "pytorch"]) == 0
    subprocess.run([BINARY, "run", "--server", server, "--experiment", "pt", "--variant", "burn"], check=True,
                   capture_output=True)
    report = json.loads(subprocess.run(
        [BINARY, "compare", "--server", server, "--variants", "pytorch,burn", "--json"],
        check=True, capture_output=True, text=True).stdout)
    e = report["experiments"][0]
    assert (e["baseline"], e["treatment"], e["n"]) == ("pytorch", "burn", 3)
    assert e["identical_pairs"] == 0, "two engines do not train bit for bit alike"
