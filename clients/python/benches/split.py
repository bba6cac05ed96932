"""A CIFAR-10-sized training split (50,000 × 3×32×32, 153.8 MB of records)
fetched and verified by the Python client without a data cache, against
the physical limit measured in the same run: the same number of bytes over
a loopback TCP connection from a fixed buffer (in another process) into a
fixed buffer already written (`socket.recv_into`), alternately. Then a new
client's first split, which lands in new memory, against the same copy
into memory allocated inside its timing.

    REPROML_BIN=target/release/reproml PYTHONPATH=clients/python \\
        python3 clients/python/benches/split.py [--rounds 7]

Starts `reproml server` on 127.0.0.1 with a generated data set. Prints
min / median / max milliseconds of each and the ratio of the medians.
Version 3 of the stream needs the xxhash package (else version 2)."""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

import reproml.cache
from reproml import Client

ROOT = pathlib.Path(__file__).resolve().parents[3]

SENDER = """
import socket, sys
total = int(sys.argv[1])
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
block = memoryview(bytes(range(256)) * 4096)
while True:
    conn, _ = listener.accept()
    left = total
    while left:
        left -= conn.send(block[: min(left, len(block))])
    conn.close()
"""


def write_cifar(folder: pathlib.Path) -> None:
    """CIFAR-10's binary format: 5 training batches and a test batch of
    10,000 records (label byte, 3,072 pixel bytes), random pixels."""
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = bytearray(os.urandom(10_000 * 3073))
        records[0::3073] = bytes(i % 10 for i in range(10_000))
        (folder / name).write_bytes(records)


def plain_copy(port: int, size: int, into: Optional[memoryview]) -> float:
    """Seconds from the connection to the last of `size` bytes, into
    `into`, or into memory allocated inside the timing when None."""
    started = time.perf_counter()
    if into is None:
        into = memoryview(bytearray(size))
    with socket.create_connection(("127.0.0.1", port)) as conn:
        got = 0
        while got < len(into):
            n = conn.recv_into(into[got:])
            if not n:
                raise SystemExit("the sender stopped early")
            got += n
    return time.perf_counter() - started


def spread(seconds: list) -> str:
    ms = sorted(s * 1e3 for s in seconds)
    return f"{ms[0]:.0f} ms | {statistics.median(ms):.0f} ms | {ms[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    binary = os.environ.get("REPROML_BIN", str(ROOT / "target" / "release" / "reproml"))
    if not os.path.exists(binary):
        raise SystemExit(f"build the binary first (cargo build --release): {binary} is missing")
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        (folder / "cifar").mkdir()
        print("generating a CIFAR-10-sized data set …", file=sys.stderr)
        write_cifar(folder / "cifar")
        db = str(folder / "bench.db")
        subprocess.run([binary, "data", "import", "cifar-bench", "--format", "cifar10",
                        str(folder / "cifar"), "--db", db], check=True, capture_output=True)
        server = subprocess.Popen([binary, "server", "--listen", "127.0.0.1:0", "--db", db],
                                  stderr=subprocess.PIPE, text=True)
        sender = None
        try:
            url, said = None, []
            while url is None:
                said.append(server.stderr.readline())
                if not said[-1]:
                    raise SystemExit("the server did not start: " + "".join(said))
                url = next((word for word in said[-1].split() if word.startswith("http://")), None)
            # The server logs a line per request: read them, or a full pipe
            # would block it.
            threading.Thread(target=server.stderr.read, daemon=True).start()
            client = Client(url)
            spec = {"id": "bench", "model": "vgg-x", "challenge": "cifar-bench", "epochs": 1,
                    "runs": rounds + 1, "split": {"method": "official"}}
            seeds = client.create_experiment(spec)["seeds"]
            warm = client.split("bench", 0, "train", seeds[0])
            size = len(warm.records)
            del warm
            sender = subprocess.Popen([sys.executable, "-c", SENDER, str(size)], stdout=subprocess.PIPE, text=True)
            port = int(sender.stdout.readline())
            fixed = bytearray(b"\xa5" * size)
            split_times, copy_times, new_split_times, new_copy_times = [], [], [], []

            def timed_split(client: Client, run: int) -> float:
                started = time.perf_counter()
                split = client.split("bench", run, "train", seeds[run])
                elapsed = time.perf_counter() - started
                assert len(split) == 50_000
                return elapsed

            for run in range(1, rounds + 1):
                split_times.append(timed_split(client, run))
                copy_times.append(plain_copy(port, size, memoryview(fixed)))
                new_split_times.append(timed_split(Client(url), run))
                new_copy_times.append(plain_copy(port, size, None))
        finally:
            server.kill()
            if sender is not None:
                sender.kill()
    version = 2 if reproml.cache._xxhash is None else 3
    print(f"## A {size / 1e6:.1f} MB split to the Python client (loopback), {rounds} rounds")
    print("| | min | median | max |")
    print("|---|---|---|---|")
    print(f"| `Client.split`, no cache (version {version}), verified, into a dropped split's memory"
          f" | {spread(split_times)} |")
    print(f"| plain TCP copy, same bytes, fixed buffers | {spread(copy_times)} |")
    print(f"| the same split, a new client's first (into new memory) | {spread(new_split_times)} |")
    print(f"| plain TCP copy, same bytes, into memory allocated for them | {spread(new_copy_times)} |")
    ratio = statistics.median(copy_times) / statistics.median(split_times)
    print(f"ratio (plain copy, fixed buffers / split into a dropped split's memory, medians): {ratio:.2f}")
    ratio = statistics.median(new_copy_times) / statistics.median(new_split_times)
    print(f"ratio (plain copy into new memory / a new client's first split, medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
