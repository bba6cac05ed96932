"""The HTTP API of docs/protocol.md, standard library only.

Every split stream is verified chunk by chunk and as a whole (section 8);
anything that does not check out raises CorruptStream, never returns data.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import ssl
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Union

from . import cache as _cache
from .cache import CONTENT_MEDIA_TYPE, DataCache, Dataset

#: Version 3 (version 2 with XXH3-128 checksums, about 15 times faster to
#: check) is what this client asks for when the xxhash package is there,
#: else version 2 (the split checksum covers the header too, SHA-256);
#: version 1 is still decoded, and refused as an answer.
MAGIC_V1 = b"RPMLSPL1"
MAGIC = MAGIC_V2 = b"RPMLSPL2"
MAGIC_V3 = b"RPMLSPL3"
MEDIA_TYPE = "application/vnd.reproml.split.v2"
MEDIA_TYPE_V3 = "application/vnd.reproml.split.v3"
#: Version 2 without pixels (index and label per record), for a client
#: that holds the data set in its cache.
MAGIC_INDICES = b"RPMLIDX1"
MEDIA_TYPE_INDICES = "application/vnd.reproml.split-indices.v1"
MAX_HEADER_BYTES = 64 * 1024
# The most record bytes a split may announce, as the Rust client's
# MAX_SPLIT_BYTES: they are allocated before the split checksum is read.
MAX_SPLIT_BYTES = 2 << 30
# The longest error a failure report may carry (docs/protocol.md).
MAX_FAILURE_ERROR_BYTES = 4096


class ProblemError(Exception):
    """The server answered with a problem object (RFC 9457)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class CorruptStream(Exception):
    """A split stream failed verification: do not use the data."""


class Unreachable(Exception):
    """The server could not be reached, even after retries."""


class TlsError(Unreachable):
    """The TLS connection failed: most often a server certificate this
    client does not trust. Not retried."""


@dataclass
class Split:
    """A verified split: the header and the records in the served order.
    From an indices-only stream, `records` hold each example's index and
    label, and the pixels are `dataset`'s (a cached data set)."""

    header: Dict[str, Any]
    #: Read-only; from a `Client`, a view of memory it reuses for a later
    #: split once nothing refers to this one's records any more (so keep a
    #: view, array or tensor made from it, never its `.obj`, and write to
    #: none of them; `bytes(records)` is a copy of your own).
    records: Union[bytes, memoryview]
    version: int = 2
    dataset: Optional[Dataset] = None

    def __getstate__(self) -> Dict[str, Any]:
        # A memoryview cannot be pickled (multiprocessing's spawn pickles
        # what it hands to its workers): its bytes can.
        return {**self.__dict__, "records": bytes(self.records)}

    @property
    def record_size(self) -> int:
        if self.dataset is not None:
            return 5
        s = self.header["shape"]
        return 5 + s["channels"] * s["height"] * s["width"]

    def __len__(self) -> int:
        return len(self.records) // self.record_size

    def index(self, k: int) -> int:
        """Data set index of the k-th example served."""
        return struct.unpack_from("<I", self.records, k * self.record_size)[0]

    def label(self, k: int) -> int:
        """Label of the k-th example served."""
        return self.records[k * self.record_size + 4]

    def image(self, k: int) -> bytes:
        """Pixels (channel, row, column) of the k-th example served."""
        if self.dataset is not None:
            return self.dataset.image(self.index(k))
        start = k * self.record_size + 5
        return bytes(memoryview(self.records)[start : start + self.record_size - 5])


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = bytearray(n)
    _read_into(stream, memoryview(data), what)
    return bytes(data)


