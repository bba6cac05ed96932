"""docs/protocol.md sections 1-5 in Python: seeds, ChaCha20 streams, draws,
permutations, epoch orders and dropout masks, vectorised with NumPy so that
initialising a 15.5-million-parameter model takes seconds, not minutes."""

from __future__ import annotations

import hashlib
import struct

import numpy as np

_CONSTANTS = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], dtype=np.uint32)


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def _u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def stream_key(seed: int, purpose: str, epoch: int = 0, step: int = 0) -> bytes:
    """SHA-256 of the canonical encoding of (seed, purpose, epoch, step)."""
    return hashlib.sha256(_str("reproml/stream/v1") + _u64(seed) + _str(purpose) + _u64(epoch) + _u64(step)).digest()


def _chacha20(state: np.ndarray) -> np.ndarray:
    """The ChaCha20 block function on every row of `state` ([blocks, 16]
    words: constants, key, counter, nonce) at once.

    Worked on transposed, [16, blocks]: each of the sixteen words of every
    block is then one contiguous array, and every step below one in-place
    NumPy operation over it (a word of every block was a strided column,
    20 times slower for a large model's initialisation)."""
    x = state.T.copy()  # always a copy: `state` is added back at the end
    spare = np.empty_like(x[0])

    def rotate(v: np.ndarray, n: int) -> None:
        np.right_shift(v, np.uint32(32 - n), out=spare)
        np.left_shift(v, np.uint32(n), out=v)
        np.bitwise_or(v, spare, out=v)

    def quarter(a: int, b: int, c: int, d: int) -> None:
        xa, xb, xc, xd = x[a], x[b], x[c], x[d]
        # u += v; w ^= u; w <<<= n, four times (RFC 8439, 2.1).
        for u, v, w, n in ((xa, xb, xd, 16), (xc, xd, xb, 12), (xa, xb, xd, 8), (xc, xd, xb, 7)):
            np.add(u, v, out=u)
            np.bitwise_xor(w, u, out=w)
            rotate(w, n)

    for _ in range(10):
        quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
        quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
    np.add(x, state.T, out=x)
    return np.ascontiguousarray(x.T)


