"""Seeded generator of Tetrominoes scenes in the layout of the official file.

A scene is a 35x35 RGB image on a black background holding ``num_objects``
non-overlapping tetrominoes. Each piece is one of the 19 fixed
shape-orientations, drawn with square cells of ``CELL`` pixels in one of six
pure colours, at an integer pixel offset chosen uniformly among those that keep
the whole piece inside the canvas. Pieces may touch but never overlap.

The arrays follow DeepMind's ``multi_object_datasets`` Tetrominoes schema, with
entity 0 the background and padded (all-zero, invisible) entities when a scene
has fewer than the maximum number of objects:

- ``image``: uint8 [N, 35, 35, 3]
- ``mask``: uint8 [N, E, 35, 35, 1], 255 where the entity owns the pixel
- ``x``, ``y``: float32 [N, E], piece centre divided by the image size
- ``shape``: float32 [N, E], index into :data:`SHAPES` (0 for the background)
- ``color``: float32 [N, E, 3], RGB in [0, 1] (black for the background)
- ``visibility``: float32 [N, E], 1 for the background and each piece

where ``E = max objects + 1`` (4 for the default of 3 objects).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mpmkit.utils import atomic_file

GENERATOR_VERSION = 1
IMAGE_SIZE = 35
CELL = 5  # pixels per tetromino cell

COLORS = np.array(
    [
        [255, 0, 0],  # red
        [0, 255, 0],  # green
        [0, 0, 255],  # blue
        [255, 255, 0],  # yellow
        [255, 0, 255],  # magenta
        [0, 255, 255],  # cyan
    ],
    dtype=np.uint8,
)
COLOR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")

_BASE_PIECES = {
    "I": ((0, 0), (0, 1), (0, 2), (0, 3)),
    "O": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "T": ((0, 0), (0, 1), (0, 2), (1, 1)),
    "S": ((0, 1), (0, 2), (1, 0), (1, 1)),
    "Z": ((0, 0), (0, 1), (1, 1), (1, 2)),
    "J": ((0, 0), (1, 0), (1, 1), (1, 2)),
    "L": ((0, 2), (1, 0), (1, 1), (1, 2)),
}


def _normalise(cells):
    r0 = min(r for r, _ in cells)
    c0 = min(c for _, c in cells)
    return tuple(sorted((r - r0, c - c0) for r, c in cells))


def _orientations():
    names, shapes = [], []
    for letter, cells in _BASE_PIECES.items():
        seen = []
        current = _normalise(cells)
        for _ in range(4):
            if current not in seen:
                seen.append(current)
            current = _normalise([(c, -r) for r, c in current])  # rotate 90 degrees
        for k, s in enumerate(seen):
            names.append(f"{letter}{k}")
            shapes.append(s)
    return tuple(names), tuple(shapes)


SHAPE_NAMES, SHAPES = _orientations()
"""The 19 fixed shape-orientations, as (row, col) cells normalised to the origin."""


def shape_template(index: int, cell: int = CELL) -> np.ndarray:
    """Boolean pixel footprint of shape-orientation ``index`` (cells of ``cell`` px)."""
    cells = SHAPES[index]
    h = (max(r for r, _ in cells) + 1) * cell
    w = (max(c for _, c in cells) + 1) * cell
    out = np.zeros((h, w), dtype=bool)
    for r, c in cells:
        out[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = True
    return out


_TEMPLATES = tuple(shape_template(i) for i in range(len(SHAPES)))


def _count_range(num_objects) -> tuple[int, int]:
    if isinstance(num_objects, (int, np.integer)):
        lo = hi = int(num_objects)
    else:
        lo, hi = (int(v) for v in num_objects)
    if not 1 <= lo <= hi <= 6:
        raise ValueError(f"num_objects must be an int or a (min, max) range within 1..6, got {num_objects!r}")
    return lo, hi


def _place(rng: np.random.Generator, k: int, max_tries: int = 200):
    """Sample ``k`` non-overlapping pieces as (shape, colour, top, left) tuples."""
    while True:  # restart the scene on the (rare) dead end
        occupied = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        pieces = []
        for _ in range(k):
            for _ in range(max_tries):
                s = int(rng.integers(len(SHAPES)))
                t = _TEMPLATES[s]
                top = int(rng.integers(IMAGE_SIZE - t.shape[0] + 1))
                left = int(rng.integers(IMAGE_SIZE - t.shape[1] + 1))
                window = occupied[top:top + t.shape[0], left:left + t.shape[1]]
                if not (window & t).any():
                    window |= t
                    pieces.append((s, int(rng.integers(len(COLORS))), top, left))
                    break
            else:
                break
        if len(pieces) == k:
            return pieces


def generate(n: int, seed: int, num_objects=3) -> dict[str, np.ndarray]:
    """Generate ``n`` scenes deterministically from ``seed``.

    ``num_objects`` is an int or an inclusive ``(min, max)`` range sampled
    uniformly per scene. Scenes are drawn one after another from one
    ``numpy.random.Generator``, so ``generate(m, seed)`` is a prefix of
    ``generate(n, seed)`` for ``m <= n``.
    """
    lo, hi = _count_range(num_objects)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    e = hi + 1
    out = {
        "image": np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
        "mask": np.zeros((n, e, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8),
        "x": np.zeros((n, e), np.float32),
        "y": np.zeros((n, e), np.float32),
        "shape": np.zeros((n, e), np.float32),
        "color": np.zeros((n, e, 3), np.float32),
        "visibility": np.zeros((n, e), np.float32),
    }
    for i in range(n):
        k = int(rng.integers(lo, hi + 1))
        background = np.ones((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        for j, (s, c, top, left) in enumerate(_place(rng, k), start=1):
            t = _TEMPLATES[s]
            h, w = t.shape
            out["mask"][i, j, top:top + h, left:left + w, 0][t] = 255
            out["image"][i, top:top + h, left:left + w][t] = COLORS[c]
            background[top:top + h, left:left + w] &= ~t
            out["x"][i, j] = (left + w / 2) / IMAGE_SIZE
            out["y"][i, j] = (top + h / 2) / IMAGE_SIZE
            out["shape"][i, j] = s
            out["color"][i, j] = COLORS[c] / 255.0
            out["visibility"][i, j] = 1.0
        out["mask"][i, 0, :, :, 0][background] = 255
        out["visibility"][i, 0] = 1.0
    return out


def labels_from_masks(mask: np.ndarray) -> np.ndarray:
    """Per-pixel entity ids [N, H, W] from masks [N, E, H, W, 1] (0 = background)."""
    mask = np.asarray(mask)
    if mask.ndim == 5:
        mask = mask[..., 0]
    return mask.argmax(axis=1)


def default_cache_dir() -> Path:
    """``$MPMKIT_CACHE_DIR`` if set, else ``~/.cache/mpmkit``."""
    env = os.environ.get("MPMKIT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mpmkit"


def cache_path(n: int, seed: int, cache_dir=None, num_objects=3) -> Path:
    """Where :func:`load_or_generate` keeps the scenes for these arguments."""
    lo, hi = _count_range(num_objects)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"tetrominoes_v{GENERATOR_VERSION}_n{n}_seed{seed}_k{lo}-{hi}.npz"


def load_or_generate(n: int, seed: int, cache_dir=None, num_objects=3) -> dict[str, np.ndarray]:
    """Load the scenes from the cache, generating and caching them on a miss.

    The file name encodes ``(n, seed, num_objects, GENERATOR_VERSION)``; the file
    is written to a temporary name in the same directory and renamed into place,
    so readers never see a partial file. An unreadable cache file is regenerated.
    """
    path = cache_path(n, seed, cache_dir, num_objects)
    if path.exists():
        try:
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError):
            pass  # corrupt or foreign file: regenerate below
    data = generate(n, seed, num_objects)
    with atomic_file(path) as f:
        np.savez_compressed(f, **data)
    return data
