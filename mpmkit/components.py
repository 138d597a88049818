"""Build registered components by name, with errors that say what exists and what fits."""
from __future__ import annotations

from typing import Any

from .errors import IncompatibleSolverError
from .plugins import registry
from .solvers import InnerProblem, Solver


def make_solver(name: str, backward: str = "full", **options: Any) -> Solver:
    """A registered solver by name (unknown names list the registered ones)."""
    return registry("solver").get(name)(backward=backward, **options)


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