def _state(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Block states for row-wise keys ([blocks, 8] words) and counters."""
    state = np.zeros((len(counters), 16), dtype=np.uint32)
    state[:, 0:4] = _CONSTANTS
    state[:, 4:12] = keys
    state[:, 12] = (counters & 0xFFFFFFFF).astype(np.uint32)
    state[:, 13] = (counters >> np.uint64(32)).astype(np.uint32)
    return state


def _blocks(key: bytes, first: int, count: int) -> np.ndarray:
    """`count` ChaCha20 blocks from block `first`, as 16 words each."""
    counters = np.arange(first, first + count, dtype=np.uint64)
    keys = np.broadcast_to(np.frombuffer(key, dtype="<u4"), (count, 8))
    return _chacha20(_state(keys, counters))


def first_words_of_each(keys: list, words: list) -> list:
    """The first `words[i]` keystream words of stream `keys[i]`, all in one
    vectorised pass: NumPy's cost per call, not per block, dominates small
    streams, so many streams are cheaper together."""
    blocks = [(w + 15) // 16 for w in words]
    key_words = np.frombuffer(b"".join(keys), dtype="<u4").reshape(len(keys), 8)
    counters = np.concatenate([np.arange(b, dtype=np.uint64) for b in blocks])
    flat = _chacha20(_state(np.repeat(key_words, blocks, axis=0), counters)).reshape(-1)
    out, offset = [], 0
    for b, w in zip(blocks, words):
        out.append(flat[offset * 16 : offset * 16 + w])
        offset += b
    return out


def u64_of(words: np.ndarray) -> np.ndarray:
    """Pairs of words as u64, low word first (§2)."""
    w = words.astype(np.uint64)
    return w[0::2] | (w[1::2] << np.uint64(32))


def unit_of(u64: np.ndarray) -> np.ndarray:
    """Doubles in [0, 1): (u64 >> 11) · 2⁻⁵³ (§3)."""
    return (u64 >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normal_of(unit: np.ndarray) -> np.ndarray:
    """Box-Muller, cosine branch, from pairs of unit doubles (§3)."""
    return np.sqrt(-2.0 * np.log(1.0 - unit[0::2])) * np.cos(2.0 * np.pi * unit[1::2])


def _acceptance_limit(bounds: np.ndarray) -> np.ndarray:
    """The largest candidate `below(n)` accepts, per bound n:
    2**64 - 1 - (2**64 mod n), with 2**64 mod n computed without 128-bit
    arithmetic, as the Rust engine does."""
    top = np.uint64(2**64 - 1)
    return top - (top % bounds + np.uint64(1)) % bounds


class Stream:
    """A stream's keystream words, read in order."""

    def __init__(self, seed: int, purpose: str, epoch: int = 0, step: int = 0) -> None:
        self.key = stream_key(seed, purpose, epoch, step)
        self.word = 0  # words consumed

    @classmethod
    def from_key(cls, key: bytes) -> "Stream":
        """The stream of a key computed already (`stream_key`)."""
        stream = cls.__new__(cls)
        stream.key, stream.word = key, 0
        return stream

    def words(self, n: int) -> np.ndarray:
        """The next `n` 32-bit words."""
        first_block, offset = divmod(self.word, 16)
        count = (offset + n + 15) // 16
        out = _blocks(self.key, first_block, max(count, 1)).reshape(-1)[offset : offset + n]
        self.word += n
        return out

    def u64(self, n: int) -> np.ndarray:
        return u64_of(self.words(2 * n))

    def unit_f64(self, n: int) -> np.ndarray:
        return unit_of(self.u64(n))

    def standard_normal(self, n: int) -> np.ndarray:
        return normal_of(self.unit_f64(2 * n))

    def below(self, n: int) -> int:
        """A uniform integer in [0, n), by rejection (docs/protocol.md §3)."""
        return int(self.below_many(np.array([n], dtype=np.uint64))[0])

    def below_many(self, bounds: np.ndarray) -> np.ndarray:
        """`below(b)` for each bound in turn, drawing exactly the words the
        draws one by one would: a batch of candidates is drawn at once, and
        after a rejected candidate (probability below n / 2**64 per draw) the
        stream is rewound to just past it and the rest drawn again."""
        bounds = np.asarray(bounds, dtype=np.uint64)
        if bounds.size and int(bounds.min()) == 0:
            raise ValueError("below(0): the range is empty")
        out = np.empty(bounds.size, dtype=np.uint64)
        done = 0
        while done < bounds.size:
            rest = bounds[done:]
            start = self.word
            x = self.u64(rest.size)
            ok = x <= _acceptance_limit(rest)
            if ok.all():
                out[done:] = x % rest
                break
            k = int(np.argmin(ok))  # the first rejected candidate
            out[done : done + k] = x[:k] % rest[:k]
            self.word = start + 2 * (k + 1)
            done += k
        return out

    def permutation(self, n: int) -> list:
        """Fisher-Yates from the top (§4): swap item i with item below(i+1)
        for i = n-1 … 1. The draws come in one vectorised batch; only the
        swaps, which depend on each other, run one by one."""
        a = list(range(n))
        if n < 2:
            return a
        picks = self.below_many(np.arange(n, 1, -1, dtype=np.uint64)).tolist()
        for i, j in zip(range(n - 1, 0, -1), picks):
            a[i], a[j] = a[j], a[i]
        return a


def epoch_order(length: int, seed: int, epoch: int) -> list:
    """Positions in the order a run with `seed` visits its training split in `epoch`."""
    return Stream(seed, "epoch-order", epoch, 0).permutation(length)


#: Blocks drawn per batch of epochs: batching pays while NumPy's cost per
#: call dominates (small splits); beyond this, one epoch at a time is as fast.
_BATCH_BLOCKS = 8192


def epoch_orders(length: int, seed: int, epochs) -> list:
    """`[epoch_order(length, seed, e) for e in epochs]`, with the draws of
    many epochs made in one vectorised pass. An epoch with a rejected
    candidate (chance below length / 2**64 per draw) is drawn again the
    one-by-one way, so the result is always the protocol's."""
    epochs = list(epochs)
    if length < 2:
        return [list(range(length)) for _ in epochs]
    bounds = np.arange(length, 1, -1, dtype=np.uint64)
    limit = _acceptance_limit(bounds)
    per_epoch = (2 * (length - 1) + 15) // 16
    group = max(1, _BATCH_BLOCKS // per_epoch)
    orders = []
    for start in range(0, len(epochs), group):
        chunk = epochs[start : start + group]
        keys = [stream_key(seed, "epoch-order", e, 0) for e in chunk]
        candidates = np.stack([u64_of(w) for w in first_words_of_each(keys, [2 * (length - 1)] * len(keys))])
        accepted = (candidates <= limit).all(axis=1)
        picks = candidates % bounds
        for row, epoch in enumerate(chunk):
            if not accepted[row]:
                orders.append(epoch_order(length, seed, epoch))
                continue
            a = list(range(length))
            for i, j in zip(range(length - 1, 0, -1), picks[row].tolist()):
                a[i], a[j] = a[j], a[i]
            orders.append(a)
    return orders


def dropout_threshold(p: float) -> int:
    """The smallest word that keeps a unit: floor(p * 2**32).

    int() truncates the double product exactly as Rust's `as u64` does, so a
    p whose product is not an integer (0.1) gets the same threshold."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability {p} is outside [0, 1); use a p such that some units are kept")
    return int(p * 4294967296.0)


def dropout_scale(p: float) -> np.float32:
    """The factor for kept units: 1/(1-p) in double precision, then rounded
    to float32, so the product with an activation matches the Rust engine."""
    dropout_threshold(p)  # validates p
    return np.float32(1.0 / (1.0 - p))


def dropout_keep(stream: Stream, count: int, p: float) -> np.ndarray:
    """Keep flags of one dropout layer over `count` units in row-major order;
    draws exactly `count` words, so the next layer continues the stream."""
    threshold = dropout_threshold(p)
    # Compare as uint64: the threshold always fits (p < 1), and no NumPy
    # version can then wrap or reject the Python int.
    return stream.words(count).astype(np.uint64) >= np.uint64(threshold)


def dropout_mask(stream: Stream, count: int, p: float) -> np.ndarray:
    """The float32 inverted-dropout mask: dropout_scale(p) where kept, 0 elsewhere."""
    keep = dropout_keep(stream, count, p)
    return np.where(keep, dropout_scale(p), np.float32(0.0)).astype(np.float32)