class RecordBuffers:
    """Memory of the splits a client no longer holds, for the next ones it
    fetches (as the Rust client's `wire::RecordBuffers`). A CIFAR-10
    training split is 154 MB: `bytearray(n)` of that size alone takes
    80-100 ms here (the kernel faults in and zeroes new pages, then Python
    zeroes them again), more than the transfer. Run after run, a split is
    the size of the one before, and lands in its memory.

    A buffer is reused only when nothing refers to its records any more:
    a split's `records` is a view of it, and while any view (or a NumPy
    array or tensor made from one) exists, CPython refuses to resize the
    buffer, which is how `take` tells. (Other interpreters get new memory
    every time: nothing here vouches for their refusal.) It keeps the last
    two buffers it allocated, each reused for a split of exactly its size;
    they are freed with the client, and a copy of the client starts
    without them."""

    KEEP = 2

    def __init__(self) -> None:
        self._buffers: List[bytearray] = []
        self._lock = threading.Lock()

    def __reduce__(self) -> Any:
        return (RecordBuffers, ())

    def take(self, size: int) -> memoryview:
        """A writable view of `size` bytes, in a kept buffer nothing refers
        to any more, else in new memory. The content is whatever was there:
        the caller writes every byte."""
        if size == 0 or not _REUSE:
            return memoryview(bytearray(size))
        with self._lock:
            for buffer in self._buffers:
                if len(buffer) == size and not _exported(buffer):
                    # Viewed before the lock is let go: no other thread can
                    # take it now.
                    return memoryview(buffer)
            buffer = bytearray(size)
            self._buffers = self._buffers[len(self._buffers) - self.KEEP + 1:] + [buffer]
            return memoryview(buffer)


_REUSE = platform.python_implementation() == "CPython"


def _exported(buffer: bytearray) -> bool:
    """Whether a view of `buffer` exists: resizing it is refused then.
    (Shrinking by one byte and growing back moves nothing.)"""
    try:
        last = buffer.pop()
    except BufferError:
        return True
    buffer.append(last)
    return False


def _read_into(stream: BinaryIO, view: memoryview, what: str) -> None:
    """Fills `view` from `stream` (with `read` when it has no `readinto`)."""
    readinto = getattr(stream, "readinto", None)
    got = 0
    while got < len(view):
        if readinto is not None:
            n = readinto(view[got:])
        else:
            data = stream.read(len(view) - got)
            n = len(data)
            view[got : got + n] = data
        if not n:
            raise CorruptStream(f"the stream ends inside the {what}")
        got += n


