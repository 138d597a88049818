"""Inner solvers for Algorithm 1 (lines 4-8)."""
from .base import BACKWARD_MODES, FixedPointSolver, InnerProblem, InnerResult, Solver, masked_softmax
from .coordinate_ascent import CoordinateAscent

__all__ = ["BACKWARD_MODES", "CoordinateAscent", "FixedPointSolver", "InnerProblem", "InnerResult", "Solver",
           "masked_softmax"]
