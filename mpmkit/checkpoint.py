"""Checkpoints: tensors in safetensors, everything else in JSON; written atomically; never unpickled.

Layout of a run directory::

    checkpoints/step-00000120/{tensors.safetensors, state.json}
    checkpoints/latest.json   -> {"path": "step-00000120"}
    checkpoints/best.json     -> {"path": "step-00000100", "val_loss": ...}

A checkpoint directory is written under a temporary name and renamed into place; the pointer
files are replaced with ``os.replace``. A kill at any moment leaves the previous pointer
valid. ``state.json`` records the SHA-256 of the tensor file, so a torn or corrupted file is
detected on load.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError
from .utils import atomic_file, fsync_dir, sha256_file

FORMAT = "mpmkit-checkpoint-v1"
TENSORS, STATE = "tensors.safetensors", "state.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new file, never a torn one."""
    with atomic_file(path, "w", durable=True) as f:
        f.write(text)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_value) + "\n")


def plain(obj: Any) -> Any:
    """``obj`` with numpy/torch numbers and arrays (and paths) turned into JSON's own types; NaN
    and ±inf, which standard JSON lacks (``jq`` and browsers reject them), become ``None``."""
    return _finite(json.loads(json.dumps(obj, default=_json_value)))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _json_value(obj: Any) -> Any:
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays, torch tensors
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable ({obj!r:.80}); return numbers, strings, "
                    "lists or dicts from evaluate()")


def save(ckpt_dir: Path, name: str, tensors: dict[str, torch.Tensor], state: dict[str, Any],
         pointer: str | None = "latest", pointer_extra: dict[str, Any] | None = None) -> Path:
    """Write checkpoint ``ckpt_dir/name`` atomically and point ``pointer`` (``latest``/``best``) at it."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / name
    tmp = ckpt_dir / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(tensors, str(tmp / TENSORS), metadata={"format": FORMAT})
    with open(tmp / TENSORS, "rb+") as f:
        os.fsync(f.fileno())
    state = {**state, "format": FORMAT, "sha256": sha256_file(tmp / TENSORS)}
    atomic_write_json(tmp / STATE, state)
    old = None
    if final.exists():  # move the old copy aside first: the pointer dangles for two renames, not an rmtree
        old = ckpt_dir / f".{name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(ckpt_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if pointer:
        atomic_write_json(ckpt_dir / f"{pointer}.json", {"path": name, **(pointer_extra or {})})
    return final


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint directory (or a run's ``checkpoints/`` dir via ``latest.json``); verify it."""
    path = Path(path)
    if path.is_file():
        _refuse_file(path)
    if (path / "latest.json").exists() and not (path / STATE).exists():
        path = resolve(path, "latest")
    if not (path / STATE).exists() or not (path / TENSORS).exists():
        raise CheckpointError(f"{str(path)!r} is not an mpmkit checkpoint (expected {STATE} and {TENSORS} inside)")
    try:
        state = json.loads((path / STATE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {STATE} is corrupted ({exc}); "
                              f"{_earlier(path)}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} has format {got!r}, expected {FORMAT!r}; "
                              "it was not written by this mpmkit")
    _refuse_pickle(path / TENSORS)
    if sha256_file(path / TENSORS) != state.get("sha256"):
        raise CheckpointError(f"checkpoint {str(path)!r}: {TENSORS} does not match its recorded SHA-256 "
                              f"(truncated or corrupted); {_earlier(path)}")
    try:
        tensors = load_file(str(path / TENSORS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: cannot read tensors ({exc}); {_earlier(path)}") from exc
    return tensors, state


def available(ckpt_dir: Path) -> list[str]:
    """Names of the complete-looking checkpoints in ``ckpt_dir``, oldest first."""
    return sorted(p.name for p in Path(ckpt_dir).glob("*-*")
                  if p.is_dir() and not p.name.startswith(".") and (p / STATE).exists() and (p / TENSORS).exists())


def _earlier(path: Path, pointer: str = "latest") -> str:
    others = [n for n in available(path.parent) if n != path.name]
    if not others:
        return "no other checkpoint is left; start a new run with another --out"
    use = ("to resume from one" if pointer == "latest" else
           f"to use one as the {pointer} checkpoint (or evaluate with --checkpoint latest)")
    return (f"other checkpoints in {str(path.parent)!r}: {', '.join(others)}; {use}, write "
            f'{{"path": "{others[-1]}"}} into {str(path.parent / f"{pointer}.json")!r}')


def clean_temporary(ckpt_dir: Path) -> None:
    """Remove half-written ``.*.tmp-*`` leftovers of a killed writer (never a complete checkpoint)."""
    for p in Path(ckpt_dir).glob(".*.tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def resolve(ckpt_dir: Path, pointer: str = "latest") -> Path:
    """The checkpoint directory a pointer file names."""
    ptr = Path(ckpt_dir) / f"{pointer}.json"
    if not ptr.exists():
        raise CheckpointError(f"no {pointer} checkpoint in {str(ckpt_dir)!r} ({ptr.name} missing)")
    try:
        name = json.loads(ptr.read_text())["path"]
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise TypeError(f"bad path {name!r}")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{str(ptr)!r} is corrupted ({exc}); {_earlier(ptr, pointer)}") from exc
    target = Path(ckpt_dir) / name
    if not target.is_dir():
        aside = sorted(Path(ckpt_dir).glob(f".{name}.old-*"))
        if aside and (aside[-1] / STATE).is_file():  # an overwrite was killed between its two renames
            os.replace(aside[-1], target)
            fsync_dir(Path(ckpt_dir))
    if not target.is_dir():
        raise CheckpointError(f"{str(ptr)!r} points at {name!r}, which does not exist; {_earlier(target, pointer)}")
    return target


def prune(ckpt_dir: Path, keep: int, protect: set[str] = frozenset()) -> None:
    """Delete all but the newest ``keep`` step checkpoints (never the protected ones)."""
    steps = sorted(p for p in Path(ckpt_dir).glob("step-*") if p.is_dir())
    for p in steps[: max(0, len(steps) - keep)]:
        if p.name not in protect:
            shutil.rmtree(p, ignore_errors=True)


def _refuse_pickle(path: Path) -> None:
    """Raise if ``path`` starts like a pickle or a torch.save zip (it is never unpickled)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head == b"PK\x03\x04":
        raise CheckpointError(f"{str(path)!r} is a pickled (torch.save) file; mpmkit never unpickles checkpoints. "
                              "Convert it with safetensors.torch.save_file in a trusted session.")


def _refuse_file(path: Path) -> None:
    _refuse_pickle(path)
    raise CheckpointError(f"{str(path)!r} is a file; pass an mpmkit checkpoint directory or run directory")


# -- (de)serialising training state -------------------------------------------------------------

def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for key, v in meta.get("scalars", {}).items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import random

    import numpy as np

    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    s = np.random.get_state()
    py = random.getstate()
    return tensors, {"numpy": [s[0], s[1].tolist(), s[2], s[3], s[4]], "python": [py[0], list(py[1]), py[2]]}


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        here = torch.cuda.device_count()
        for i, key in enumerate(cuda[:here]):  # device i gets the state saved for device i (numeric order)
            torch.cuda.set_rng_state(tensors[key], i)
        if len(cuda) > here:
            warnings.warn(f"the checkpoint holds RNG states of {len(cuda)} CUDA devices, this machine has {here}; "
                          f"the other {len(cuda) - here} are not restored, so random draws on them differ",
                          stacklevel=2)
    s = meta["numpy"]
    np.random.set_state((s[0], np.asarray(s[1], dtype=np.uint32), s[2], s[3], s[4]))
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
