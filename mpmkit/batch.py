"""A minibatch of datasets: observations padded to a common size plus a validity mask."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import torch
from torch import Tensor


@dataclass
class Batch:
    """B datasets D_i, each padded to N observations.

    ``x`` is whatever the family's recognition network and likelihood read (points
    ``[B, N, d]``, images ``[B, C, H, W]``, token ids ``[B, N]`` ...); ``mask[i, j]`` is
    True where observation j of dataset i is real. ``extras`` carries labels and other
    per-dataset side information that the model never trains on.
    """

    x: Any
    mask: Tensor
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask.dtype != torch.bool:
            raise TypeError(f"Batch.mask must be bool, got {self.mask.dtype}; build it with mask.bool()")
        if self.mask.dim() != 2:
            raise ValueError(f"Batch.mask must be [B, N], got shape {tuple(self.mask.shape)}")

    @property
    def size(self) -> int:
        """Number of datasets B."""
        return self.mask.shape[0]

    @property
    def n_obs(self) -> Tensor:
        """Observations per dataset, ``[B]`` (integer counts; cast to the model's dtype where needed)."""
        return self.mask.sum(1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """A copy with every tensor moved to ``device``."""
        return replace(
            self,
            x=_move(self.x, device, non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
            extras={k: _move(v, device, non_blocking) for k, v in self.extras.items()},
        )

    def pin_memory(self) -> "Batch":
        return replace(self, x=_pin(self.x), mask=self.mask.pin_memory(),
                       extras={k: _pin(v) for k, v in self.extras.items()})


def _move(v: Any, device, non_blocking: bool) -> Any:
    if isinstance(v, Tensor):
        return v.to(device, non_blocking=non_blocking)
    if isinstance(v, dict):
        return {k: _move(u, device, non_blocking) for k, u in v.items()}
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], Tensor):
        return type(v)(_move(u, device, non_blocking) for u in v)
    return v


def _pin(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.pin_memory()
    if isinstance(v, dict):
        return {k: _pin(u) for k, u in v.items()}
    return v


def pad_datasets(items: Sequence[Tensor], pad_value: float = 0.0) -> tuple[Tensor, Tensor]:
    """Stack variable-size datasets ``[N_i, ...]`` into ``x [B, N_max, ...]`` and ``mask [B, N_max]``."""
    if len(items) == 0:
        raise ValueError("pad_datasets got no datasets; a batch needs at least one")
    if not math.isfinite(pad_value):
        raise ValueError(f"pad_value must be finite, got {pad_value}: padded entries still pass through g_φ and the "
                         "likelihood (masked afterwards), and a NaN there turns gradients into NaN (0 · NaN = NaN)")
    tail = items[0].shape[1:]
    for i, t in enumerate(items):
        if t.shape[1:] != tail:
            raise ValueError(
                f"dataset {i} has observations of shape {tuple(t.shape[1:])}, expected {tuple(tail)} like dataset 0"
            )
    n_max = max(t.shape[0] for t in items)
    x = items[0].new_full((len(items), n_max, *tail), pad_value)
    mask = torch.zeros(len(items), n_max, dtype=torch.bool)
    for i, t in enumerate(items):
        x[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return x, mask
