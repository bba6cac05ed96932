"""A machine's cache of data sets by content digest (docs/protocol.md,
section 8, "Indices only, and a data set's content").

A data set is fetched once per machine and verified end to end: its
content's SHA-256 is its name. Opening an entry checks its content again,
so a damaged file is fetched anew, never used: against the checksum
written beside it when its SHA-256 was verified (`content_check`, XXH3-128
of 8 MiB blocks on every core, with the `xxhash` package), or by its
SHA-256 again (standard library only, about 15 times slower). The entry is
mapped, not read. Each run's split then comes as indices only. The folder,
its files and its size limit are shared with the Rust client
(`REPROML_CACHE_DIR`, `REPROML_CACHE_LIMIT`, `REPROML_CACHE=off`).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import pathlib
import stat
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

try:
    import xxhash as _xxhash
except ImportError:  # entries are then checked by their SHA-256
    _xxhash = None

#: What a data set's content starts with, and the length of its head.
CONTENT_MAGIC = b"reproml/dataset/v1"
CONTENT_HEAD_BYTES = len(CONTENT_MAGIC) + 8 * 4
CONTENT_MEDIA_TYPE = "application/vnd.reproml.dataset.v1"
DEFAULT_LIMIT_BYTES = 10 << 30
#: Suffix of the file beside an entry holding its content's check, and the
#: length of the blocks the check hashes one by one.
CHECK_SUFFIX = ".xxh3-8mib"
CHECK_BLOCK_BYTES = 8 << 20

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]


class DamagedContent(Exception):
    """Bytes that are not a data set's content."""


@dataclass
class Dataset:
    """A data set as its content describes it: shape, classes, every label
    and every pixel (example, channel, row, column)."""

    digest: str
    channels: int
    height: int
    width: int
    classes: int
    max_value: int
    labels: bytes
    pixels: memoryview

    @property
    def pixels_per_image(self) -> int:
        return self.channels * self.height * self.width

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> bytes:
        size = self.pixels_per_image
        return bytes(self.pixels[index * size:(index + 1) * size])


def parse_content(content: Buffer, digest: str) -> Dataset:
    """The data set whose content is `content`; its SHA-256 must be `digest`."""
    if hashlib.sha256(content).hexdigest() != digest:
        raise DamagedContent(f"the content's SHA-256 is not {digest}")
    return _parse_checked(content, digest)


def _parse_checked(content: Buffer, digest: str) -> Dataset:
    """The data set in `content`, already found to be the content named
    `digest`; the pixels stay where they are (a view, no copy)."""
    if len(content) < CONTENT_HEAD_BYTES or content[:len(CONTENT_MAGIC)] != CONTENT_MAGIC:
        raise DamagedContent("it does not start with \"reproml/dataset/v1\"")
    channels, height, width, classes, max_value, _, _, examples = struct.unpack_from(
        "<8I", content, len(CONTENT_MAGIC))
    size = channels * height * width
    if size == 0 or len(content) != CONTENT_HEAD_BYTES + examples * (1 + size):
        raise DamagedContent(f"{len(content)} bytes do not hold {examples} examples of {channels}×{height}×{width}")
    labels = bytes(content[CONTENT_HEAD_BYTES:CONTENT_HEAD_BYTES + examples])
    if labels and max(labels) >= classes:
        raise DamagedContent(f"a label {max(labels)} with {classes} classes")
    pixels = memoryview(content)[CONTENT_HEAD_BYTES + examples:]
    return Dataset(digest, channels, height, width, classes, max_value, labels, pixels)


def content_check(content: Buffer) -> Optional[str]:
    """The check of a cache entry's content, as hex (docs/protocol.md,
    section 8): the XXH3-128 of each 8 MiB block, their canonical 16-byte
    forms one after another, and the XXH3-128 of that; the blocks hashed
    on every core (xxhash releases the GIL). None without `xxhash`."""
    if _xxhash is None:
        return None
    view = memoryview(content)
    starts = range(0, len(view), CHECK_BLOCK_BYTES)

    def block(start: int) -> bytes:
        return _xxhash.xxh3_128_digest(view[start:start + CHECK_BLOCK_BYTES])

    if len(starts) > 1:
        with ThreadPoolExecutor(min(len(starts), os.cpu_count() or 1)) as pool:
            blocks = b"".join(pool.map(block, starts))
    else:
        blocks = b"".join(map(block, starts))
    return _xxhash.xxh3_128_hexdigest(blocks)


