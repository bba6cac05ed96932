"""PyTorch determinism: everything PyTorch offers, recorded in the fingerprint."""

from __future__ import annotations

import os
import platform
import random
import warnings
from typing import Dict

import numpy as np
import torch as _torch


def configure(seed: int, threads: int = 1) -> Dict[str, str]:
    """Seeds every generator and asks PyTorch for deterministic algorithms;
    returns what was set, for the run's fingerprint."""
    if "PYTHONHASHSEED" not in os.environ:
        warnings.warn("PYTHONHASHSEED is not set: set it (e.g. to 0) before starting Python for hash-stable runs")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _torch.manual_seed(seed)
    if _torch.cuda.is_available():
        _torch.cuda.manual_seed_all(seed)
    _torch.use_deterministic_algorithms(True)
    _torch.backends.cudnn.deterministic = True
    _torch.backends.cudnn.benchmark = False
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
FIXED_KEYS = ("torch", "torch_git", "numpy", "backend", "cuda", "cudnn", "gpu", "threads", "deterministic",
              "dataset")
