"""Images as datasets, pixels as observations: validation, scene lists and the collate function.

A batch of B images holds ``x = {"image": [B, 3, H, W] float in [0, 1], "index": [B, N] long}``
and ``mask [B, N]``: observation j of image i is pixel ``index[i, j]`` (row-major). Training
scenes may carry a random subset of their pixels (``pixels > 0``); the recognition network still
sees the whole image, but the inner loop and the likelihood only use the chosen pixels.
Different subset sizes are padded; padded observations are masked out everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from mpmkit import Batch
from mpmkit.batch import pad_datasets

from .tetrominoes import IMAGE_SIZE, labels_from_masks


def check_images(images, size: int = IMAGE_SIZE) -> np.ndarray:
    """Validate ``images`` (uint8 ``[N, size, size, 3]``, values 0..255) and return them as a numpy array."""
    images = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if images.ndim == 3:
        raise ValueError(f"images must be a batch [N, {size}, {size}, 3]; got one image of shape {images.shape}: "
                         "add a leading axis (images[None])")
    if images.ndim != 4:
        raise ValueError(f"images must be [N, {size}, {size}, 3] (channels last), got shape {images.shape}")
    if images.shape[-1] != 3:
        if images.shape[1] == 3:
            raise ValueError(f"images must be channels-last [N, H, W, 3], got {images.shape}: "
                             "transpose with images.transpose(0, 2, 3, 1)")
        raise ValueError(f"images must have 3 colour channels (RGB), got {images.shape[-1]} in shape "
                         f"{images.shape}; convert greyscale/RGBA to RGB first")
    if images.shape[1:3] != (size, size):
        raise ValueError(f"images must be {size}x{size} pixels (the Tetrominoes size), got "
                         f"{images.shape[1]}x{images.shape[2]}; resize or crop them first")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 in 0..255, got dtype {images.dtype}; if they are floats in [0, 1] "
                         "use (images * 255).round().astype(np.uint8)")
    return images


@dataclass
class Scene:
    """One image (a dataset D_i): ``image [3, H, W]`` float in [0, 1], ground-truth ``labels [H*W]``
    (entity ids, 0 = background), and which pixels are its observations (``index``; None = all)."""

    image: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.image.shape[1] * self.image.shape[2] if self.index is None else len(self.index)


class SceneList(Sequence):
    """Scenes ``rows`` of uint8 arrays, converted on access; ``pixels > 0`` draws that many random
    pixels per access (training), ``0`` keeps every pixel (validation, test)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, rows: Sequence[int] | None = None, pixels: int = 0):
        self.images, self.labels = images, labels
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows)
        self.pixels = int(pixels)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return SceneList(self.images, self.labels, self.rows[i], self.pixels)
        r = int(self.rows[i])
        image = torch.from_numpy(self.images[r]).permute(2, 0, 1).float() / 255.0
        labels = torch.from_numpy(np.asarray(self.labels[r]).reshape(-1)).long()
        index = None
        hw = labels.numel()
        if 0 < self.pixels < hw:
            index = torch.randperm(hw)[: self.pixels].sort().values
        return Scene(image, labels, index)


def scenes_from_arrays(data: dict, rows=None, pixels: int = 0) -> SceneList:
    """A :class:`SceneList` over a dict of arrays as the generator / TFRecord reader return it."""
    images = check_images(data["image"])
    return SceneList(images, labels_from_masks(data["mask"]), rows, pixels)


def collate(scenes: list[Scene]) -> Batch:
    """Stack scenes into a :class:`~mpmkit.Batch` (see the module docstring for the layout)."""
    if not scenes:
        raise ValueError("collate got no scenes; a batch needs at least one image")
    shape = scenes[0].image.shape
    for s in scenes:
        if s.image.shape != shape:
            raise ValueError(f"all images of a batch must have one shape, got {tuple(shape)} and {tuple(s.image.shape)}")
    hw = shape[1] * shape[2]
    full = torch.arange(hw)
    index, mask = pad_datasets([(full if s.index is None else s.index).long() for s in scenes])
    labels, _ = pad_datasets([s.labels for s in scenes])
    return Batch(x={"image": torch.stack([s.image for s in scenes]), "index": index}, mask=mask,
                 extras={"labels": labels})


def pixel_colours(x: dict) -> torch.Tensor:
    """Colours of the observed pixels, ``[B, N, 3]``."""
    image, index = x["image"], x["index"]
    flat = image.flatten(2)  # [B, 3, HW]
    return flat.gather(2, index.unsqueeze(1).expand(-1, 3, -1)).transpose(1, 2)
