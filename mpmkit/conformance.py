"""Conformance checks every inner solver must pass, built-in or third-party.

::

    from mpmkit.conformance import check_solver_conformance

    def test_my_solver_conforms():
        check_solver_conformance(lambda: MySolver(backward="full"))

or one pytest test per check::

    import pytest
    from mpmkit.conformance import CHECKS, run_check

    @pytest.mark.parametrize("check", sorted(CHECKS))
    def test_my_solver(check):
        run_check(check, lambda: MySolver())

``solver_factory()`` must return a fresh, unbound solver; the checks call ``bind(K, D)`` on it (a no-op
for solvers without layers). A check returns ``None`` when it ran and passed, or a string giving the
reason it does not apply to this solver (e.g. ``ascent`` for a solver that does not declare
``ascends_surrogate``); :func:`run_check` passes that reason on, so a test can report it as a skip.
The default problem is a small GMM-prior / Euclidean-potential problem on CPU in float32 with ragged
datasets (``make_problem``); pass ``problem_factory`` to use your own.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import torch

from .solvers import GradientAscent, InnerProblem, InnerResult, Solver
from .solvers.gradient import max_q_surrogate

SolverFactory = Callable[[], Solver]
ProblemFactory = Callable[..., InnerProblem]


class ConformanceError(AssertionError):
    """A solver broke one of the conformance rules; the message names the solver and the rule."""


def make_problem(batch: int = 3, points: int = 12, slots: int = 3, dim: int = 2, seed: int = 0,
                 pad: int = 0) -> InnerProblem:
    """A small inner problem: ``batch`` ragged datasets of clustered 2-D-like points, GMM prior, Euclidean ψ.

    Dataset i has ``points - 2 i`` real observations; ``pad`` extra padded observations filled with
    large garbage values are appended (a solver that reads them changes its answer).
    """
    from .potentials import EuclideanPotential
    from .priors import GMMPrior

    if batch < 1 or points < 2 * batch or slots < 1 or dim < 1 or pad < 0:
        raise ValueError(f"need batch >= 1, points >= 2*batch, slots >= 1, dim >= 1, pad >= 0; got "
                         f"batch={batch}, points={points}, slots={slots}, dim={dim}, pad={pad}")
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(batch, slots, dim, generator=gen) * 3
    z = torch.randint(0, slots, (batch, points), generator=gen)
    g = torch.gather(centres, 1, z.unsqueeze(-1).expand(-1, -1, dim)) + torch.randn(batch, points, dim, generator=gen)
    mask = torch.arange(points).unsqueeze(0) < (points - 2 * torch.arange(batch)).unsqueeze(1)
    g = torch.where(mask.unsqueeze(-1), g, 100 * torch.randn(g.shape, generator=gen))
    if pad:
        garbage = 100 * torch.randn(batch, pad, dim, generator=torch.Generator().manual_seed(seed + 1))
        g = torch.cat([g, garbage], 1)
        mask = torch.cat([mask, torch.zeros(batch, pad, dtype=torch.bool)], 1)
    lam0 = centres + torch.randn(batch, slots, dim, generator=gen)
    prior = GMMPrior(4, dim, scale=2.0)
    with torch.no_grad():
        prior.centres.copy_(torch.randn(4, dim, generator=gen) * 3)
    return InnerProblem(g=g, mask=mask, prior=prior, potential=EuclideanPotential(), lam0=lam0,
                        log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(lam.shape[1])))


# -- the checks ------------------------------------------------------------------------------------
def _solve(solver: Solver, problem: InnerProblem, steps: int, seed: int = 0) -> InnerResult:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return solver.solve(problem, steps)


def _detached(res: InnerResult) -> InnerResult:
    return InnerResult(lam=res.lam.detach(), q=res.q.detach(), trace=res.trace)


def _name(solver: Solver) -> str:
    return getattr(solver, "name", "") or type(solver).__name__


def _fail(solver: Solver, rule: str, detail: str) -> None:
    raise ConformanceError(f"solver {_name(solver)!r} fails conformance check {rule!r}: {detail}")


def _bound(factory: SolverFactory, problem: InnerProblem) -> Solver:
    solver = factory()
    if not isinstance(solver, Solver):
        raise ConformanceError(f"solver factory returned {type(solver).__name__}, not an mpmkit.Solver")
    solver.bind(problem.lam0.shape[1], problem.lam0.shape[2])
    return solver


def check_shapes(factory: SolverFactory, problem: InnerProblem, steps: int, **_: Any) -> None:
    """λ is ``[B, K, D]`` and q is ``[B, N, K]``, both floating point on the input's device; trace is a dict."""
    solver = _bound(factory, problem)
    res = _solve(solver, problem, steps)
    if not isinstance(res, InnerResult):
        _fail(solver, "shapes", f"solve returned {type(res).__name__}, not InnerResult")
    b, n = problem.mask.shape
    k, d = problem.lam0.shape[1:]
    if tuple(res.lam.shape) != (b, k, d):
        _fail(solver, "shapes", f"lam has shape {tuple(res.lam.shape)}, expected {(b, k, d)}")
    if tuple(res.q.shape) != (b, n, k):
        _fail(solver, "shapes", f"q has shape {tuple(res.q.shape)}, expected {(b, n, k)}")
    if not isinstance(res.trace, dict):
        _fail(solver, "shapes", f"trace is {type(res.trace).__name__}, not dict")
    for key, t in (("lam", res.lam), ("q", res.q)):
        if not t.is_floating_point() or t.device != problem.g.device:
            _fail(solver, "shapes", f"{key} is {t.dtype} on {t.device}; expected floating point on {problem.g.device}")


