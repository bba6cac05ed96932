"""Epoch orders in Python: the batched draws against the one-draw-at-a-time
implementation they replaced, on the same machine in one run.

    PYTHONPATH=clients/python python3 clients/python/benches/streams.py

Prints min / median / max seconds per epoch order. The old implementation
is measured on 1,257 items (digits at a 70 % training split) only: at about 2 ms
a draw it would take minutes on 60,000."""

from __future__ import annotations

import statistics
import sys
import time

from reproml.streams import Stream, epoch_order


def one_by_one_order(length: int, seed: int, epoch: int) -> list:
    """The previous client's epoch order: one ChaCha20 block per draw."""
    stream = Stream(seed, "epoch-order", epoch, 0)

    def below(n: int) -> int:
        limit = 2**64 - (2**64 % n)
        while True:
            x = int(stream.u64(1)[0])
            if x < limit:
                return x % n

    a = list(range(length))
    for i in range(length - 1, 0, -1):
        j = below(i + 1)
        a[i], a[j] = a[j], a[i]
    return a


def timed(f, repeats: int) -> list:
    times = []
    for r in range(repeats):
        started = time.perf_counter()
        f(r)
        times.append(time.perf_counter() - started)
    return times


def show(label: str, times: list) -> float:
    median = statistics.median(times)
    print(f"{label:<44} min {min(times):8.4f} s  median {median:8.4f} s  max {max(times):8.4f} s  ({len(times)} runs)")
    return median


def main() -> int:
    digits = 1257
    assert epoch_order(digits, 7, 1) == one_by_one_order(digits, 7, 1), "both give the protocol's order"
    old = show(f"one draw at a time, {digits} items", timed(lambda r: one_by_one_order(digits, 7, r), 3))
    new = show(f"batched draws, {digits} items", timed(lambda r: epoch_order(digits, 7, r), 21))
    print(f"  speed-up on {digits} items: {old / new:.0f}x")
    show("batched draws, 60,000 items (Fashion-MNIST)", timed(lambda r: epoch_order(60_000, 7, r), 21))
    return 0


if __name__ == "__main__":
    sys.exit(main())
