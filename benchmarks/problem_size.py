"""What the benchmarks share: the inner-loop problem size (a Tetrominoes-like batch of B images of
N = 35² pixels, K slots of dimension D, L global clusters: ``--B --N --K --D --L``), an argparse type for
bounded whole numbers, and running a measurement in its own subprocess."""
from __future__ import annotations

import argparse

SIZE = {"B": 64, "N": 1225, "K": 4, "D": 64, "L": 100}


def at_least(low: int):
    """An argparse type: an int >= ``low``, refused with a message that says so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small: use a whole number >= {low}")
        return value
    parse.__name__ = f"int>={low}"
    return parse


def add_size_args(ap: argparse.ArgumentParser) -> None:
    for name, default in SIZE.items():
        ap.add_argument(f"--{name}", type=at_least(1), default=default)


def run_child(cmd: list[str], env: dict | None = None) -> str:
    """Run a benchmark subprocess; on failure raise with the end of its stderr, not a bare exit status."""
    import subprocess

    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:4])} ... failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return p.stdout.strip().splitlines()[-1]
