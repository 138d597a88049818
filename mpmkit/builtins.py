"""The core's own components, registered through the same hooks a third-party plugin uses."""
from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_priors(register):
    from .priors import FlatPrior, GaussianPrior, GMMPrior

    def flat(dim: int, scale: float | None = None) -> FlatPrior:
        """No prior on λ. ``scale`` is accepted (and has nothing to set) so a family can pass every prior
        the same options; any other keyword is a mistake and raises TypeError."""
        return FlatPrior()

    register("flat", flat)
    register("gaussian", lambda dim, **kw: GaussianPrior(dim, **kw))
    register("gmm", lambda dim, num_clusters=100, **kw: GMMPrior(num_clusters, dim, **kw))


@hookimpl
def register_potentials(register):
    from .potentials import DotProductPotential, EuclideanPotential

    register("euclidean", EuclideanPotential)
    register("dot-product", DotProductPotential)

    from .psa import PSAPotential

    register("psa", PSAPotential)  # log N(g; μ, diag σ²) with mixing weights π: λ = (μ, log σ², log π)


@hookimpl
def register_solvers(register):
    from .solvers import CoordinateAscent, GradientAscent, LearnedPosterior, PyroNUTS, PyroSVI, SlotAttention

    register("coordinate-ascent", CoordinateAscent)
    register("gradient", GradientAscent)
    register("slot-attention", SlotAttention)
    register("learned-posterior", LearnedPosterior)
    register("pyro-svi", PyroSVI)  # Pyro is imported only when a Pyro solver runs
    register("pyro-nuts", PyroNUTS)

    from .psa import PSAEM

    register("psa-em", PSAEM)  # Probabilistic Slot Attention: EM for π, μ, diagonal σ² (needs the 'psa' potential)


@hookimpl
def register_metrics(register):
    from .metrics import adjusted_rand_index

    register("ari", adjusted_rand_index)

    from .metrics import smcc

    register("smcc", smcc)  # slot identifiability across runs (PSA)
