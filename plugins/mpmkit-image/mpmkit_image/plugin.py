"""mpmkit plugin entry point for the image (object-centric) plugin.

Registers the ``tetrominoes`` family, the Tetrominoes generator and TFRecord reader as datasets, and
FG-ARI / pixel ARI as metrics. Heavy imports happen only when a component is used.
"""
from __future__ import annotations

from mpmkit import hookimpl


def _tetrominoes(n: int, seed: int, num_objects=3, cache_dir=None):
    from .tetrominoes import load_or_generate

    return load_or_generate(n, seed, cache_dir=cache_dir, num_objects=num_objects)


def _tetrominoes_tfrecord(path, limit=None):
    from .tfrecord import read_tetrominoes

    return read_tetrominoes(path, limit=limit)


def _fg_ari(pred, truth, **kw):
    from .metrics import fg_ari

    return fg_ari(truth, pred, **kw)


def _pixel_ari(pred, truth, **kw):
    from .metrics import ari

    return ari(truth, pred, **kw)


@hookimpl
def register_datasets(register):
    register("tetrominoes", _tetrominoes)
    register("tetrominoes-tfrecord", _tetrominoes_tfrecord)


@hookimpl
def register_metrics(register):
    register("fg-ari", _fg_ari)
    register("pixel-ari", _pixel_ari)


@hookimpl
def register_families(register):
    from .family import TetrominoesFamily

    register(TetrominoesFamily.name, TetrominoesFamily)
