"""The PyTorch runner against the real server: determinism, seeds, compare."""

import json
import subprocess

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch tests need torch (apt-get install python3-torch)")

from reproml import Client  # noqa: E402
from reproml.models import StreamDropout, build  # noqa: E402
from reproml.run import main, scores, train_run  # noqa: E402
from reproml.streams import Stream, dropout_mask  # noqa: E402
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
    e = report["comparisons"][0]
    assert (e["baseline"], e["treatment"], e["n"]) == ("pytorch", "burn", 3)
    assert e["identical_pairs"] == 0, "two engines do not train bit for bit alike"


def _vgg_x_and_batch():
    # torch's default initialisation is enough here (and far quicker than the
    # 15.5 million stream draws of initialise); only the masks are under test.
    torch.manual_seed(0)
    model = build("vgg-x", (3, 32, 32), 10)
    x = torch.from_numpy(Stream(1, "test-input").standard_normal(2 * 3 * 32 * 32).astype("float32")).reshape(2, 3, 32, 32)
    return model, x


def test_vgg_x_dropout_comes_from_the_batch_stream_not_from_torch():
    model, x = _vgg_x_and_batch()
    model.train()
    with torch.no_grad():
        torch.manual_seed(1)
        first_stream = Stream(99, "dropout", 3, 7)
        first = model(x, first_stream)
        torch.manual_seed(2)  # a different global generator must change nothing
        again = model(x, Stream(99, "dropout", 3, 7))
        other_step = model(x, Stream(99, "dropout", 3, 8))
        evaluation_like = model.eval()(x)
    assert torch.equal(first, again)
    assert not torch.equal(first, other_step)
    assert not torch.equal(first, evaluation_like)
    # Both dropout layers (2 examples x 1024 units each) read the one stream.
    assert first_stream.word == 2 * (2 * 1024)


def test_vgg_x_evaluation_has_no_dropout():
    model, x = _vgg_x_and_batch()
    model.eval()
    stream = Stream(99, "dropout", 0, 0)
    with torch.no_grad():
        without = model(x)
        with_stream = model(x, stream)
        # p = 0 keeps every unit with scale 1: the network without dropout.
        for module in model.modules():
            if isinstance(module, StreamDropout):
                module.p = 0.0
        no_dropout = model.train()(x, Stream(99, "dropout", 0, 0))
    assert torch.equal(without, with_stream)
    assert torch.equal(without, no_dropout)
    assert stream.word == 0, "evaluation draws no mask"


def test_stream_dropout_multiplies_by_the_protocol_mask_and_its_gradient_follows():
    layer = StreamDropout(0.25).train()
    x = torch.arange(1.0, 3 * 16 + 1).reshape(3, 16).requires_grad_()
    y = layer(x, Stream(7, "dropout", 2, 3))
    mask = torch.from_numpy(dropout_mask(Stream(7, "dropout", 2, 3), 3 * 16, 0.25).reshape(3, 16))
    assert y.dtype == torch.float32 and torch.equal(y, x.detach() * mask)
    y.sum().backward()
    assert torch.equal(x.grad, mask)


def test_training_through_dropout_without_a_stream_is_refused():
    layer = StreamDropout(0.5).train()
    with pytest.raises(ValueError, match="stream"):
        layer(torch.ones(2, 4), None)
    with pytest.raises(ValueError):
        StreamDropout(1.0)


def test_the_runner_sets_the_hash_seed_and_names_the_torch_build(server):  # noqa: F811
    import os
    import sys
    client = Client(server)
    client.create_experiment(dict(SPEC, id="hash", epochs=1, runs=1))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    subprocess.run([sys.executable, "-m", "reproml.run", "--server", server, "--experiment", "hash", "--variant", "v"],
                   check=True, capture_output=True, env=env)
    run = client.runs("hash", "v")[0]
    assert run["fingerprint"]["env.PYTHONHASHSEED"] == "0", "started again with a fixed hash seed"
    assert run["fingerprint"]["tf32"] == "False"
    name = run["artifact"]["name"]
    assert name.startswith(f"reproml-python-torch-{torch.__version__}")
    assert run["fingerprint"]["torch_package"] in name, "the package and its version name the build"


