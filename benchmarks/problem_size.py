"""The problem size the inner-loop benchmarks share: a Tetrominoes-like batch of B images of N = 35²
pixels, K slots of dimension D, L global clusters (``--B --N --K --D --L``)."""
from __future__ import annotations

import argparse

SIZE = {"B": 64, "N": 1225, "K": 4, "D": 64, "L": 100}


def add_size_args(ap: argparse.ArgumentParser) -> None:
    for name, default in SIZE.items():
        ap.add_argument(f"--{name}", type=int, default=default)
