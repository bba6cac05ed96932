"""The Python streams against the protocol's test vectors."""

import json
import pathlib

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
