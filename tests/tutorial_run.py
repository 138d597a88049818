"""Run a tutorial script in a subprocess, as a user would, and check what it writes."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def run_tutorial(name: str, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``tutorials/NAME`` headless on one thread; fail with the end of its output if it fails."""
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, str(TUTORIALS / name), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def small(out: Path) -> dict[str, str]:
    """Environment asking a tutorial for its small scale, writing under ``out``."""
    return {"MPMKIT_TUTORIAL_SMALL": "1", "MPMKIT_TUTORIAL_OUT": str(out)}


def assert_png(path: Path, min_bytes: int) -> None:
    assert path.exists() and path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > min_bytes, path


def assert_finite(metrics: dict, keys) -> None:
    for key in keys:
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
