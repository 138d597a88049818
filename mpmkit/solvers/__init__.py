"""Inner solvers for Algorithm 1 (lines 4-8)."""
from .base import BACKWARD_MODES, FixedPointSolver, InnerProblem, InnerResult, Solver, masked_softmax
from .coordinate_ascent import CoordinateAscent
from .gradient import GradientAscent
from .learned_posterior import LearnedPosterior
from .pyro_nuts import PyroNUTS
from .pyro_svi import PyroSVI
from .slot_attention import SlotAttention

__all__ = ["BACKWARD_MODES", "CoordinateAscent", "FixedPointSolver", "GradientAscent", "InnerProblem", "InnerResult",
           "LearnedPosterior", "PyroNUTS", "PyroSVI", "SlotAttention", "Solver", "masked_softmax"]
