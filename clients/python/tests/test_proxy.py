"""A byte-flipping proxy between the PyTorch runner and the real server:
whatever byte of a split stream it changes, the run raises CorruptStream,
nothing is posted and nothing else breaks."""

import http.server
import struct
import threading
import urllib.request

import pytest

pytest.importorskip("torch", reason="the runner needs torch (apt-get install python3-torch)")

from reproml import Client, CorruptStream  # noqa: E402
from reproml.client import MEDIA_TYPE, MEDIA_TYPE_V3  # noqa: E402
from reproml.run import main  # noqa: E402
from test_client import server  # noqa: E402,F401

SPEC = {"id": "flip", "model": "mlp", "challenge": "digits", "epochs": 1, "runs": 1,
        "subset": {"train": 40, "test": 20}}


def start_proxy(upstream):
    """A proxy forwarding to `upstream` that changes one byte of the answers
    to split requests as `flip` says: {"split", "offset", "xor"} or None."""
    flip = {"now": None}

    class Relay(http.server.BaseHTTPRequestHandler):
        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method=self.command)
            try:
                answer = urllib.request.urlopen(request)
            except urllib.error.HTTPError as e:
                answer = e
            data = bytearray(answer.read())
            f = flip["now"]
            if f and f"/data/{f['split']}?" in self.path:
                data[f["offset"]] ^= f["xor"]
            self.send_response(answer.status if hasattr(answer, "status") else answer.code)
            for k, v in answer.headers.items():
                if k.lower() not in ("content-length", "connection", "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(bytes(data))

        do_GET = do_POST = _forward

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{proxy.server_address[1]}", flip, proxy


def parts(stream):
    """First, middle and last offsets of each part of a one-chunk v2 or v3
    stream."""
    size = 16 if stream[:8] == b"RPMLSPL3" else 32
    (header_len,) = struct.unpack("<I", stream[8:12])
    chunk = 12 + header_len
    records = chunk + 4
    checksum = len(stream) - size - 4 - size
    end = checksum + size
    trailer = end + 4
    spans = {"magic": (0, 8), "header length": (8, 12), "header": (12, chunk), "chunk length": (chunk, records),
             "records": (records, checksum), "chunk checksum": (checksum, end), "end of chunks": (end, trailer),
             "split checksum": (trailer, len(stream))}
    return [(name, at) for name, (a, b) in spans.items() for at in (a, (a + b) // 2, b - 1)]


def test_every_flipped_byte_is_rejected_and_nothing_is_posted(server, monkeypatch):  # noqa: F811
    # The full stream's parts (test_cache.py flips the indices-only one).
    monkeypatch.setenv("REPROML_CACHE", "off")
    client = Client(server)
    client.create_experiment(SPEC)
    seed = client.seed("flip", 0)["seed"]
    url, flip, proxy = start_proxy(server)
    run = ["--server", url, "--experiment", "flip", "--variant", "torch", "--runs", "0"]
    try:
        tried = 0
        for split in ("train", "test"):
            # As the server sends it to the client (xxhash is a dependency).
            clean = client._open("GET", f"/v1/experiments/flip/runs/0/data/{split}?seed={seed}",
                                 accept=f"{MEDIA_TYPE_V3}, {MEDIA_TYPE}").read()
            assert clean[:8] == b"RPMLSPL3"
            for part, offset in parts(clean):
                for xor in (0x01, 0x80, 0xFF):
                    flip["now"] = {"split": split, "offset": offset, "xor": xor}
                    with pytest.raises(CorruptStream):
                        main(run)
                    tried += 1
        assert tried == 2 * 8 * 3 * 3
        assert client.runs("flip") == []
        # The proxy itself is faithful: without a flip the run is recorded.
        flip["now"] = None
        assert main(run) == 0
        assert len(client.runs("flip")) == 1
    finally:
        proxy.shutdown()
