"""The benchmark scripts refuse bad arguments up front, report a failing child's stderr, and do not reuse a
finished run trained with other options."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=120)


def test_at_least_names_the_bound(bench_path):
    from problem_size import at_least

    assert at_least(1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
        at_least(1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
        at_least(0)("two")


@pytest.mark.parametrize("script, args, message", [
    ("inner_loop.py", ["--reps", "0"], "--reps: 0 is too small"),
    ("inner_loop.py", ["--B", "0"], "--B: 0 is too small"),
    ("backward_memory.py", ["--T", "3", "-1"], "--T: -1 is too small"),
    ("tetrominoes_sweep.py", ["--minutes", "0"], "--minutes 0"),
    ("tetrominoes_sweep.py", ["--chunks", "0"], "--chunks 0"),
    ("train_step.py", ["--steps", "0"], "--steps"),
    ("psa_spiral.py", ["--set", "epochs=-1"], "epochs"),
])
def test_bad_arguments_are_refused_before_any_work(script, args, message):
    r = run(script, *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


def test_a_failing_child_reports_its_stderr(bench_path):
    from problem_size import run_child

    with pytest.raises(RuntimeError, match="exit 3") as e:
        run_child([sys.executable, "-c", "import sys; sys.stderr.write('the real reason'); sys.exit(3)"])
    assert "the real reason" in str(e.value)


def test_inner_loop_prints_both_variants_and_ratios():
    r = run("inner_loop.py", "--B", "2", "--N", "40", "--K", "3", "--D", "8", "--L", "5", "--reps", "1")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[2:4]}
    assert set(rows) == {"mpmkit", "naive"} and all(float(v[0]) > 0 for v in rows.values())
    assert "speed-up (naive / mpmkit time)" in r.stdout
    # a step this small does not move the peak resident set: said so, not divided by ~0
    assert "peak memory ratio (naive / mpmkit): not measurable" in r.stdout


def test_psa_spiral_refuses_a_finished_run_with_other_options(bench_path, tmp_path):
    pytest.importorskip("mpmkit_spiral")
    from psa_spiral import DATA, MODELS, refuse_stale

    from mpmkit.runs import config_for

    cfg = config_for("spiral-gmm", {**DATA, **MODELS["mpm"], "seed": 0})
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    refuse_stale(tmp_path, cfg)  # same options (tuples stored as lists): reused
    refuse_stale(tmp_path, config_for("spiral-gmm", {**DATA, **MODELS["mpm"], "seed": 0, "ard_prune": 0.1}))
    other = config_for("spiral-gmm", {**DATA, **MODELS["mpm"], "seed": 0, "epochs": 2})
    with pytest.raises(SystemExit, match=r"train.epochs: stored 30, asked 2.*another --out"):
        refuse_stale(tmp_path, other)
