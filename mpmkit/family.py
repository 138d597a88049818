"""A model family: how to build the data, the model and the evaluation for one kind of collection."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from .batch import Batch
from .config import Config
from .model import MPM


@dataclass
class Splits:
    """Train/validation/test collections of datasets and the collate function that batches them."""

    train: Sequence[Any]
    val: Sequence[Any]
    test: Sequence[Any]
    collate: Callable[[list[Any]], Batch]


class Family(ABC):
    """Subclass, set ``options`` (a dataclass of family options; a field without a default is a required
    config key) and implement the three builders; register the class under its name.

    ``defaults`` overrides core training defaults (epochs, lr, ...) for this family. ``name`` and
    ``description`` document it; the registered name is the one used. ``data_keys`` names the
    options that decide which datasets land in the test split (the core adds ``seed``):
    ``mpmkit evaluate --set`` refuses to change them, as that could score the model on data it
    was trained on.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[type]
    defaults: ClassVar[dict[str, Any]] = {}
    data_keys: ClassVar[tuple[str, ...]] = ()

    def check(self, cfg: Config) -> None:
        """Refuse option combinations the option dataclass cannot see on its own (e.g. a local model
        and a solver that do not fit together), cheaply and before any data is built; raise
        ``ConfigError`` naming the fix. The trainer calls it first; the default accepts everything."""

    @abstractmethod
    def build_data(self, cfg: Config) -> Splits:
        """The collection of datasets, split into train / val / test."""

    @abstractmethod
    def build_model(self, cfg: Config) -> MPM:
        """The MPM (prior, likelihood, potential, solver) for this family."""

    @abstractmethod
    def evaluate(self, model: MPM, splits: Splits, cfg: Config, out_dir: Path) -> dict[str, Any]:
        """Metrics on the test split, JSON values (numpy/torch numbers are converted); figures and
        other outputs may be written to ``out_dir``, which exists."""
