"""Opening a cached CIFAR-10-sized data set (184 MB) in a new process:
the entry mapped and compared with its check (XXH3-128 of 8 MiB blocks on
every core) against the SHA-256 verification it replaced (also mapped),
alternately, each in a fresh Python process.

    PYTHONPATH=clients/python python3 clients/python/benches/cache.py [--rounds 5]

Prints min / median / max milliseconds of `DataCache.dataset` for each
and the ratio of the medians. Needs the xxhash package."""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import statistics
import struct
import subprocess
import sys
import tempfile

from reproml.cache import CONTENT_MAGIC, DataCache

CHILD = """
import pathlib, sys, time
import reproml.cache
from reproml.cache import DataCache
folder, digest, how = sys.argv[1:4]
if how == "sha256":
    reproml.cache._xxhash = None
cache = DataCache(pathlib.Path(folder))
def no_fetch(digest):
    raise SystemExit("the entry was not used: " + str(cache.stats))
started = time.perf_counter()
data = cache.dataset(no_fetch, digest)
elapsed = time.perf_counter() - started
assert cache.stats["opened"] == 1 and len(data) == 60000, cache.stats
print(elapsed * 1e3)
"""


def cifar_sized_content() -> bytes:
    """60,000 images of 3×32×32 with labels, as a server sends a data set."""
    examples, pixels = 60_000, 3 * 32 * 32
    head = CONTENT_MAGIC + struct.pack("<8I", 3, 32, 32, 10, 255, 50_000, 10_000, examples)
    labels = bytes(i % 10 for i in range(examples))
    return head + labels + os.urandom(examples * pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as folder:
        content = cifar_sized_content()
        digest = hashlib.sha256(content).hexdigest()
        DataCache(pathlib.Path(folder))._store(digest, content)
        del content
        times = {"check": [], "sha256": []}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        for _ in range(rounds):
            for how, found in times.items():
                out = subprocess.run([sys.executable, "-c", CHILD, folder, digest, how],
                                     env=env, capture_output=True, text=True, check=True)
                found.append(float(out.stdout))
    print("| opening a 184 MB entry in a new process | min | median | max |")
    print("|---|---|---|---|")
    for how, label in [("check", "mapped, compared with its check (xxhash, all cores)"),
                       ("sha256", "mapped, SHA-256 verified (hashlib, one core)")]:
        t = times[how]
        print(f"| {label} | {min(t):.1f} ms | {statistics.median(t):.1f} ms | {max(t):.1f} ms |")
    print(f"ratio (SHA-256 / check, medians): {statistics.median(times['sha256']) / statistics.median(times['check']):.1f}")


if __name__ == "__main__":
    main()