def _check_header(header: Any) -> None:
    """The header must describe records a model can use (docs/protocol.md
    section 8). Version 2's split checksum covers it, but that is checked
    only after the records: nothing is taken on trust before then that
    could index out of range or divide by zero."""
    def bad(why: str) -> CorruptStream:
        return CorruptStream(f"bad split header: {why}")

    def whole(value: Any, low: int, high: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    if not isinstance(header, dict):
        raise bad("not a JSON object")
    for key in ("experiment", "run", "split", "seed", "examples", "shape", "classes",
                "normalization", "dataset_digest", "order"):
        if key not in header:
            raise bad(f"no {key!r}")
    shape = header["shape"]
    if not isinstance(shape, dict) or not all(whole(shape.get(k), 1, 1 << 16) for k in ("channels", "height", "width")):
        raise bad(f"shape {shape!r} is not three positive whole numbers")
    if not whole(header["classes"], 1, 256):
        raise bad(f"{header['classes']!r} classes; labels are bytes, so 1 to 256")
    if not whole(header["examples"], 0, 1 << 32) or not whole(header["run"], 0, (1 << 32) - 1):
        raise bad("examples or run is not a whole number in range")
    n = header["normalization"]
    channels = shape["channels"]
    try:
        means, stds, top = list(n["mean"]), list(n["std"]), n["max_value"]
        usable = (len(means) == channels and len(stds) == channels and whole(top, 1, 255)
                  and all(isinstance(m, (int, float)) and math.isfinite(m) for m in means)
                  and all(isinstance(d, (int, float)) and math.isfinite(d) and d > 0 for d in stds))
    except (KeyError, TypeError):
        usable = False
    if not usable:
        raise bad("the normalisation is not one finite mean and one positive standard deviation per channel")
    expected_order = {"train": "epoch-0", "test": "index", "validation": "index"}.get(header["split"])
    if header["order"] != expected_order:
        raise bad(f"split {header['split']!r} is not served in order {header['order']!r}")


def check_request(header: Dict[str, Any], experiment: str, run: int, split: str, seed: int) -> None:
    """The stream must be the split that was asked for."""
    asked = {"experiment": experiment, "run": int(run), "split": split, "seed": int(seed)}
    wrong = [f"{k} {header.get(k)!r} (asked: {v!r})" for k, v in asked.items() if header.get(k) != v]
    if wrong:
        raise CorruptStream("the split stream is not the one asked for: " + ", ".join(wrong))


def decode_split(stream: BinaryIO, dataset_for: Optional[Callable[[str], Dataset]] = None,
                 buffers: Optional[RecordBuffers] = None) -> Split:
    """Reads and verifies a split stream (docs/protocol.md section 8). An
    indices-only stream needs `dataset_for(digest)`, asked only once the
    whole stream is verified, and is checked against what it returns. The
    records of a full stream land in memory from `buffers` when given."""
    magic = _read_exact(stream, 8, "magic")
    version = {MAGIC_V1: 1, MAGIC_V2: 2, MAGIC_V3: 3, MAGIC_INDICES: 2}.get(magic)
    if version is None:
        raise CorruptStream("not a ReproduceML split stream (bad magic bytes)")
    xxhash = _cache._xxhash
    if version == 3 and xxhash is None:
        raise CorruptStream("a version-3 split stream needs the xxhash package to be checked: pip install xxhash")
    if magic == MAGIC_INDICES and dataset_for is None:
        raise CorruptStream("an indices-only split stream, but the pixels were asked for")
    word = _read_exact(stream, 4, "header length")
    (length,) = struct.unpack("<I", word)
    if length > MAX_HEADER_BYTES:
        raise CorruptStream(f"a {length}-byte header is longer than {MAX_HEADER_BYTES}")
    raw = _read_exact(stream, length, "header")
    if version == 3:
        whole, checksum, checksum_len = xxhash.xxh3_128(), xxhash.xxh3_128_digest, 16
    else:
        whole, checksum, checksum_len = hashlib.sha256(), (lambda b: hashlib.sha256(b).digest()), 32
    if magic != MAGIC_V1:
        whole.update(magic + word + raw)
    try:
        header = json.loads(raw)
    except ValueError as e:
        raise CorruptStream(f"bad split header: {e}") from None
    _check_header(header)
    s = header["shape"]
    record_size = 5 if magic == MAGIC_INDICES else 5 + s["channels"] * s["height"] * s["width"]
    total = header["examples"] * record_size
    if total > MAX_SPLIT_BYTES:
        raise CorruptStream(f"bad split header: {header['examples']} records of {record_size} bytes "
                            "is implausibly large")
    # Each chunk is read straight into its place and hashed there: one copy
    # off the socket, none after (the previous client made four).
    # Python writes new memory at once (up to the bound, before the checksum
    # can vouch for the header): where there is not that much, the stream
    # is refused like any other implausible one.
    try:
        if buffers is not None and magic != MAGIC_INDICES:
            view = buffers.take(total)
        else:
            view = memoryview(bytearray(total))
    except MemoryError:
        raise CorruptStream(f"bad split header: {header['examples']} records of {record_size} bytes "
                            "do not fit in this machine's memory") from None
    records = view.toreadonly()
    filled, chunk = 0, 0
    while True:
        (count,) = struct.unpack("<I", _read_exact(stream, 4, "chunk length"))
        if count == 0:
            break
        if filled // record_size + count > header["examples"]:
            raise CorruptStream(f"more records than the {header['examples']} announced")
        with view[filled : filled + count * record_size] as body:
            _read_into(stream, body, f"chunk {chunk}")
            digest = checksum(body)
        if digest != _read_exact(stream, checksum_len, "chunk checksum"):
            raise CorruptStream(f"checksum mismatch in chunk {chunk}: the data was corrupted; fetch it again")
        whole.update(digest)
        filled += count * record_size
        chunk += 1
    if whole.digest() != _read_exact(stream, checksum_len, "split checksum"):
        raise CorruptStream("checksum mismatch for the whole split: the data was corrupted; fetch it again")
    if filled != total:
        raise CorruptStream(f"{filled // record_size} records, {header['examples']} announced")
    if stream.read(1):
        raise CorruptStream("bytes after the trailer")
    labels = records[4::record_size].tobytes()
    if labels and max(labels) >= header["classes"]:
        raise CorruptStream(f"a record has label {max(labels)}, but the header says {header['classes']} classes")
    if magic == MAGIC_INDICES:
        dataset = dataset_for(header["dataset_digest"])
        if ((dataset.channels, dataset.height, dataset.width) != (s["channels"], s["height"], s["width"])
                or dataset.classes != header["classes"] or dataset.max_value != header["normalization"]["max_value"]):
            raise CorruptStream("the split is not of the cached data set: its shape or classes differ")
        for k in range(len(records) // 5):
            (index,) = struct.unpack_from("<I", records, 5 * k)
            if index >= len(dataset) or dataset.labels[index] != records[5 * k + 4]:
                raise CorruptStream(f"record {k} names example {index}, which the cached data set labels otherwise")
        return Split(header=header, records=bytes(records), version=2, dataset=dataset)
    return Split(header=header, records=records, version=version)


def cut_error(error: str) -> str:
    """`error` cut at a character boundary to what the server keeps, with
    an ellipsis where it was cut."""
    # Lone surrogates (undecodable file names) cannot be sent as UTF-8.
    data = error.encode("utf-8", "backslashreplace")
    error = data.decode("utf-8")
    if len(data) <= MAX_FAILURE_ERROR_BYTES:
        return error
    ellipsis = "\u2026"
    room = MAX_FAILURE_ERROR_BYTES - len(ellipsis.encode("utf-8"))
    return data[:room].decode("utf-8", errors="ignore") + ellipsis


def _loopback(host: str) -> bool:
    """Whether `host` is this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(header: Optional[str], attempt: int) -> float:
    """Seconds to wait before the next try: the server's Retry-After (at
    most a minute), else the backoff."""
    try:
        return min(60.0, float(int(header))) if header is not None else 0.1 * 2**attempt
    except ValueError:
        return 0.1 * 2**attempt


class Client:
    """A client of one ReproduceML server.

    Connection failures and `503 Service Unavailable` answers are retried
    with exponential backoff (100 ms, 200 ms, ..., or the server's
    Retry-After); every call retried is idempotent (failure reports are
    sent once), so this is safe. Other answers, problems included, are not
    retried. An https:// server's certificate is checked against the
    system's roots, or only against `ca_cert` (a PEM file: a private CA).
    """

    def __init__(self, base: str, token: Optional[str] = None, retries: int = 5, timeout: float = 600.0,
                 ca_cert: Optional[str] = None, cache: Optional[DataCache] = None) -> None:
        self.base = base.rstrip("/")
        scheme, _, rest = self.base.partition("://")
        host = rest.split("/")[0]
        host = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if scheme == "http" and ca_cert:
            raise ValueError(f"a CA certificate is given for {base}, which is not https://: use the server's https:// URL")
        if scheme == "http" and token and not _loopback(host):
            raise ValueError(f"refusing to send the token over plain HTTP to {base}: use the server's https:// URL")
        self.token = token
        self.retries = retries
        self.timeout = timeout
        self.ca_cert = ca_cert
        #: Data sets by digest, fetched once per machine: splits then come
        #: as indices only (None: every split with its pixels).
        self.cache = cache
        self._context = ssl.create_default_context(cafile=ca_cert) if ca_cert else None
        self._buffers = RecordBuffers()

    def quick(self) -> "Client":
        """The same client, for one call that must not be retried or wait
        long (a failure report)."""
        return Client(self.base, self.token, retries=0, timeout=min(self.timeout, 30.0), ca_cert=self.ca_cert,
                      cache=self.cache)

    def _open(self, method: str, path: str, body: Optional[Any] = None, accept: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        for attempt in range(self.retries + 1):
            try:
                return urllib.request.urlopen(request, timeout=self.timeout, context=self._context)
            except urllib.error.HTTPError as e:
                if e.code == 503 and attempt < self.retries:
                    time.sleep(_retry_after(e.headers.get("Retry-After"), attempt))
                    continue
                try:
                    problem = json.loads(e.read())
                    raise ProblemError(e.code, problem["code"], problem["detail"]) from None
                except (ValueError, KeyError):
                    raise ProblemError(e.code, "unknown", f"status {e.code} without a problem object") from None
            except (urllib.error.URLError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, ssl.SSLError):
                    raise TlsError(f"the TLS connection to {self.base} failed: {reason}. If the server's certificate "
                                   "comes from a private CA, give it with --ca-cert FILE (or REPROML_CA_CERT)") from None
                if attempt == self.retries:
                    raise Unreachable(f"cannot reach the ReproduceML server at {self.base}: {e}") from None
                time.sleep(0.1 * 2**attempt)
        raise Unreachable(self.base)  # pragma: no cover - the loop always returns or raises

    def _json(self, method: str, path: str, body: Optional[Any] = None) -> Any:
        with self._open(method, path, body) as response:
            return json.loads(response.read())

    def health(self) -> Dict[str, Any]:
        """GET /v1/health."""
        return self._json("GET", "/v1/health")

    def create_experiment(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """POST /v1/experiments: creates it, or returns the same existing one."""
        return self._json("POST", "/v1/experiments", spec)

    def experiment(self, experiment: str) -> Dict[str, Any]:
        """GET /v1/experiments/{id}."""
        return self._json("GET", f"/v1/experiments/{urllib.parse.quote(experiment)}")

    def seed(self, experiment: str, run: int) -> Dict[str, Any]:
        """GET /v1/experiments/{id}/runs/{run}/seed."""
        return self._json("GET", f"/v1/experiments/{urllib.parse.quote(experiment)}/runs/{int(run)}/seed")

    def split(self, experiment: str, run: int, split: str, seed: int) -> Split:
        """The verified split (train, test or validation) of a run."""
        path = f"/v1/experiments/{urllib.parse.quote(experiment)}/runs/{int(run)}/data/{split}?seed={int(seed)}"
        if self.cache is None:
            accept = MEDIA_TYPE if _cache._xxhash is None else f"{MEDIA_TYPE_V3}, {MEDIA_TYPE}"
            with self._open("GET", path, accept=accept) as response:
                data = decode_split(response, buffers=self._buffers)
        else:
            # A server that does not know the indices-only form sends version 2.
            with self._open("GET", path, accept=MEDIA_TYPE_INDICES) as response:
                data = decode_split(response, lambda digest: self.cache.dataset(self._content, digest))
        if data.version == 1:
            raise CorruptStream("a version-1 split stream (header not under the checksum), but version 2 or 3 was asked for")
        check_request(data.header, experiment, run, split, seed)
        return data

    def _content(self, digest: str) -> bytes:
        """GET /v1/datasets/{digest}/content (the cache verifies it)."""
        with self._open("GET", f"/v1/datasets/{digest}/content", accept=CONTENT_MEDIA_TYPE) as response:
            return response.read()

    def post_result(self, experiment: str, variant: str, run: int, result: Dict[str, Any]) -> Dict[str, Any]:
        """POST a run's result; a retry of the same result is accepted."""
        path = f"/v1/experiments/{urllib.parse.quote(experiment)}/variants/{urllib.parse.quote(variant)}/runs/{int(run)}"
        return self._json("POST", path, result)

    def post_failure(self, experiment: str, variant: str, run: int, seed: int, error: str) -> Dict[str, Any]:
        """Reports a failed attempt at a run, for the dashboard and `reproml
        study status`; the error is cut to the 4,096 bytes the server keeps."""
        path = (f"/v1/experiments/{urllib.parse.quote(experiment)}/variants/{urllib.parse.quote(variant)}"
                f"/runs/{int(run)}/failures")
        # Each report counts: sent once, so a lost answer cannot count it
        # twice, and a server that is down does not hold the run's error back.
        return self.quick()._json("POST", path, {"seed": int(seed), "error": cut_error(error)})

    def failures(self, experiment: str) -> List[Dict[str, Any]]:
        """Every run of the experiment with failure reports."""
        return self._json("GET", f"/v1/experiments/{urllib.parse.quote(experiment)}/failures")

    def runs(self, experiment: str, variant: Optional[str] = None) -> List[Dict[str, Any]]:
        """The recorded runs of an experiment, optionally of one variant."""
        query = f"?variant={urllib.parse.quote(variant)}" if variant else ""
        return self._json("GET", f"/v1/experiments/{urllib.parse.quote(experiment)}/runs{query}")
