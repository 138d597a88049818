"""Datasets that live in files: how a plugin says where one is and how to download it.

A plugin registers a dataset with ``register(name, loader)``. A loader that is a
:class:`DatasetSource` also tells ``mpmkit data`` where the files are found (``locate``)
and how to download and check them (``fetch``, with the archive's ``url`` and ``sha256``)::

    register("ap", DatasetSource(load=read_ap, locate=find_ap, fetch=fetch_ap, url=AP_URL, sha256=AP_SHA256))

Generated datasets (and loaders that read a path you pass) stay plain callables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class DatasetSource:
    """A file-backed dataset: ``load(...)`` reads it; ``locate()`` returns the path it would read
    (raising ``FileNotFoundError`` that lists the places tried); ``fetch(dest=None, force=False)``
    downloads it, checks ``sha256`` and returns the path written. ``files`` maps file names (next to
    the located file) to their expected sha256, so ``mpmkit data list`` can tell a copy from the original."""

    load: Callable[..., Any]
    locate: Optional[Callable[[], Path]] = None
    fetch: Optional[Callable[..., Path]] = None
    url: Optional[str] = None
    sha256: Optional[str] = None
    files: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load(*args, **kwargs)


def check_files(loader: "DatasetSource", found: Path) -> dict[str, Optional[bool]]:
    """File name -> its sha256 matches ``loader.files`` (None: the file is not there), for the files next to ``found``."""
    from .utils import sha256_file

    out: dict[str, Optional[bool]] = {}
    for name, digest in loader.files.items():
        path = Path(found).parent / name
        out[name] = sha256_file(path) == digest if path.is_file() else None
    return out


def where(loader: Any) -> tuple[str, Optional[Path]]:
    """(``"found"`` | ``"missing"`` | ``"in code"``, path) of a registered dataset loader."""
    if not isinstance(loader, DatasetSource) or loader.locate is None:
        return "in code", None
    try:
        return "found", Path(loader.locate())
    except FileNotFoundError:
        return "missing", None
