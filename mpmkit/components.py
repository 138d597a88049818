"""Build registered components by name, with errors that say what exists and what fits."""
from __future__ import annotations

import inspect
import typing
from typing import Any

from .config import coerce
from .errors import ConfigError, IncompatibleSolverError
from .plugins import registry
from .solvers import InnerProblem, Solver


def make_solver(name: str, backward: str = "full", **options: Any) -> Solver:
    """A registered solver by name (unknown names list the registered ones; unknown options list the
    solver's own)."""
    factory = registry("solver").get(name)
    accepted, complete = _options_of(factory)

    def refuse(bad: list[str]) -> ConfigError:
        return ConfigError(f"solver {name!r} does not take option(s) {', '.join(map(repr, bad))}; "
                           f"its options: {', '.join(accepted) or 'none'}")

    try:
        inspect.signature(factory).bind(backward=backward, **options)
    except TypeError:
        raise refuse(sorted(set(options) - set(accepted)) or sorted(options)) from None
    except ValueError:  # no signature (a C callable): let the call itself complain
        pass
    bad = sorted(set(options) - set(accepted))
    if complete and bad:  # **kw passed along to FixedPointSolver: its names are the last word
        raise refuse(bad)
    hints = _option_types(factory)
    options = {k: coerce(f"solver_options.{k}", hints[k], v) if k in hints else v for k, v in options.items()}
    try:
        return factory(backward=backward, **options)
    except (ValueError, TypeError) as exc:  # a value the solver refuses: a config error, not a crash
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "none"
        raise ConfigError(f"solver {name!r} refused its options ({shown}): {exc}; fix solver_options, e.g. "
                          f"--set 'solver_options={{...}}'") from exc


def solver_from_config(cfg, local: str = "mpm", **defaults) -> Solver:
    """The solver a run's config asks for: ``solver``, ``backward`` and ``solver_options``.

    ``local="psa"`` (a family whose per-dataset GMM is PSA's): the closed-form coordinate ascent
    is ``psa-em``, Proposition 1 generalised to mixing weights and variances. ``defaults`` are
    solver options a family sets, which the config's ``solver_options`` override."""
    name = "psa-em" if local == "psa" and cfg.solver == "coordinate-ascent" else cfg.solver
    if "backward" in cfg.solver_options:
        raise ConfigError(f"solver_options sets 'backward', which is a top-level key: use --set "
                          f"backward={cfg.solver_options['backward']} instead")
    return make_solver(name, cfg.backward, **{**defaults, **dict(cfg.solver_options)})


def _options_of(factory) -> tuple[list[str], bool]:
    """Keyword options a solver factory accepts, following ``**kw`` into FixedPointSolver, and whether
    that list is complete (the ``**kw`` chain of a class ends in an ``__init__`` without one)."""
    names: list[str] = []
    is_class = isinstance(factory, type)
    readable = True  # every signature on the way could be read
    for cls in factory.__mro__ if is_class else (factory,):
        try:
            params = inspect.signature(cls.__init__ if is_class else cls).parameters.values()
        except (TypeError, ValueError):
            readable = False
            continue
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in ("self", "backward") and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names, is_class and readable
    return names, False


def _option_types(factory) -> dict[str, Any]:
    """Annotated types of a solver factory's keyword options (the first annotation of a name wins,
    following ``**kw`` up the classes); names whose annotation cannot be resolved are left out."""
    types: dict[str, Any] = {}
    for fn in [c.__init__ for c in factory.__mro__] if isinstance(factory, type) else [factory]:
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # noqa: BLE001 - an unresolvable annotation only means the value is not checked
            continue
        for k, tp in hints.items():
            types.setdefault(k, tp)
    types.pop("return", None)
    return types


def compatible_solvers(problem: InnerProblem) -> list[str]:
    """Names of registered solvers whose ``check`` accepts ``problem``."""
    ok = []
    for name in registry("solver").names():
        try:
            registry("solver").get(name)().check(problem)
        except IncompatibleSolverError:
            continue
        except Exception:  # noqa: BLE001 - a solver that cannot even be built is not an alternative
            continue
        ok.append(name)
    return ok


def check_solver(solver: Solver, problem: InnerProblem) -> None:
    """Raise :class:`IncompatibleSolverError` naming the solvers that can serve ``problem``."""
    try:
        solver.check(problem)
    except IncompatibleSolverError as exc:
        raise IncompatibleSolverError(exc.solver, exc.why, compatible_solvers(problem)) from None
