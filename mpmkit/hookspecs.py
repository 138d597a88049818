"""Every hook a plugin can implement. Each receives ``register(name, factory)``.

A plugin is a module (or object) with functions named after these hooks, decorated with
``mpmkit.hookimpl``, exposed through an entry point in the ``mpmkit`` group::

    [project.entry-points.mpmkit]
    myfamily = "my_package.plugin"
"""
from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("mpmkit")
hookimpl = pluggy.HookimplMarker("mpmkit")

Register = Callable[[str, object], None]


@hookspec
def register_priors(register: Register) -> None:
    """Register priors p_η(λ): ``register(name, factory)``; factory(dim=..., **options) -> Prior."""


@hookspec
def register_likelihoods(register: Register) -> None:
    """Register likelihood families p_θ: ``register(name, Likelihood subclass or factory)``; the core calls
    none itself, so the factory's arguments are those the families that look it up pass."""


@hookspec
def register_potentials(register: Register) -> None:
    """Register surrogate potentials ψ_φ: ``register(name, factory)``; factory(recognition) -> Potential."""


@hookspec
def register_solvers(register: Register) -> None:
    """Register inner solvers: ``register(name, factory)``; factory(backward=..., **options) -> Solver."""


@hookspec
def register_families(register: Register) -> None:
    """Register model families (data + model + evaluation): ``register(name, Family subclass)``."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset loaders/generators: ``register(name, callable returning datasets)``."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: ``register(name, fn(predicted, truth, **kw) -> float)``."""


#: hook name -> registry kind (singular, used in messages)
KINDS = {
    "register_priors": "prior",
    "register_likelihoods": "likelihood",
    "register_potentials": "potential",
    "register_solvers": "solver",
    "register_families": "family",
    "register_datasets": "dataset",
    "register_metrics": "metric",
}
