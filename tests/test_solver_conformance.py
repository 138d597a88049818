"""Every registered solver (built-in or from a plugin) passes mpmkit's conformance suite."""
from __future__ import annotations

import pytest

from mpmkit import registry
from mpmkit.conformance import CHECKS, ConformanceError, check_solver_conformance, make_problem, run_check
from mpmkit.psa import psa_problem
from mpmkit.solvers import CoordinateAscent, InnerResult, Solver

# Sampling/fitting budgets small enough for CI; every other option is the solver's default.
FAST = {
    "pyro-svi": {"num_steps": 40},
    "pyro-nuts": {"num_samples": 8, "warmup_steps": 8, "map_steps": 20, "max_tree_depth": 3},
}
SOLVERS = registry("solver").names()
# Solvers whose λ has another layout get the same data posed for them.
PROBLEMS = {"psa-em": lambda: psa_problem(make_problem())}


def factory(name):
    return lambda: registry("solver").get(name)(**FAST.get(name, {}))


def test_all_builtin_solvers_are_registered():
    assert {"coordinate-ascent", "gradient", "slot-attention", "learned-posterior", "pyro-svi",
            "pyro-nuts", "psa-em"} <= set(SOLVERS)


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", SOLVERS)
def test_solver_conforms(name, check):
    reason = run_check(check, factory(name), problem_factory=PROBLEMS.get(name, make_problem))
    if reason is not None:
        pytest.skip(f"not applicable: {reason}")


def test_stationary_applies_to_the_ascending_solvers_only():
    """Coordinate ascent, PSA-EM and the plain gradient step get 'stationary'; learned and sampling
    solvers are skipped with a reason instead of passing silently."""
    applies = {n for n in ("coordinate-ascent", "gradient", "psa-em", "learned-posterior", "slot-attention",
                           "pyro-svi", "pyro-nuts")
               if run_check("stationary", factory(n), problem_factory=PROBLEMS.get(n, make_problem)) is None}
    assert applies == {"coordinate-ascent", "gradient", "psa-em"}
    assert "replaces GradientAscent.update" in run_check("stationary", factory("learned-posterior"))
    assert "ascends_surrogate" in run_check("stationary", factory("slot-attention"))


def test_suite_catches_a_solver_that_reads_padding():
    class LeakySolver(CoordinateAscent):
        name = "leaky"

        def solve(self, problem, steps):
            res = super().solve(problem, steps)
            return InnerResult(lam=res.lam + problem.g.mean(1, keepdim=True), q=res.q, trace=res.trace)

    with pytest.raises(ConformanceError, match="'leaky' fails conformance check 'padding'"):
        check_solver_conformance(LeakySolver, checks=["padding"])
    assert check_solver_conformance(CoordinateAscent) == list(CHECKS)


def test_suite_catches_bad_q_and_non_solvers():
    class Unnormalised(CoordinateAscent):
        name = "unnormalised"

        def posterior(self, problem, lam):
            return 2 * super().posterior(problem, lam)

    with pytest.raises(ConformanceError, match="simplex"):
        run_check("simplex", Unnormalised)
    with pytest.raises(ConformanceError, match="not an mpmkit.Solver"):
        run_check("shapes", object)
    with pytest.raises(KeyError, match="available: shapes"):
        run_check("nope", CoordinateAscent)
    assert issubclass(Unnormalised, Solver)


def test_suite_catches_a_solver_that_descends():
    """A solver that claims monotone ascent but steps the wrong way (λ ← 2λ − F(λ)) fails 'ascent'."""
    class Downhill(CoordinateAscent):
        name = "downhill"

        def update(self, problem, lam):
            return 2 * lam - super().update(problem, lam)

    with pytest.raises(ConformanceError, match="'downhill' fails conformance check 'ascent'"):
        run_check("ascent", Downhill)
    run_check("ascent", CoordinateAscent)


def test_suite_catches_ascending_solvers_that_stop_off_the_optimum():
    """Neither a do-nothing step nor an M-step with the prior's precision 1/σ (not 1/σ²) ever lowers the
    surrogate, so both pass 'ascent'; only 'stationary' sees that λ^T is not a stationary point of it."""
    class Lazy(CoordinateAscent):
        name = "lazy"

        def update(self, problem, lam):
            return lam + 0 * problem.g.sum()

    class WrongPrecision(CoordinateAscent):
        name = "wrong-precision"

        def m_step(self, problem, lam, q):
            a, m = problem.prior.minorizer(lam)
            a = a * problem.prior.scale  # 1/σ instead of 1/σ²
            return (a.unsqueeze(-1) * m + q.transpose(1, 2) @ problem.g) / (a + q.sum(1)).unsqueeze(-1)

    for bad in (Lazy, WrongPrecision):
        run_check("ascent", bad)
        with pytest.raises(ConformanceError, match=f"'{bad.name}' fails conformance check 'stationary'"):
            run_check("stationary", bad)
    assert run_check("stationary", CoordinateAscent) is None
