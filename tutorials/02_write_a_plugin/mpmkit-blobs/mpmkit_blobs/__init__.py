"""mpmkit-blobs: a tutorial plugin for mpmkit.

This module is the entry point (``[project.entry-points.mpmkit] blobs = "mpmkit_blobs"``). It holds
only the hook implementations; each imports its component lazily, so ``mpmkit plugins`` stays fast
and a broken submodule is reported as this plugin's load error.

Registers:

- family ``blobs`` (:class:`mpmkit_blobs.family.BlobsFamily`);
- prior ``shrinkage`` (:class:`mpmkit_blobs.priors.ShrinkagePrior`), usable by any family;
- dataset ``blobs`` (:func:`mpmkit_blobs.data.make_blobs`).
"""
from __future__ import annotations

from mpmkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_families(register):
    from .family import BlobsFamily

    register("blobs", BlobsFamily)


@hookimpl
def register_priors(register):
    from .priors import ShrinkagePrior

    register("shrinkage", lambda dim, scale=1.0, **kw: ShrinkagePrior(dim, scale=scale))


@hookimpl
def register_datasets(register):
    from .data import make_blobs

    register("blobs", make_blobs)