def check_finite(factory: SolverFactory, problem: InnerProblem, steps: int, **_: Any) -> None:
    """λ and q contain no NaN/Inf, even with huge garbage values in padded observations."""
    solver = _bound(factory, problem)
    res = _solve(solver, problem, steps)
    for key, t in (("lam", res.lam), ("q", res.q)):
        if not torch.isfinite(t).all():
            _fail(solver, "finite", f"{key} has non-finite entries")


def check_simplex(factory: SolverFactory, problem: InnerProblem, steps: int, atol: float = 1e-4, **_: Any) -> None:
    """q ≥ 0, rows of real observations sum to one, rows of padded observations are exactly zero."""
    solver = _bound(factory, problem)
    q = _solve(solver, problem, steps).q.detach()
    if (q < 0).any():
        _fail(solver, "simplex", f"q has negative entries (min {float(q.min()):.3g})")
    sums = q.sum(-1)[problem.mask]
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        _fail(solver, "simplex", f"rows of real observations sum to {float(sums.min()):.6g}..{float(sums.max()):.6g}")
    if (q[~problem.mask] != 0).any():
        _fail(solver, "simplex", "rows of padded observations are not zero")


def check_padding(factory: SolverFactory, problem: InnerProblem, steps: int, atol: float = 1e-4,
                  pad: int = 5, **_: Any) -> None:
    """Appending padded observations (any values) changes neither λ nor q on the real observations."""
    solver = _bound(factory, problem)
    a = _detached(_solve(solver, problem, steps))
    gen = torch.Generator().manual_seed(12345)
    b, _, d = problem.g.shape
    extra = (1e3 * torch.randn(b, pad, d, generator=gen)).to(problem.g)
    padded = dataclasses.replace(problem, g=torch.cat([problem.g, extra], 1),
                                 mask=torch.cat([problem.mask, problem.mask.new_zeros(b, pad)], 1))
    c = _detached(_solve(solver, padded, steps))
    n = problem.mask.shape[1]
    if not torch.allclose(a.lam, c.lam, atol=atol, rtol=atol):
        _fail(solver, "padding", f"λ changed by {float((a.lam - c.lam).abs().max()):.3g} after adding {pad} padded "
                                 "observations")
    real = problem.mask
    if not torch.allclose(a.q[real], c.q[:, :n][real], atol=atol):
        _fail(solver, "padding", "q on real observations changed after adding padded observations")
    if (c.q[:, n:] != 0).any():
        _fail(solver, "padding", "q of the added padded observations is not zero")


