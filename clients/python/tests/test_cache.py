"""The data cache against the real Rust server: a data set fetched once,
opened (verified) by later clients, refetched when damaged, and kept within
the size limit, least recently used first."""

import dataclasses
import hashlib
import io
import os
import pathlib
import urllib.request

import pytest

from reproml import Client, CorruptStream
from reproml.cache import CONTENT_HEAD_BYTES, DataCache, DamagedContent, parse_content, parse_size
from reproml.client import decode_split

from test_client import SPEC, server  # noqa: F401  (the fixture)


def everything(client):
    """Every split of every run as (index, label, pixels)."""
    out = []
    for run in range(3):
        seed = client.seed("py", run)["seed"]
        for name in ["train", "test", "validation"]:
            split = client.split("py", run, name, seed)
            out.append([(split.index(k), split.label(k), split.image(k)) for k in range(len(split))])
    return out


def entries(folder: pathlib.Path):
    datasets = folder / "datasets"
    return sorted(p for p in datasets.iterdir()) if datasets.is_dir() else []


def test_fetched_once_then_opened_verified_and_refetched_when_damaged(server, tmp_path):  # noqa: F811
    plain_client = Client(server)
    plain_client.create_experiment(SPEC)
    plain = everything(plain_client)

    cache = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=cache)) == plain
    assert cache.stats["fetched"] == 1 and cache.stats["reused"] == 8
    (entry,) = entries(tmp_path / "cache")
    content = entry.read_bytes()
    assert hashlib.sha256(content).hexdigest() == entry.name, "named by its content"

    # The Rust client's cache and this one are the same folder format.
    later = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=later)) == plain
    assert (later.stats["opened"], later.stats["fetched"]) == (1, 0)

    damaged = bytearray(content)
    damaged[len(content) // 2] ^= 1
    entry.write_bytes(bytes(damaged))
    again = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=again)) == plain
    assert (again.stats["corrupt"], again.stats["fetched"], again.stats["opened"]) == (1, 1, 0)
    assert entry.read_bytes() == content, "the entry is whole again"


def test_the_size_limit_is_kept(server, tmp_path):  # noqa: F811
    Client(server).create_experiment(SPEC)
    plain = everything(Client(server))

    small = DataCache(tmp_path / "small", limit=1000)
    assert everything(Client(server, cache=small)) == plain
    assert (small.stats["fetched"], small.stats["not_kept"]) == (1, 1)
    assert entries(tmp_path / "small") == []

    folder = tmp_path / "lru" / "datasets"
    folder.mkdir(parents=True)
    old = folder / ("0" * 64)
    old.write_bytes(b"\x07" * 100_000)
    os.utime(old, (1, 1))
    digits = CONTENT_HEAD_BYTES + 1797 * 65
    lru = DataCache(tmp_path / "lru", limit=digits + 50_000)
    assert everything(Client(server, cache=lru)) == plain
    assert lru.stats["evicted"] == 1
    (kept,) = entries(tmp_path / "lru")
    assert kept != old and kept.stat().st_size == digits


def test_an_indices_stream_is_checked_against_the_data_set(server, tmp_path):  # noqa: F811
    client = Client(server, cache=DataCache(tmp_path / "cache"))
    client.create_experiment(SPEC)
    seed = client.seed("py", 0)["seed"]
    client.split("py", 0, "train", seed)
    dataset = next(iter(client.cache._open.values()))
    # Without a cache, an indices-only stream is refused.
    request = urllib.request.Request(
        f"{server}/v1/experiments/py/runs/0/data/train?seed={seed}",
        headers={"Accept": "application/vnd.reproml.split-indices.v1"})
    stream = urllib.request.urlopen(request).read()
    with pytest.raises(CorruptStream, match="indices-only"):
        decode_split(io.BytesIO(stream))
    # Every byte is under a checksum.
    for at in range(0, len(stream), max(1, len(stream) // 200)):
        bad = bytearray(stream)
        bad[at] ^= 0x01
        with pytest.raises(CorruptStream):
            decode_split(io.BytesIO(bytes(bad)), lambda digest: dataset)
    # A data set with other labels, or another shape, is not the split's.
    relabelled = dataclasses.replace(dataset, labels=bytes((label + 1) % 10 for label in dataset.labels))
    with pytest.raises(CorruptStream, match="labels otherwise"):
        decode_split(io.BytesIO(stream), lambda digest: relabelled)
    reshaped = dataclasses.replace(dataset, width=dataset.width + 1)
    with pytest.raises(CorruptStream, match="not of the cached data set"):
        decode_split(io.BytesIO(stream), lambda digest: reshaped)
    with pytest.raises(DamagedContent):
        parse_content(b"not a data set", hashlib.sha256(b"not a data set").hexdigest())


def test_the_environment_is_read_as_the_rust_client_reads_it(monkeypatch, tmp_path):
    monkeypatch.setenv("REPROML_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("REPROML_CACHE_LIMIT", "5G")
    cache = DataCache.from_env()
    assert (cache.folder, cache.limit) == (tmp_path, 5 << 30)
    monkeypatch.setenv("REPROML_CACHE", "off")
    assert DataCache.from_env() is None
    for name, value in [("REPROML_CACHE", "maybe"), ("REPROML_CACHE_LIMIT", "5GB"), ("REPROML_CACHE_DIR", "")]:
        monkeypatch.setenv("REPROML_CACHE", "on")
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            DataCache.from_env()
        monkeypatch.setenv("REPROML_CACHE_LIMIT", "1")
        monkeypatch.setenv("REPROML_CACHE_DIR", str(tmp_path))
    assert [parse_size(t) for t in ["512M", " 1 t ", "12", "1.5G", "", "G"]] == [512 << 20, 1 << 40, 12, None, None, None]
