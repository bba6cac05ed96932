#!/usr/bin/env python3
"""Independent implementation of docs/protocol.md sections 1-5 and 8, used to
make the test vectors the Rust tests check (protocol-vectors.json).

`split_streams` (section 8) holds whole split streams as hex: one per
version, with the records of `records` ([index, label, pixels]) in chunks
of `chunk` records; `header` is the JSON object as encoded in the stream.

`dropout_masks` (section 5, "Dropout masks") holds one entry per batch
stream: {"seed", "epoch", "step", "layers": [{"p", "count", "threshold",
"scale", "mask"}, ...]}. The layers draw from the one stream
(seed, "dropout", epoch, step) in list order, each continuing where the
previous one stopped; "mask" is the layer's keep flags (1 kept, 0 dropped)
in draw order, "threshold" is floor(p * 2^32) and "scale" the float32
1/(1 - p) written as the double it equals.

Standard library only, but for the xxhash package (the xxHash C library)
for version 3's checksums; written from the document rather than from the
Rust code, so that a disagreement means the document or the code is wrong.
Run: python3 make_vectors.py > protocol-vectors.json
"""

import hashlib
import json
import math
import struct
import sys

MASK32 = 0xFFFFFFFF


# --- section 1: canonical encoding -----------------------------------------

def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def enc_u64(n):
    return struct.pack("<Q", n)


# --- section 2: seeds ------------------------------------------------------

def experiment_seed(master, ident, i):
    d = hashlib.sha256(enc_str("reproml/seed/v1") + enc_u64(master) + enc_str(ident) + enc_u64(i)).digest()
    return struct.unpack("<Q", d[:8])[0] & ((1 << 53) - 1)


def run_seed(master, ident, policy, run):
    return experiment_seed(master, ident, run if policy == "per-run" else 0)


# --- section 3: streams ----------------------------------------------------

def stream_key(seed, purpose, epoch, step):
    return hashlib.sha256(
        enc_str("reproml/stream/v1") + enc_u64(seed) + enc_str(purpose) + enc_u64(epoch) + enc_u64(step)
    ).digest()


def _rotl(v, c):
    return ((v << c) & MASK32) | (v >> (32 - c))


def _quarter(x, a, b, c, d):
    x[a] = (x[a] + x[b]) & MASK32; x[d] = _rotl(x[d] ^ x[a], 16)
    x[c] = (x[c] + x[d]) & MASK32; x[b] = _rotl(x[b] ^ x[c], 12)
    x[a] = (x[a] + x[b]) & MASK32; x[d] = _rotl(x[d] ^ x[a], 8)
    x[c] = (x[c] + x[d]) & MASK32; x[b] = _rotl(x[b] ^ x[c], 7)


def chacha20_block(key, counter, nonce12):
    """RFC 8439 section 2.3: 16 output words for a 32-bit counter and 96-bit nonce."""
    state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    state += list(struct.unpack("<8I", key))
    state += [counter & MASK32] + list(struct.unpack("<3I", nonce12))
    x = state[:]
    for _ in range(10):
        _quarter(x, 0, 4, 8, 12); _quarter(x, 1, 5, 9, 13)
        _quarter(x, 2, 6, 10, 14); _quarter(x, 3, 7, 11, 15)
        _quarter(x, 0, 5, 10, 15); _quarter(x, 1, 6, 11, 12)
        _quarter(x, 2, 7, 8, 13); _quarter(x, 3, 4, 9, 14)
    return [(a + b) & MASK32 for a, b in zip(x, state)]


def _check_rfc8439():
    # RFC 8439 section 2.3.2 test vector.
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a00000000")
    out = struct.pack("<16I", *chacha20_block(key, 1, nonce))
    assert out[:16].hex() == "10f1e7e4d13b5915500fdd1fa32071c4", out[:16].hex()


