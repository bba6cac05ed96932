"""The Python streams against the protocol's test vectors."""

import json
import pathlib

import pytest

np = pytest.importorskip("numpy")

from reproml.streams import Stream, epoch_order  # noqa: E402

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