def _is_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


#: Local file systems (as /proc/self/mountinfo names them), where a mapped
#: file stays readable when another process removes it. On a network file
#: system another node's eviction would make reading the mapping fail
#: (SIGBUS), so entries there are read instead.
LOCAL_FILE_SYSTEMS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "overlay", "bcachefs"}


def _on_local_disk(path: pathlib.Path) -> bool:
    """Whether `path` lies on a local file system: the type of the longest
    mount point above it (Linux; elsewhere, never)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            mounts = f.read().splitlines()
    except OSError:
        return False
    real = os.path.realpath(path)
    best, kind = -1, None
    for line in mounts:
        fields = line.split()
        # mount point is field 5; the file system type follows the " - ".
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), line.split(" - ", 1)[1].split()[0]
    return kind in LOCAL_FILE_SYSTEMS


def _parse_check(text: bytes) -> Optional[str]:
    """A check as its file holds it (32 lowercase hex digits and a line
    end), or None."""
    digits = text[:-1].decode("ascii", "replace")
    if len(text) != 33 or not text.endswith(b"\n") or any(c not in "0123456789abcdef" for c in digits):
        return None
    return digits


def parse_size(text: str) -> Optional[int]:
    """`5000000000`, `512M`, `5G`: bytes, or K, M, G, T as powers of 1024."""
    text = text.strip()
    shift = {"k": 10, "m": 20, "g": 30, "t": 40}.get(text[-1:].lower(), 0)
    number = text[:-1].strip() if shift else text
    if not number.isdigit():
        return None
    value = int(number) << shift
    return value if value < 1 << 64 else None


@dataclass
class DataCache:
    """The cache folder `folder` holding at most `limit` bytes of data sets,
    with the data sets this process opened kept in memory."""

    folder: pathlib.Path
    limit: int = DEFAULT_LIMIT_BYTES
    stats: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ["fetched", "opened", "reused", "corrupt", "not_kept", "evicted"], 0))
    _open: Dict[str, Dataset] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_env(cls) -> Optional["DataCache"]:
        """The cache the environment asks for, read as the Rust client reads
        it; a value that cannot be read raises ValueError saying so."""
        switch = os.environ.get("REPROML_CACHE", "on")
        if switch == "off":
            return None
        if switch not in ("on", ""):
            raise ValueError(f"REPROML_CACHE={switch!r}: use on or off")
        folder = os.environ.get("REPROML_CACHE_DIR")
        if folder == "":
            raise ValueError("REPROML_CACHE_DIR is empty: name a folder, or set REPROML_CACHE=off")
        if folder is None and os.environ.get("XDG_CACHE_HOME"):
            folder = os.path.join(os.environ["XDG_CACHE_HOME"], "reproml")
        if folder is None and os.environ.get("HOME"):
            folder = os.path.join(os.environ["HOME"], ".cache", "reproml")
        if folder is None:
            return None
        text = os.environ.get("REPROML_CACHE_LIMIT")
        limit = DEFAULT_LIMIT_BYTES if text is None else parse_size(text)
        if limit is None:
            raise ValueError(f"REPROML_CACHE_LIMIT={text!r}: give bytes, e.g. 5000000000 or 5G")
        return cls(pathlib.Path(folder), limit)

    def _path(self, digest: str) -> pathlib.Path:
        return self.folder / "datasets" / digest

    def _check_path(self, digest: str) -> pathlib.Path:
        return self.folder / "datasets" / (digest + CHECK_SUFFIX)

    def dataset(self, fetch, digest: str) -> Dataset:
        """The data set `digest`: from memory, from disk (verified), or from
        `fetch(digest) -> bytes` (verified, then kept)."""
        if not _is_digest(digest):
            raise DamagedContent(f"{digest!r} is not a data set digest")
        with self._lock:
            found = self._open.get(digest)
            if found is not None:
                self.stats["reused"] += 1
                return found
            found = self._read_entry(digest)
            if found is None:
                content = fetch(digest)
                found = parse_content(content, digest)
                self.stats["fetched"] += 1
                if len(content) > self.limit:
                    self.stats["not_kept"] += 1
                else:
                    try:
                        self._make_room(len(content))
                        self._store(digest, content)
                    except OSError:
                        pass  # a cache that cannot be written only costs speed
            self._open[digest] = found
            return found

    def _read_entry(self, digest: str) -> Optional[Dataset]:
        path = self._path(digest)
        try:
            with open(path, "rb") as f:
                # Mapped on a local disk (entries are only ever replaced
                # whole, never written in place; the mapping outlives the
                # file object), read elsewhere.
                size = os.fstat(f.fileno()).st_size
                if size and _on_local_disk(path):
                    content = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                else:
                    content = f.read()
        except (OSError, ValueError):
            return None
        try:
            if not self._content_is(digest, content):
                raise DamagedContent(f"the entry's content is not {digest}'s")
            dataset = _parse_checked(content, digest)
        except DamagedContent:
            # Damaged on disk: never used, fetched again.
            self._remove(digest)
            self.stats["corrupt"] += 1
            return None
        os.utime(path)  # used now: the last to be evicted
        self.stats["opened"] += 1
        return dataset

    def _content_is(self, digest: str, content: Buffer) -> bool:
        """Whether `content`, found under `digest`, is what was stored
        there: by its check when one is beside it (and xxhash is here),
        else by its SHA-256 (then the check is written for next time)."""
        try:
            recorded = _parse_check(self._check_path(digest).read_bytes())
        except OSError:
            recorded = None
        if recorded is not None and _xxhash is not None:
            return content_check(content) == recorded
        if hashlib.sha256(content).hexdigest() != digest:
            return False
        try:
            self._store_check(digest, content)
        except OSError:
            pass  # a cache that cannot be written only costs speed
        return True

    def _remove(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)
        self._check_path(digest).unlink(missing_ok=True)

    def _make_room(self, incoming: int) -> None:
        folder = self.folder / "datasets"
        names = {path.name for path in folder.iterdir()} if folder.is_dir() else set()
        entries = []
        for name in names:
            if name.endswith(CHECK_SUFFIX) and _is_digest(name[:-len(CHECK_SUFFIX)]):
                # A check whose entry is gone (a process stopped between
                # removing the two, or another removed the entry first).
                if name[:-len(CHECK_SUFFIX)] not in names:
                    (folder / name).unlink(missing_ok=True)
            elif _is_digest(name):
                # Entries only: never another process's file being written.
                try:
                    info = (folder / name).stat()
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    entries.append((info.st_mtime, info.st_size, folder / name))
        entries.sort()
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total + incoming <= self.limit:
                break
            try:
                path.unlink()
                self.stats["evicted"] += 1
            except FileNotFoundError:
                pass  # another process removed it first
            path.with_name(path.name + CHECK_SUFFIX).unlink(missing_ok=True)
            total -= size

    def _store(self, digest: str, content: bytes) -> None:
        """Writes an entry whole or not at all, then its check (the caller
        verified its SHA-256)."""
        self._write_whole(self._path(digest), content)
        self._store_check(digest, content)

    def _store_check(self, digest: str, content: Buffer) -> None:
        check = content_check(content)
        if check is not None:
            self._write_whole(self._check_path(digest), (check + "\n").encode())

    def _write_whole(self, path: pathlib.Path, data: bytes) -> None:
        """To a temporary file of its own, synced, then renamed into place:
        a file in place is never written again (entries are mapped)."""
        folder = self.folder / "datasets"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{os.getpid()}.{time.time_ns()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
