"""mpmkit: meta-probabilistic modeling (Zhang & Wang) as a small core plus plugins.

The core names follow the paper: a :class:`~mpmkit.priors.Prior` p_η(λ), a
:class:`~mpmkit.likelihoods.Likelihood` p_θ, a :class:`~mpmkit.potentials.Potential` ψ_φ with its
recognition network g_φ, an inner :class:`~mpmkit.solvers.Solver`, composed by
:class:`~mpmkit.model.MPM` and trained by :class:`~mpmkit.training.Trainer` (Algorithm 1).
"""
from .batch import Batch, pad_datasets
from .config import Config, TrainConfig
from .datasets import DatasetSource
from .errors import (CheckpointError, ConfigError, IncompatibleSolverError, MPMKitError, PluginError,
                     UnknownNameError)
from .family import Family, Splits
from .hookspecs import hookimpl
from .likelihoods import AdditiveLikelihood, Likelihood, MixtureLikelihood, gaussian_log_prob
from .model import ELBO, MPM, Inference, entropy, surrogate_elbo
from .plugins import registry
from .potentials import DotProductPotential, EuclideanPotential, Potential
from .priors import FlatPrior, GaussianPrior, GMMPrior, Prior
from .solvers import (CoordinateAscent, FixedPointSolver, GradientAscent, InnerProblem, InnerResult, LearnedPosterior,
                      PyroNUTS, PyroSVI, SlotAttention, Solver)

__version__ = "0.1.0"

__all__ = [
    "AdditiveLikelihood", "Batch", "CheckpointError", "Config", "ConfigError", "CoordinateAscent", "DatasetSource",
    "DotProductPotential", "ELBO", "EuclideanPotential", "Family", "FixedPointSolver", "FlatPrior", "GMMPrior",
    "GaussianPrior", "GradientAscent", "IncompatibleSolverError", "Inference", "InnerProblem", "InnerResult", "LearnedPosterior", "Likelihood", "MPM",
    "MPMKitError", "MixtureLikelihood", "PluginError", "Potential", "Prior", "PyroNUTS", "PyroSVI", "SlotAttention", "Solver", "Splits", "TrainConfig",
    "UnknownNameError", "entropy", "gaussian_log_prob", "hookimpl", "pad_datasets", "registry", "surrogate_elbo",
]
