"""PyTorch determinism: everything PyTorch offers, recorded in the fingerprint."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import random
import subprocess
import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import torch as _torch


def configure(seed: int, threads: int = 1, deterministic: bool = True) -> Dict[str, str]:
    """Seeds every generator and asks PyTorch for deterministic algorithms;
    returns what was set, for the run's fingerprint. `deterministic=False`
    puts PyTorch's own defaults back instead (to measure what the settings
    change); the fingerprint records either way."""
    if not os.environ.get("PYTHONHASHSEED"):
        warnings.warn("PYTHONHASHSEED is not set: set it (e.g. to 0) before starting Python for hash-stable runs")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _torch.manual_seed(seed)
    if _torch.cuda.is_available():
        _torch.cuda.manual_seed_all(seed)
    _torch.use_deterministic_algorithms(deterministic)
    _torch.backends.cudnn.deterministic = deterministic
    _torch.backends.cudnn.benchmark = not deterministic
    # TF32 rounds float32 matrix products to 10 mantissa bits on Ampere and
    # later GPUs: off, so a run's numbers do not depend on the GPU's
    # generation (PyTorch's defaults: off for matrix products, on for cuDNN).
    _torch.backends.cuda.matmul.allow_tf32 = False
    _torch.backends.cudnn.allow_tf32 = not deterministic
    _torch.set_num_threads(threads)
    return fingerprint()


def data_loader_generator(seed: int) -> _torch.Generator:
    """A seeded generator for a DataLoader (`generator=`)."""
    g = _torch.Generator()
    g.manual_seed(seed)
    return g


def worker_init(worker_id: int) -> None:
    """`worker_init_fn` for DataLoader workers: seeds each from torch's seed."""
    seed = (_torch.initial_seed() + worker_id) % 2**32
    np.random.seed(seed)
    random.seed(seed)


def fingerprint() -> Dict[str, str]:
    """The runtime: torch version and git revision, CUDA/cuDNN, CPU, threads."""
    f = {
        "client": "reproml-python",
        "torch": _torch.__version__,
        "torch_git": str(getattr(_torch.version, "git_version", "")),
        "cuda": str(_torch.version.cuda),
        "cudnn": str(_torch.backends.cudnn.version()),
        "gpu": _torch.cuda.get_device_name(0) if _torch.cuda.is_available() else "none",
        "cpu": platform.processor() or platform.machine(),
        "threads": str(_torch.get_num_threads()),
        "deterministic": str(_torch.are_deterministic_algorithms_enabled()),
        "cudnn_deterministic": str(_torch.backends.cudnn.deterministic),
        "cudnn_benchmark": str(_torch.backends.cudnn.benchmark),
        "tf32": str(_torch.backends.cuda.matmul.allow_tf32 or _torch.backends.cudnn.allow_tf32),
        "torch_package": " ".join(package_of_torch() or ("unknown", "")).strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "os": platform.platform(),
        "backend": "torch-cpu" if not _torch.cuda.is_available() else "torch-cuda",
    }
    for var in ["PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]:
        if var in os.environ:
            f[f"env.{var}"] = os.environ[var]
    # What PyTorch's numbers depend on, the thread count included (a run at
    # 2 threads differs from one at 1): the server refuses a run of a
    # variant that differs from the variant's first run in any of these.
    f["fixed"] = ",".join(FIXED_KEYS)
    return f


#: The fingerprint entries a run's results depend on (docs/protocol.md, "A
#: variant is one artifact"); `dataset` (the digest of the data the run's
#: splits came from) is filled in by `reproml.run`, which fetched them.
FIXED_KEYS = ("torch", "torch_git", "torch_package", "numpy", "backend", "device", "cuda", "cudnn", "gpu", "threads",
              "deterministic", "cudnn_deterministic", "cudnn_benchmark", "tf32", "dataset")


@functools.lru_cache(maxsize=1)
def package_of_torch() -> Optional[Tuple[str, str]]:
    """The distribution package the imported torch comes from, with its
    version: Debian's package database (`python3-torch 1.13.1+dfsg-4`),
    else pip's metadata (`torch 2.5.1+cpu`); None when neither knows it.
    `torch.__version__` alone does not identify a build: Debian's reports
    1.13.0a0 with git revision "Unknown". Asked once per process: the
    package database takes about 70 ms to answer."""
    # Debian's package database first: its torch's own metadata says only
    # "1.13.0a0+gitunknown". A torch in a virtual environment is no
    # package's file, and pip's metadata names it.
    try:
        owner = subprocess.run(["dpkg-query", "-S", _torch.__file__], capture_output=True, text=True, timeout=10,
                               check=True).stdout
        package = owner.split(":", 1)[0].strip()
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
        if package and version:
            return (package, version)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return ("torch", importlib.metadata.version("torch"))
    except importlib.metadata.PackageNotFoundError:
        return None


def artifact_name() -> str:
    """A name that identifies the PyTorch build a run used."""
    git = str(getattr(_torch.version, "git_version", "") or "")
    package = package_of_torch()
    parts = [f"reproml-python-torch-{_torch.__version__}"]
    if git and git != "Unknown":
        parts.append(f"git {git[:12]}")
    if package:
        parts.append(f"{package[0]} {package[1]}")
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")