def check_determinism(factory: SolverFactory, problem: InnerProblem, steps: int, **_: Any) -> None:
    """Two runs under the same torch seed give identical λ and q."""
    solver = _bound(factory, problem)
    a, b = (_detached(_solve(solver, problem, steps, seed=7)) for _ in range(2))
    if not (torch.equal(a.lam, b.lam) and torch.equal(a.q, b.q)):
        _fail(solver, "determinism", f"two runs under torch.manual_seed(7) differ by "
                                     f"{float((a.lam - b.lam).abs().max()):.3g} in λ")


def check_inputs_untouched(factory: SolverFactory, problem: InnerProblem, steps: int, **_: Any) -> None:
    """solve does not modify g, mask or λ⁰ in place."""
    solver = _bound(factory, problem)
    before = [t.clone() for t in (problem.g, problem.mask, problem.lam0)]
    _solve(solver, problem, steps)
    for name, old, new in zip(("g", "mask", "lam0"), before, (problem.g, problem.mask, problem.lam0)):
        if not torch.equal(old, new):
            _fail(solver, "inputs_untouched", f"solve modified {name} in place")


def check_gradients(factory: SolverFactory, problem: InnerProblem, steps: int, **_: Any) -> str | None:
    """A solver with ``differentiable = True`` passes finite, non-zero gradients from (λ, q) to g."""
    solver = _bound(factory, problem)
    if not getattr(solver, "differentiable", False):
        return f"{_name(solver)!r} declares differentiable = False: no gradient to g is promised"
    g = problem.g.detach().clone().requires_grad_()
    res = _solve(solver, dataclasses.replace(problem, g=g), steps)
    (res.lam.pow(2).sum() + (res.q * torch.arange(res.q.shape[-1]).to(res.q)).sum()).backward()
    if g.grad is None or not torch.isfinite(g.grad).all() or g.grad[problem.mask].abs().sum() == 0:
        _fail(solver, "gradients", "differentiable = True but no finite, non-zero gradient reaches g")
    if g.grad[~problem.mask].abs().sum() != 0:
        _fail(solver, "gradients", "gradient reaches padded observations")


def check_bad_steps(factory: SolverFactory, problem: InnerProblem, steps: int, **_: Any) -> None:
    """``steps < 1`` is refused with a ValueError."""
    solver = _bound(factory, problem)
    try:
        solver.solve(problem, 0)
    except ValueError:
        return
    _fail(solver, "bad_steps", "solve(problem, steps=0) did not raise ValueError")


def check_ascent(factory: SolverFactory, problem: InnerProblem, steps: int, **_: Any) -> str | None:
    """A solver with ``ascends_surrogate = True`` ends with a surrogate ELBO no lower than at (λ⁰, q(λ⁰)),
    and no step of it lowers the ELBO."""
    solver = _bound(factory, problem)
    if not getattr(solver, "ascends_surrogate", False):
        return f"{_name(solver)!r} does not declare ascends_surrogate = True"
    with torch.no_grad():
        lam = problem.lam0
        before = solver.surrogate_elbo(problem, lam, solver.posterior(problem, lam))
        for step in range(1, steps + 1):
            lam = _detached(_solve(solver, dataclasses.replace(problem, lam0=lam), 1)).lam
            after = solver.surrogate_elbo(problem, lam, solver.posterior(problem, lam))
            drop = before - after
            if (drop > 1e-4 * (1 + before.abs())).any():
                _fail(solver, "ascent", f"step {step} lowered the surrogate ELBO by {float(drop.max()):.4g} "
                                        "although the solver declares ascends_surrogate = True")
            before = after


def _seeks_stationary_point(solver: Solver) -> str | None:
    """Why ``stationary`` does not apply to ``solver`` (None: it applies)."""
    if getattr(solver, "ascends_surrogate", False):
        return None
    if isinstance(solver, GradientAscent):
        if type(solver).update is GradientAscent.update:
            return None
        return (f"{_name(solver)!r} replaces GradientAscent.update (a learned or custom step): its fixed points "
                "need not be stationary points of the surrogate")
    return (f"{_name(solver)!r} neither declares ascends_surrogate = True nor takes the plain gradient step, "
            "so λ^T is not promised to be a stationary point of the surrogate")


