"""The Python streams against the protocol's test vectors."""

import json
import pathlib

import numpy as np
import pytest

np = pytest.importorskip("numpy")

from reproml.streams import Stream, dropout_keep, dropout_mask, dropout_scale, dropout_threshold, epoch_order  # noqa: E402,E501

VECTORS = json.loads((pathlib.Path(__file__).resolve().parents[3]
                      / "crates/reproml-core/tests/vectors/protocol-vectors.json").read_text())


def test_streams_match_the_vectors():
    for s in VECTORS["streams"]:
        new = lambda: Stream(s["seed"], s["purpose"], s["epoch"], s["step"])  # noqa: E731
        assert [int(w) for w in new().words(40)] == s["words"]
        assert [int(w) for w in new().u64(5)] == s["u64"]
        assert [float(u) for u in new().unit_f64(4)] == s["unit_f64"]
        # ln and cos may differ in the last bit between libraries (docs/protocol.md).
        assert np.allclose(new().standard_normal(6), s["standard_normal"], rtol=4e-16, atol=0)
        assert new().permutation(10) == s["permutation_10"]
    for e in VECTORS["epoch_orders"]:
        assert epoch_order(e["length"], e["seed"], e["epoch"]) == e["order"]


def test_dropout_masks_match_the_vectors():
    assert VECTORS["dropout_masks"], "the vectors hold dropout masks"
    for entry in VECTORS["dropout_masks"]:
        # One stream per batch, read in turn by every layer of the entry.
        stream = Stream(entry["seed"], "dropout", entry["epoch"], entry["step"])
        for layer in entry["layers"]:
            p, count = layer["p"], layer["count"]
            assert dropout_threshold(p) == layer["threshold"]
            assert dropout_scale(p) == np.float32(layer["scale"])
            mask = dropout_mask(stream, count, p)
            assert mask.dtype == np.float32 and mask.shape == (count,)
            assert [int(k) for k in mask != 0] == layer["mask"]
            assert set(mask[mask != 0].tolist()) <= {float(np.float32(layer["scale"]))}
        # The keep flags alone read the same words.
        again = Stream(entry["seed"], "dropout", entry["epoch"], entry["step"])
        flags = [[int(k) for k in dropout_keep(again, layer["count"], layer["p"])] for layer in entry["layers"]]
        assert flags == [layer["mask"] for layer in entry["layers"]]


def test_a_second_dropout_layer_continues_the_stream_rather_than_restarting_it():
    entry = next(e for e in VECTORS["dropout_masks"] if len(e["layers"]) > 1)
    second = entry["layers"][1]
    fresh = Stream(entry["seed"], "dropout", entry["epoch"], entry["step"])
    restarted = [int(k) for k in dropout_keep(fresh, second["count"], second["p"])]
    assert restarted != second["mask"], "the vector tells continuing from restarting"


def test_dropout_refuses_probabilities_outside_0_1():
    for p in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError):
            dropout_threshold(p)
    assert dropout_threshold(0.0) == 0


def _below_one_by_one(stream: Stream, n: int) -> int:
    """The protocol's rejection sampling, one candidate at a time."""
    limit = 2**64 - (2**64 % n)
    while True:
        x = int(stream.u64(1)[0])
        if x < limit:
            return x % n


def test_batched_draws_equal_one_by_one_draws_even_with_rejections():
    # Bounds just above 2**63 reject about half the candidates, so the
    # batch's rewind after a rejection is exercised many times.
    bounds = [2**63 + 1, 7, 2**63 + 12345, 2**32, 1, 3 * 2**61] * 20
    batched, single = Stream(5, "epoch-order", 1, 0), Stream(5, "epoch-order", 1, 0)
    got = batched.below_many(np.array(bounds, dtype=np.uint64)).tolist()
    want = [_below_one_by_one(single, b) for b in bounds]
    assert got == want
    assert batched.word == single.word, "both consumed the same words"
    # And the next draw continues where the scalar one would.
    assert batched.u64(3).tolist() == single.u64(3).tolist()


def test_an_epoch_order_of_60000_is_a_permutation():
    order = epoch_order(60_000, 42, 3)
    assert sorted(order) == list(range(60_000))
    assert order != list(range(60_000))


def test_run_selections_read_as_the_rust_cli_reads_them():
    pytest.importorskip("torch")
    from reproml.run import parse_runs
    cases = json.loads((pathlib.Path(__file__).resolve().parents[3] / "crates/reproml-core/tests/vectors/run-selections.json")
                       .read_text())["cases"]
    for case in cases:
        if case["runs"] is None:
            with pytest.raises(ValueError):
                parse_runs(case["text"])
        else:
            assert parse_runs(case["text"]) == case["runs"], case["text"]


def test_epoch_orders_of_many_epochs_at_once_equal_one_at_a_time():
    from reproml.streams import epoch_orders
    for length in [0, 1, 2, 17, 1257]:
        assert epoch_orders(length, 9, range(5)) == [epoch_order(length, 9, e) for e in range(5)]
    for e in VECTORS["epoch_orders"]:
        assert epoch_orders(e["length"], e["seed"], [e["epoch"]]) == [e["order"]]
