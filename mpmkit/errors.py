"""Error types that name the problem and the fix."""
from __future__ import annotations

import difflib
from typing import Iterable


class MPMKitError(Exception):
    """Base class of mpmkit's own errors."""


class UnknownNameError(MPMKitError, KeyError):
    """A name (family, solver, prior ...) that no loaded plugin registered."""

    def __init__(self, kind: str, name: str, available: Iterable[str], hint: str = ""):
        self.kind, self.name, self.available = kind, name, sorted(available)
        close = difflib.get_close_matches(name, self.available, n=1)
        msg = f"unknown {kind} {name!r}; available: {', '.join(self.available) or '(none)'}"
        msg += f". Did you mean {close[0]!r}?" if close else "."
        if hint:
            msg += f" {hint}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class IncompatibleSolverError(MPMKitError, ValueError):
    """A solver asked to serve a model it cannot (e.g. no closed form)."""

    def __init__(self, solver: str, why: str, alternatives: Iterable[str] = ()):
        self.solver, self.why = solver, why
        alt = sorted(alternatives)
        msg = f"solver {solver!r} cannot serve this model: {why}"
        if alt:
            msg += f". Solvers that can: {', '.join(alt)}"
        super().__init__(msg)


class ConfigError(MPMKitError, ValueError):
    """A configuration key or value that is not allowed."""


class DeviceError(ConfigError, RuntimeError):
    """A ``device`` key that names no device, or one this machine or launch cannot use."""


class PluginError(MPMKitError, RuntimeError):
    """A plugin failed to load or registered something invalid."""


class CheckpointError(MPMKitError, RuntimeError):
    """A checkpoint that is missing, torn, pickled, or from another run."""


class DataError(MPMKitError, ValueError):
    """Training data that cannot be used as is (empty, NaN/Inf); names the dataset."""


class DivergenceError(MPMKitError, FloatingPointError):
    """Training produced a non-finite loss or gradient; names the step and the tensor."""
