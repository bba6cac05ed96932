"""The Python client against the real Rust server on 127.0.0.1."""

import hashlib
import io
import json
import os
import pathlib
import struct
import subprocess
import threading
import urllib.request

import pytest

import reproml.cache
from reproml import Client, CorruptStream, ProblemError, TlsError
from reproml.client import MAX_FAILURE_ERROR_BYTES, cut_error, decode_split
from reproml.metrics import confusion_matrix, metrics_of

ROOT = pathlib.Path(__file__).resolve().parents[3]
BINARY = os.environ.get("REPROML_BIN", str(ROOT / "target" / "debug" / "reproml"))


@pytest.fixture()
def server(tmp_path):
    if not os.path.exists(BINARY):
        pytest.fail(f"build the server first (cargo build): {BINARY} is missing")
    process = subprocess.Popen(
        [BINARY, "server", "--listen", "127.0.0.1:0", "--master-seed", "11", "--db", str(tmp_path / "py.db")],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stderr.readline()
    url = next(word for word in line.split() if word.startswith("http://"))
    # The server logs a line per request: keep reading them, or a full pipe
    # would block the server mid-request.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    yield url
    process.kill()
    process.wait()


SPEC = {"id": "py", "model": "mlp", "challenge": "digits", "epochs": 1, "runs": 3,
        "split": {"method": "fractions", "train": 0.7, "test": 0.2, "validation": 0.1}}


def test_splits_are_a_verified_disjoint_cover(server):
    client = Client(server)
    assert client.health()["status"] == "ok"
    experiment = client.create_experiment(SPEC)
    assert len(experiment["seeds"]) == 3
    assert client.create_experiment(SPEC)["seeds"] == experiment["seeds"], "idempotent"
    seed = client.seed("py", 1)["seed"]
    assert seed == experiment["seeds"][1]
    indices = []
    for name in ["train", "test", "validation"]:
        split = client.split("py", 1, name, seed)
        # Version 3 when xxhash is installed (as the package asks), else 2.
        assert split.version == (2 if reproml.cache._xxhash is None else 3)
        assert split.header["examples"] == len(split)
        assert len(split.image(0)) == 64
        indices += [split.index(k) for k in range(len(split))]
    assert sorted(indices) == list(range(1797))
    again = client.split("py", 1, "train", seed)
    assert again.records == client.split("py", 1, "train", seed).records


def test_a_split_lands_in_the_memory_of_one_nothing_refers_to(server):
    import pickle

    client = Client(server)
    seeds = client.create_experiment(SPEC)["seeds"]

    def train(run):
        return client.split("py", run, "train", seeds[run])

    def memory(split):
        return split.records.obj  # the buffer the view shows

    def expected(run):
        return bytes(Client(server).split("py", run, "train", seeds[run]).records)

    first = train(1)
    a = memory(first)
    with pytest.raises(TypeError):
        first.records[0] = 1  # read-only
    # Once nothing refers to a split's records, the next split of that size
    # lands in them, and is the split the server sends.
    del first
    second = train(2)
    assert memory(second) is a and bytes(second.records) == expected(2)
    # While a split is held, another split gets other memory, and the one
    # held is unchanged.
    third = train(1)
    assert memory(third) is not a and bytes(second.records) == expected(2)
    # So while anything made from its records is held (here a view, as
    # NumPy arrays and PyTorch tensors made from them hold one).
    view = second.records[5:10]
    del second
    fourth = train(0)
    assert memory(fourth) is not a and memory(fourth) is not memory(third)
    assert bytes(view) == expected(2)[5:10]
    b = memory(fourth)
    del view, fourth
    fifth = train(1)
    assert memory(fifth) is b and bytes(fifth.records) == expected(1)
    # A stream without `readinto` is read too.
    class ReadOnly:
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def read(self, n=-1):
            return self.data.read(min(n, 1000) if n > 0 else n)

    url = f"{server}/v1/experiments/py/runs/1/data/train?seed={seeds[1]}"
    raw = urllib.request.urlopen(url).read()
    assert bytes(decode_split(ReadOnly(raw)).records) == expected(1)
    # A client pickles (without its buffers); a split, with its bytes
    # (multiprocessing's spawn pickles both).
    assert pickle.loads(pickle.dumps(client))._buffers._buffers == []
    assert pickle.loads(pickle.dumps(fifth)).records == expected(1)


def test_a_seed_mismatch_raises_with_its_code(server):
    client = Client(server)
    client.create_experiment(SPEC)
    with pytest.raises(ProblemError) as error:
        client.split("py", 0, "test", 123)
    assert error.value.code == "seed_mismatch"
    assert error.value.status == 409
    with pytest.raises(ProblemError) as error:
        client.experiment("missing")
    assert error.value.code == "experiment_not_found"


def test_a_corrupted_stream_raises(server):
    client = Client(server)
    client.create_experiment(SPEC)
    seed = client.seed("py", 0)["seed"]
    url = f"{server}/v1/experiments/py/runs/0/data/test?seed={seed}"
    raw = bytearray(urllib.request.urlopen(url).read())
    assert len(decode_split(io.BytesIO(bytes(raw)))) > 0
    raw[-100] ^= 0x01  # a pixel of the last chunk
    with pytest.raises(CorruptStream, match="checksum mismatch"):
        decode_split(io.BytesIO(bytes(raw)))
    with pytest.raises(CorruptStream):
        decode_split(io.BytesIO(bytes(raw[: len(raw) // 2])))


def _with_header(raw, change):
    """The version-1 stream `raw` with its JSON header changed by `change`
    (checksums untouched: version 1 does not cover the header, so the
    decoder's own header checks are what must catch it)."""
    (length,) = struct.unpack("<I", raw[8:12])
    header = json.loads(raw[12 : 12 + length])
    change(header)
    encoded = json.dumps(header).encode()
    return bytes(raw[:8]) + struct.pack("<I", len(encoded)) + encoded + bytes(raw[12 + length :])


def test_a_header_that_does_not_fit_its_records_raises(server):
    client = Client(server)
    client.create_experiment(SPEC)
    seed = client.seed("py", 0)["seed"]
    url = f"{server}/v1/experiments/py/runs/0/data/test?seed={seed}"
    old = urllib.request.Request(url, headers={"Accept": "application/vnd.reproml.split.v1"})
    raw = urllib.request.urlopen(old).read()
    assert decode_split(io.BytesIO(raw)).version == 1
    changes = [
        lambda h: h["shape"].pop("width"),  # was a bare KeyError('width')
        lambda h: h.update(classes=1),  # labels above the class count
        lambda h: h.update(classes="1 "),
        lambda h: h["normalization"].update(std=[0.0]),
        lambda h: h["normalization"].update(mean=[0.1, 0.2]),
        lambda h: h.update(order="epoch-0"),
        lambda h: h.pop("dataset_digest"),
    ]
    for change in changes:
        with pytest.raises(CorruptStream):
            decode_split(io.BytesIO(_with_header(raw, change)))
    # The records' memory is claimed from the header before the checksum is
    # read: an implausible size is refused, not allocated.
    with pytest.raises(CorruptStream, match="implausibly large"):
        decode_split(io.BytesIO(_with_header(raw, lambda h: h.update(examples=1 << 32))))


def test_a_stream_of_another_run_raises(server):
    from reproml.client import check_request

    client = Client(server)
    client.create_experiment(SPEC)
    seed = client.seed("py", 0)["seed"]
    data = client.split("py", 0, "test", seed)
    check_request(data.header, "py", 0, "test", seed)
    with pytest.raises(CorruptStream, match="run 0"):
        check_request(data.header, "py", 1, "test", seed)
    with pytest.raises(CorruptStream, match="split"):
        check_request(data.header, "py", 0, "train", seed)


def fake_result(seed, accuracy):
    """A result whose 200 test examples of two classes are right with
    probability `accuracy`."""
    right = round(accuracy * 100)
    matrix = [[right, 100 - right], [100 - right, right]]
    scores = metrics_of(matrix)
    digest = hashlib.sha256(f"{seed}-{accuracy}".encode()).hexdigest()
    return {
        "seed": seed,
        "metrics": scores,
        "epochs": [{"epoch": 1, "loss": 0.5, "test": scores, "confusion": matrix, "digest": digest}],
        "fingerprint": {"client": "python"},
        "artifact": {"kind": "command", "name": "python-test", "details": {}},
    }


def test_python_results_show_up_in_compare_next_to_rust_results(server):
    client = Client(server)
    client.create_experiment(SPEC)
    rust = subprocess.run(
        [BINARY, "run", "--server", server, "--experiment", "py", "--variant", "rust", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert len(rust.stdout.splitlines()) == 3
    for run in range(3):
        seed = client.seed("py", run)["seed"]
        client.post_result("py", "python", run, fake_result(seed, 0.5 + run / 100))
        # A retry of the same result is fine.
        client.post_result("py", "python", run, fake_result(seed, 0.5 + run / 100))
    with pytest.raises(ProblemError) as error:
        client.post_result("py", "python", 0, fake_result(client.seed("py", 0)["seed"], 0.9))
    assert error.value.code == "result_conflict"
    assert len(client.runs("py", "python")) == 3
    compare = subprocess.run(
        [BINARY, "compare", "--server", server, "--variants", "python,rust", "--json"],
        capture_output=True, text=True, check=True,
    )
    report = json.loads(compare.stdout)
    experiment = report["comparisons"][0]
    assert (experiment["baseline"], experiment["treatment"], experiment["n"]) == ("python", "rust", 3)
    assert experiment["metrics"][0]["baseline"]["mean"] == pytest.approx(0.51)


def test_metrics_are_the_servers_to_the_last_bit_and_must_fit_their_matrix(server):
    """The server derives every stored metric from the matrix; this client's
    own computation must give the same bits, for any matrix."""
    import random

    client = Client(server)
    client.create_experiment(dict(SPEC, runs=20))
    rng = random.Random(5)
    for run in range(20):
        classes = rng.randint(2, 12)
        truth = [rng.randrange(classes) for _ in range(rng.randint(1, 400))]
        predicted = [t if rng.random() < 0.7 else rng.randrange(classes) for t in truth]
        matrix = confusion_matrix(truth, predicted, classes)
        result = fake_result(client.seed("py", run)["seed"], 0.5)
        result["metrics"] = result["epochs"][0]["test"] = metrics_of(matrix)
        result["epochs"][0]["confusion"] = matrix
        stored = client.post_result("py", "bits", run, result)
        assert stored["metrics"] == result["metrics"], f"run {run}: {matrix}"
    # Claimed metrics their matrix does not give are refused.
    result = fake_result(client.seed("py", 0)["seed"], 0.8)
    result["metrics"]["f1"] = result["epochs"][0]["test"]["f1"] = 0.7
    with pytest.raises(ProblemError) as error:
        client.post_result("py", "wrong", 0, result)
    assert error.value.code == "invalid_result"
    assert "the confusion matrix gives 0.8" in error.value.detail


def test_a_busy_server_is_asked_again():
    """503 twice, then an answer: the client waits as asked and goes on."""
    import http.server
    import threading

    answers = [(503, b'{"code":"internal","detail":"busy"}'), (503, b'{"code":"internal","detail":"busy"}'),
               (200, b'{"status":"ok","version":"0","api":"v1"}')]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            status, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        assert Client(url, retries=2).health()["status"] == "ok"
        answers.append((503, b'{"code":"internal","detail":"busy"}'))
        with pytest.raises(ProblemError) as error:
            Client(url, retries=0).health()
        assert error.value.status == 503
    finally:
        httpd.shutdown()


def test_split_stream_vectors_of_every_version_decode():
    vectors = json.loads((ROOT / "crates/reproml-core/tests/vectors/protocol-vectors.json").read_text())
    for v in vectors["split_streams"]:
        raw = bytes.fromhex(v["stream"])
        if v["version"] == 3 and reproml.cache._xxhash is None:
            # Installed without its dependency: said so, never taken on trust.
            with pytest.raises(CorruptStream, match="needs the xxhash package"):
                decode_split(io.BytesIO(raw))
            continue
        split = decode_split(io.BytesIO(raw))
        assert (split.version, split.header) == (v["version"], v["header"])
        assert [[split.index(k), split.label(k), list(split.image(k))] for k in range(len(split))] == v["records"]
        if v["version"] >= 2:
            for at in range(len(raw)):
                bad = bytearray(raw)
                bad[at] ^= 0x01
                with pytest.raises(CorruptStream):
                    decode_split(io.BytesIO(bytes(bad)))


def test_a_long_error_is_cut_at_a_character_boundary_and_accepted(server):
    """The server keeps 4,096 bytes of an error; the client cuts, never the
    server refuses a report the client made."""
    client = Client(server)
    experiment = client.create_experiment({"id": "cut", "model": "mlp", "challenge": "digits", "epochs": 1, "runs": 1})
    long = "é" * MAX_FAILURE_ERROR_BYTES
    cut = cut_error(long)
    assert len(cut.encode("utf-8")) <= MAX_FAILURE_ERROR_BYTES and cut.endswith("\u2026")
    assert cut_error("short") == "short"
    record = client.post_failure("cut", "v", 0, experiment["seeds"][0], long)
    assert record["last_error"] == cut and record["reports"] == 1


def test_an_https_server_is_trusted_through_its_private_ca(tmp_path):
    """`reproml server --tls-cert --tls-key` with a CA made by
    scripts/private-ca.sh: trusted with ca_cert, refused (at once, saying
    what to give) without it."""
    subprocess.run(["bash", str(ROOT / "scripts" / "private-ca.sh"), str(tmp_path), "127.0.0.1", "localhost"],
                   check=True, capture_output=True)
    process = subprocess.Popen(
        [BINARY, "server", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "tls.db"),
         "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key")],
        stderr=subprocess.PIPE, text=True)
    try:
        url = next(word for word in process.stderr.readline().split() if word.startswith("https://"))
        threading.Thread(target=process.stderr.read, daemon=True).start()
        client = Client(url, ca_cert=str(tmp_path / "ca.pem"))
        assert client.health()["status"] == "ok"
        experiment = client.create_experiment({**SPEC, "id": "tls"})
        split = client.split("tls", 0, "test", experiment["seeds"][0])
        assert split.header["examples"] > 0
        with pytest.raises(TlsError, match="--ca-cert"):
            Client(url, retries=3).health()
    finally:
        process.kill()
        process.wait()