class Stream:
    def __init__(self, seed, purpose, epoch=0, step=0):
        self.key = stream_key(seed, purpose, epoch, step)
        self.block = 0
        self.words = []

    def next_u32(self):
        if not self.words:
            self.words = chacha20_block(self.key, self.block, bytes(12))
            self.block += 1
        return self.words.pop(0)

    def next_u64(self):
        lo = self.next_u32()
        hi = self.next_u32()
        return lo | (hi << 32)

    def below(self, n):
        limit = 2**64 - (2**64 % n)
        while True:
            x = self.next_u64()
            if x < limit:
                return x % n

    def unit_f64(self):
        return (self.next_u64() >> 11) * 2.0**-53

    def standard_normal(self):
        u1 = 1.0 - self.unit_f64()
        u2 = self.unit_f64()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def permutation(self, n):
        a = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            a[i], a[j] = a[j], a[i]
        return a


# --- sections 4 and 5: splits and epoch order -------------------------------

def split_by_fractions(n, train, test, validation, seed, caps):
    assert abs(train + test + validation - 1.0) <= 1e-9
    n_test = math.floor(n * test + 0.5)
    n_val = math.floor(n * validation + 0.5)
    pi = Stream(seed, "split").permutation(n)
    parts = {"test": pi[:n_test], "validation": pi[n_test:n_test + n_val], "train": pi[n_test + n_val:]}
    return {name: sorted(part[:caps.get(name, len(part))]) for name, part in parts.items()}


def split_official(n_train, n_test, seed, caps):
    def part(n, step, cap):
        if cap is None or cap >= n:
            return list(range(n))
        return sorted(Stream(seed, "split", 0, step).permutation(n)[:cap])
    return {"train": part(n_train, 1, caps.get("train")), "test": part(n_test, 2, caps.get("test")), "validation": []}


def epoch_order(length, seed, epoch):
    return Stream(seed, "epoch-order", epoch, 0).permutation(length)


# --- section 5: dropout masks ---------------------------------------------

def to_f32(x):
    # struct's "f" rounds a double to the nearest float32, as a cast does.
    return struct.unpack("<f", struct.pack("<f", x))[0]


def dropout_layer(stream, p, count):
    threshold = int(p * 4294967296.0)  # int() truncates, like floor for p >= 0
    mask = [1 if stream.next_u32() >= threshold else 0 for _ in range(count)]
    return {"p": p, "count": count, "threshold": threshold, "scale": to_f32(1.0 / (1.0 - p)), "mask": mask}


def dropout_masks(seed, epoch, step, layers):
    stream = Stream(seed, "dropout", epoch, step)
    return {"seed": seed, "epoch": epoch, "step": step,
            "layers": [dropout_layer(stream, p, count) for p, count in layers]}


# --- section 8: split streams ---------------------------------------------

def split_stream(version, header, records, chunk):
    magic = b"RPMLSPL%d" % version
    head_json = json.dumps(header, separators=(",", ":")).encode()
    head = magic + struct.pack("<I", len(head_json)) + head_json
    if version == 3:
        import xxhash  # noqa: PLC0415 (only version 3 needs it)

        whole, checksum = xxhash.xxh3_128(head), xxhash.xxh3_128_digest
    else:
        whole, checksum = hashlib.sha256(head if version == 2 else b""), lambda b: hashlib.sha256(b).digest()
    out = bytearray(head)
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        body = b"".join(struct.pack("<I", i) + bytes([label]) + bytes(pixels) for i, label, pixels in part)
        digest = checksum(body)
        whole.update(digest)
        out += struct.pack("<I", len(part)) + body + digest
    out += struct.pack("<I", 0) + whole.digest()
    return bytes(out)