def check_stationary(factory: SolverFactory, problem: InnerProblem, steps: int, stationary_tol: float = 1e-3,
                     max_steps: int = 1000, chunk: int = 200, **_: Any) -> str | None:
    """A solver that ascends the surrogate (``ascends_surrogate = True``, or the plain ``gradient`` step)
    ends at a stationary point of it: max |∇_λ max_q \\hat L(λ^T)| / N_i < ``stationary_tol``.

    The solver runs ``chunk`` steps at a time (each chunk starts from the previous λ^T) until the
    gradient is below ``stationary_tol`` or ``max_steps`` steps are spent. Catches solvers that ascend but stop
    short or converge to the wrong point (e.g. a do-nothing step, or a prior's precision misread in
    the M-step), which the ``ascent`` check cannot see.
    """
    solver = _bound(factory, problem)
    reason = _seeks_stationary_point(solver)
    if reason is not None:
        return reason
    lam, done, worst = problem.lam0, 0, math.inf
    n = problem.mask.sum(1).clamp_min(1).view(-1, 1, 1)
    while done < max_steps:
        with torch.no_grad():
            lam = _detached(_solve(solver, dataclasses.replace(problem, lam0=lam), chunk)).lam
        done += chunk
        x = lam.clone().requires_grad_()
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(max_q_surrogate(problem, x).sum(), x)
        worst = float((grad / n.to(grad)).abs().max())
        if not math.isfinite(worst):
            break
        if worst < stationary_tol:
            return None
    _fail(solver, "stationary", f"after {done} steps the surrogate's gradient at λ^T is still {worst:.3g} per "
                                f"observation (max |∇_λ|/N_i; tolerance {stationary_tol:g}): the fixed point "
                                "is not a stationary point of the surrogate ELBO")
    return None


CHECKS: dict[str, Callable[..., str | None]] = {
    "shapes": check_shapes,
    "finite": check_finite,
    "simplex": check_simplex,
    "padding": check_padding,
    "determinism": check_determinism,
    "inputs_untouched": check_inputs_untouched,
    "gradients": check_gradients,
    "bad_steps": check_bad_steps,
    "ascent": check_ascent,
    "stationary": check_stationary,
}


def run_check(name: str, solver_factory: SolverFactory, *, problem_factory: ProblemFactory = make_problem,
              steps: int = 3, **options: Any) -> str | None:
    """Run one check of :data:`CHECKS` by name (raises :class:`ConformanceError` on failure).

    Returns ``None`` when the check ran and passed, or the reason it does not apply to this solver."""
    if name not in CHECKS:
        raise KeyError(f"unknown conformance check {name!r}; available: {', '.join(CHECKS)}")
    return CHECKS[name](solver_factory, problem_factory(), steps, **options)


def check_solver_conformance(solver_factory: SolverFactory, *, problem_factory: ProblemFactory = make_problem,
                             steps: int = 3, checks: list[str] | None = None, **options: Any) -> list[str]:
    """Run every check (or those named in ``checks``) on solvers from ``solver_factory``.

    ``options`` go to the checks (``atol`` for simplex/padding tolerance, ``pad``; ``stationary_tol``,
    ``max_steps``, ``chunk`` for stationary). Raises
    :class:`ConformanceError` naming the first failed rule; returns the names of the checks that
    applied to the solver and passed (those that do not apply, e.g. ``ascent`` for a solver without
    ``ascends_surrogate``, are left out).
    """
    names = list(CHECKS) if checks is None else list(checks)
    ran = []
    for name in names:
        if run_check(name, solver_factory, problem_factory=problem_factory, steps=steps, **options) is None:
            ran.append(name)
    return ran


__all__ = ["CHECKS", "ConformanceError", "check_solver_conformance", "make_problem", "run_check"] + [
    f.__name__ for f in CHECKS.values()]
