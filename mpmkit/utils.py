"""Device choice, seeding, and file helpers (atomic writes, checksums) shared by the core and plugins."""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU. A CUDA device without an index (``auto``, ``cuda``) is
    this process's GPU: LOCAL_RANK under torchrun, 0 otherwise. With several torchrun processes on a
    node an explicit index (``cuda:0``) would put them all on one GPU, so it is refused."""
    from .errors import DeviceError

    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} requested but CUDA is not available; use device=auto or cpu")
    local = int(os.environ.get("LOCAL_RANK", 0))
    per_node, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), torch.cuda.device_count()
    if device.index is None:
        if per_node > gpus:  # NCCL refuses two processes on one GPU ("Duplicate GPU detected")
            raise DeviceError(f"torchrun started {per_node} processes on this node but it has {gpus} GPU(s); "
                              f"use --nproc_per_node {gpus} (or device=cpu for Gloo processes)")
        if local >= gpus:
            raise DeviceError(f"LOCAL_RANK={local} but this machine has {gpus} GPU(s); launch one process per GPU "
                              "or pass device=cuda:N")
        return torch.device("cuda", local)
    if per_node > 1:
        raise DeviceError(f"device {name!r} names one GPU for every torchrun process on this node; use "
                          "device=cuda or auto (each process takes the GPU of its LOCAL_RANK)")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort; some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", durable: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` that replaces it when the block ends without error.

    Readers see the old file or the complete new one, never a torn one; on an error the
    temporary file (``.NAME.*.tmp-PID``) is removed. ``durable`` also fsyncs the file and
    its directory, so the new file survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp-{os.getpid()}", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
