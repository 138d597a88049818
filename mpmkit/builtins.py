"""The core's own components, registered through the same hooks a third-party plugin uses."""
from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_priors(register):
    from .priors import FlatPrior, GaussianPrior, GMMPrior

    register("flat", lambda dim, **kw: FlatPrior())
    register("gaussian", lambda dim, **kw: GaussianPrior(dim, **kw))
    register("gmm", lambda dim, num_clusters=100, **kw: GMMPrior(num_clusters, dim, **kw))


@hookimpl
def register_potentials(register):
    from .potentials import DotProductPotential, EuclideanPotential

    register("euclidean", EuclideanPotential)
    register("dot-product", DotProductPotential)


@hookimpl
def register_solvers(register):
    from .solvers import CoordinateAscent, GradientAscent, SlotAttention

    register("coordinate-ascent", CoordinateAscent)
    register("gradient", GradientAscent)
    register("slot-attention", SlotAttention)


@hookimpl
def register_metrics(register):
    from .metrics import adjusted_rand_index

    register("ari", adjusted_rand_index)
