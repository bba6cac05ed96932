"""What every test shares: the clients under test (this one, and the Rust
binary the tests start) keep data sets in a temporary folder, removed at
the end, never in the user's ~/.cache/reproml."""

import atexit
import os
import shutil
import tempfile

if "REPROML_CACHE_DIR" not in os.environ:
    _folder = tempfile.mkdtemp(prefix="reproml-test-cache-")
    os.environ["REPROML_CACHE_DIR"] = _folder
    atexit.register(shutil.rmtree, _folder, ignore_errors=True)