def test_a_study_of_two_python_environments_reports_the_thread_count(server, tmp_path):  # noqa: F811
    """Two sides run by the Python client: the same PyTorch at 1 and at 2
    threads. The thread count must show as a runtime difference, and the
    verdict must never be "not triggered" when the runs differ."""
    import sys
    import pathlib
    client_dir = pathlib.Path(__file__).resolve().parents[1]
    study = tmp_path / "threads.toml"
    study.write_text(
        'name = "thr"\nruns = 3\nsides = ["one", "two"]\n'
        '[base]\nmodel = "lenet5"\nchallenge = "digits"\nepochs = 1\n'
        '[[bug]]\nid = "lenet"\n[bug.sides]\n'
        f'one = {{ kind = "python", python = "{sys.executable}", threads = 1, env = {{ PYTHONPATH = "{client_dir}" }} }}\n'
        f'two = {{ kind = "python", python = "{sys.executable}", threads = 2, env = {{ PYTHONPATH = "{client_dir}" }} }}\n')
    out = subprocess.run([BINARY, "study", "run", str(study), "--server", server, "--out", str(tmp_path / "report")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "thr-lenet / two: trained by PyTorch through" in out.stderr, out.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    c = report["comparisons"][0]
    assert (c["baseline"], c["treatment"]) == ("one", "two")
    differs = {d["key"]: (d["baseline"], d["treatment"]) for d in c["fingerprint_differences"]}
    assert differs.get("threads") == (["1"], ["2"]), differs
    # PyTorch at 2 threads does not repeat its runs at 1 thread.
    assert c["identical_pairs"] < c["pairs"], c
    assert c["verdict"] != "not-triggered"
    assert "possible confound" in out.stdout, out.stdout


def test_initial_weights_drawn_in_one_pass_equal_those_drawn_parameter_by_parameter(monkeypatch):
    import reproml.models as models
    batched = build("lenet5", (1, 8, 8), 10)
    batched.initialise(123)
    monkeypatch.setattr(models, "_BATCHED_INIT_WORDS", 0)
    single = build("lenet5", (1, 8, 8), 10)
    single.initialise(123)
    for (name, a), (_, b) in zip(batched.named_parameters(), single.named_parameters()):
        assert torch.equal(a, b), name
    assert any(p.abs().sum() > 0 for p in single.parameters())


def test_the_runner_keeps_the_cli_conventions(server, monkeypatch, capsys):  # noqa: F811
    """REPROML_SERVER for --server, one line per recorded run on stderr (as
    `reproml run` off a terminal), nothing with --quiet, and a resume that
    says what it skips."""
    client = Client(server)
    client.create_experiment({**SPEC, "id": "conventions", "epochs": 1})
    monkeypatch.setenv("REPROML_SERVER", server)
    assert main(["--experiment", "conventions", "--variant", "v", "--runs", "0", "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert (quiet.out, quiet.err) == ("", "")
    assert main(["--experiment", "conventions", "--variant", "v", "--runs", "0-1"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "conventions / v: 1 run(s) already recorded; skipping them"
    assert lines[1].startswith("conventions / v: run 1 recorded (1/1): seed "), lines
    assert ", accuracy 0." in lines[1] and " s (reproml-python-torch-" in lines[1], lines
    monkeypatch.delenv("REPROML_SERVER")
    with pytest.raises(SystemExit) as usage:
        main(["--experiment", "conventions", "--variant", "v"])
    assert usage.value.code == 2
    assert "REPROML_SERVER" in capsys.readouterr().err


def test_a_run_that_fails_is_reported_to_the_server_and_the_error_raised(server, monkeypatch):  # noqa: F811
    """The dashboard and `reproml study status` show a run that failed in
    PyTorch, with the exception and where it was raised."""
    import reproml.run as runner

    client = Client(server)
    client.create_experiment({**SPEC, "id": "failing", "epochs": 1})

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(runner, "train_run", broken)
    with pytest.raises(RuntimeError):
        main(["--server", server, "--experiment", "failing", "--variant", "v", "--runs", "1", "--quiet"])
    [failure] = client.failures("failing")
    assert (failure["variant"], failure["run"], failure["reports"], failure["recorded"]) == ("v", 1, 1, False)
    assert failure["last_error"].startswith("RuntimeError: CUDA error: out of memory\n"), failure
    assert "in broken" in failure["last_error"], failure
