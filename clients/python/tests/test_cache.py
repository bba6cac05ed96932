"""The data cache against the real Rust server: a data set fetched once,
opened (checked) by later clients, refetched when damaged, kept within the
size limit, least recently used first, and shared with the Rust client."""

import dataclasses
import hashlib
import io
import os
import pathlib
import urllib.request

import subprocess

import pytest

import reproml.cache
from reproml import Client, CorruptStream
from reproml.cache import CONTENT_HEAD_BYTES, DataCache, DamagedContent, content_check, parse_content, parse_size
from reproml.client import decode_split

from test_client import BINARY, SPEC, server  # noqa: F401  (the fixture)

try:
    import xxhash
except ImportError:  # installed without its dependency: the fallback only
    xxhash = None
#: The check needs the xxhash package, a dependency of this client.
needs_xxhash = pytest.mark.skipif(xxhash is None, reason="the xxhash package is not installed")


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
    """The cache's entries: the files named by a digest."""
    datasets = folder / "datasets"
    return sorted(p for p in datasets.iterdir() if len(p.name) == 64) if datasets.is_dir() else []


def check_of(entry: pathlib.Path) -> pathlib.Path:
    return entry.with_name(entry.name + ".xxh3-8mib")


def rewrite(path: pathlib.Path, data) -> None:
    """Gives `path` new content as a new file: a cache still alive in this
    process may have the old one mapped, which must not change under it."""
    tmp = path.with_name(path.name + ".new")
    (tmp.write_text if isinstance(data, str) else tmp.write_bytes)(data)
    os.replace(tmp, path)


@needs_xxhash
def test_the_check_s_test_vector():
    """docs/protocol.md, section 8; the Rust client's tests check the same
    vector with another XXH3 implementation."""
    content = bytes(i * 7 % 251 for i in range(20_000_003))
    assert content_check(content) == "acfe0f61eb5110a3240fd0f652401b9e"
    assert content_check(b"abc") == xxhash.xxh3_128_hexdigest(xxhash.xxh3_128_digest(b"abc"))


@needs_xxhash
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

    check = check_of(entry)
    check_text = content_check(content) + "\n"
    assert check.read_text() == check_text

    later = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=later)) == plain
    assert (later.stats["opened"], later.stats["fetched"]) == (1, 0)

    # Without its check: verified by its SHA-256, and the check written again.
    check.unlink()
    later = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=later)) == plain
    assert (later.stats["opened"], later.stats["fetched"]) == (1, 0)
    assert check.read_text() == check_text

    # A check that cannot be read is no check: verified by SHA-256, rewritten.
    rewrite(check, "not a check")
    later = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=later)) == plain
    assert (later.stats["opened"], later.stats["corrupt"]) == (1, 0)
    assert check.read_text() == check_text

    # The content damaged, the check damaged, or both: fetched again.
    damaged = bytearray(content)
    damaged[len(content) // 2] ^= 1
    for data, recorded in [(bytes(damaged), check_text), (content, content_check(b"other") + "\n"),
                           (bytes(damaged), "not a check")]:
        rewrite(entry, data)
        rewrite(check, recorded)
        again = DataCache(tmp_path / "cache")
        assert everything(Client(server, cache=again)) == plain
        assert (again.stats["corrupt"], again.stats["fetched"], again.stats["opened"]) == (1, 1, 0)
        assert entry.read_bytes() == content, "the entry is whole again"
        assert check.read_text() == check_text


def test_without_xxhash_entries_are_verified_by_their_sha256(server, tmp_path, monkeypatch):  # noqa: F811
    Client(server).create_experiment(SPEC)
    plain = everything(Client(server))
    monkeypatch.setattr(reproml.cache, "_xxhash", None)
    first = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=first)) == plain
    (entry,) = entries(tmp_path / "cache")
    assert not check_of(entry).exists(), "no check without xxhash"
    # An entry with a check (from a client with xxhash) is verified all the same.
    rewrite(check_of(entry), "0" * 32 + "\n")
    later = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=later)) == plain
    assert (later.stats["opened"], later.stats["corrupt"]) == (1, 0)
    damaged = bytearray(entry.read_bytes())
    damaged[-1] ^= 1
    rewrite(entry, bytes(damaged))
    again = DataCache(tmp_path / "cache")
    assert everything(Client(server, cache=again)) == plain
    assert (again.stats["corrupt"], again.stats["fetched"]) == (1, 1)


@needs_xxhash
def test_the_rust_client_and_this_one_share_entries_and_checks(server, tmp_path):  # noqa: F811
    Client(server).create_experiment(SPEC)
    plain = everything(Client(server))
    folder = tmp_path / "cache"
    env = dict(os.environ, REPROML_CACHE="on", REPROML_CACHE_DIR=str(folder))

    def rust_run(variant):
        subprocess.run([BINARY, "run", "--server", server, "--experiment", "py", "--variant", variant, "--json"],
                       env=env, capture_output=True, text=True, check=True)

    # The Rust client's entry and check are what this client would write.
    rust_run("rust-writes")
    (entry,) = entries(folder)
    content = entry.read_bytes()
    assert hashlib.sha256(content).hexdigest() == entry.name
    assert check_of(entry).read_text() == content_check(content) + "\n"
    python = DataCache(folder)
    assert everything(Client(server, cache=python)) == plain
    assert (python.stats["opened"], python.stats["fetched"]) == (1, 0)

    # This client's check is one the Rust client accepts: it uses the entry
    # rather than fetch it again (which would give the name a new file).
    check_of(entry).unlink()
    python = DataCache(folder)
    everything(Client(server, cache=python))
    assert python.stats["opened"] == 1 and check_of(entry).exists()
    keep = tmp_path / "keep"
    os.link(entry, keep)  # holds the file, so its inode number stays taken
    rust_run("rust-reads")
    assert entry.stat().st_ino == keep.stat().st_ino
    assert check_of(entry).read_text() == content_check(content) + "\n"


@needs_xxhash
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
    check_of(old).write_text("0" * 32 + "\n")
    orphan = check_of(folder / ("c" * 64))
    orphan.write_text("0" * 32 + "\n")
    lru = DataCache(tmp_path / "lru", limit=digits + 50_000)
    assert everything(Client(server, cache=lru)) == plain
    assert lru.stats["evicted"] == 1
    assert not check_of(old).exists(), "its check went with it"
    assert not orphan.exists(), "a check without its entry is removed"
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