def main():
    _check_rfc8439()
    v = {"note": "made by make_vectors.py from docs/protocol.md; do not edit by hand"}
    v["experiment_seeds"] = [
        {"master": m, "experiment": e, "index": i, "seed": experiment_seed(m, e, i)}
        for m, e, i in [(0, "a", 0), (42, "demo", 0), (42, "demo", 1), (42, "demo", 29),
                        (2**64 - 1, "conv2d-grad_36832.v2", 7), (123456789, "x" * 128, 3)]
    ]
    v["run_seeds"] = [
        {"master": 42, "experiment": "demo", "policy": p, "run": r, "seed": run_seed(42, "demo", p, r)}
        for p in ("per-run", "fixed") for r in (0, 1, 5)
    ]
    streams = []
    for seed, purpose, epoch, step in [(0, "split", 0, 0), (3909427075885411, "epoch-order", 4, 0),
                                       (2**53 - 1, "weight-init", 0, 17), (7, "dropout", 2, 3)]:
        s = Stream(seed, purpose, epoch, step)
        words = [s.next_u32() for _ in range(40)]  # crosses two block boundaries
        s = Stream(seed, purpose, epoch, step)
        u64s = [s.next_u64() for _ in range(5)]
        s = Stream(seed, purpose, epoch, step)
        below = [[n, s.below(n)] for n in (1, 2, 3, 10, 1000, 2**32 + 1, 2**63 + 1, 2**63 + 1, 2**63 + 1, 2**64 - 1)]
        s = Stream(seed, purpose, epoch, step)
        units = [s.unit_f64() for _ in range(4)]
        s = Stream(seed, purpose, epoch, step)
        normals = [s.standard_normal() for _ in range(6)]
        streams.append({
            "seed": seed, "purpose": purpose, "epoch": epoch, "step": step,
            "key": s.key.hex(), "words": words, "u64": u64s, "below": below,
            "unit_f64": units, "standard_normal": normals,
            "permutation_10": Stream(seed, purpose, epoch, step).permutation(10),
        })
    v["streams"] = streams
    v["splits"] = [
        {"method": "fractions", "examples": n, "train": tr, "test": te, "validation": va, "seed": seed, "caps": caps,
         "expected": split_by_fractions(n, tr, te, va, seed, caps)}
        for n, tr, te, va, seed, caps in [(20, 0.8, 0.2, 0.0, 1, {}), (37, 0.7, 0.2, 0.1, 99, {}),
                                          (50, 0.6, 0.3, 0.1, 2**53 - 1, {"train": 7, "test": 4})]
    ] + [
        {"method": "official", "train_examples": 30, "test_examples": 12, "seed": 5, "caps": caps,
         "expected": split_official(30, 12, 5, caps)}
        for caps in ({}, {"train": 8, "test": 5})
    ]
    v["epoch_orders"] = [
        {"length": ln, "seed": seed, "epoch": e, "order": epoch_order(ln, seed, e)}
        for ln, seed, e in [(12, 1, 0), (12, 1, 1), (25, 3909427075885411, 9)]
    ]
    v["dropout_masks"] = [
        dropout_masks(seed, epoch, step, layers)
        for seed, epoch, step, layers in [
            (3909427075885411, 0, 0, [(0.5, 64)]),
            (7, 2, 3, [(0.25, 48)]),  # the words of the "streams" entry (7, "dropout", 2, 3)
            (2**53 - 1, 5, 17, [(0.1, 16)]),  # 0.1 * 2^32 is not an integer: truncated
            (42, 1, 4, [(0.5, 24), (0.25, 40)]),  # the second layer starts mid-block, at word 24
        ]
    ]
    header = {"experiment": "vectors", "run": 2, "split": "test", "seed": 3909427075885411, "examples": 5,
              "shape": {"channels": 1, "height": 2, "width": 3}, "classes": 3,
              "normalization": {"max_value": 255, "mean": [0.25], "std": [0.5]},
              "dataset_digest": hashlib.sha256(b"vectors").hexdigest(), "order": "index"}
    records = [[i * 2, i % 3, [(7 * i + k) % 256 for k in range(6)]] for i in range(5)]
    v["split_streams"] = [
        {"version": version, "chunk": 2, "header": header, "records": records,
         "stream": split_stream(version, header, records, 2).hex()}
        for version in (1, 2, 3)
    ]
    json.dump(v, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
