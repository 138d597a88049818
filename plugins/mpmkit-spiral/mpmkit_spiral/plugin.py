"""mpmkit plugin entry point (``[project.entry-points.mpmkit] spiral``).

Registers the ``spiral-gmm`` family and the ``spiral`` dataset generator. Heavy imports happen
only when a component is used.
"""
from __future__ import annotations

from mpmkit import hookimpl


def _spiral_datasets(num_datasets: int, seed: int = 0, **options):
    """``generate(num_datasets, seed=..., **options)``: a list of :class:`~mpmkit_spiral.data.SpiralDataset`."""
    from .data import generate

    return generate(num_datasets, seed=seed, **options)


@hookimpl
def register_families(register):
    from .family import SpiralGMMFamily

    register(SpiralGMMFamily.name, SpiralGMMFamily)


@hookimpl
def register_datasets(register):
    register("spiral", _spiral_datasets)
