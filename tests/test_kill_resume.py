"""Exact resume after SIGKILL, and checkpoint writes that a kill cannot tear (real subprocesses, real kills)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from mpmkit import checkpoint as ckpt
from mpmkit.runs import config_for, make_family
from mpmkit.training import Trainer
from toy_env import PYTHON, toy_env

SETS = {"epochs": 4, "seed": 3, "checkpoint_every": 1, "keep_checkpoints": 2, "num_datasets": 40, "points": 60,
        "batch_size": 4, "inner_steps": 4}


def _wait_for(path, proc, timeout=120.0):
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.005)


def _wait_for_step(ckpt_dir, proc, target, timeout=120.0):
    """Poll ``latest.json`` (written atomically) until it names a step >= ``target``; the process must still run."""
    end = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the run ended before the kill: " + proc.communicate()[1][-3000:]
        assert time.monotonic() < end, f"step {target} never checkpointed"
        try:
            if int(json.loads((ckpt_dir / "latest.json").read_text())["path"].split("-")[1]) >= target:
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.002)


def _state(out):
    tensors, state = ckpt.load(out / "checkpoints")
    return {k: v for k, v in tensors.items() if not k.startswith(("rng.", "rank"))}, state


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path, toy_host):
    out, env = tmp_path / "cut", toy_env(tmp_path)
    base = [PYTHON, "-m", "mpmkit", "fit", "toy", "--out", str(out), "--no-evaluate"]
    sets = [a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.Popen(base + sets, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(out / "checkpoints", proc, random.randint(2, 10))  # a random point mid-run ...
    time.sleep(random.uniform(0.0, 0.01))  # ... possibly inside the next step or checkpoint write
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = _state(out)[1]["step"]
    assert 2 <= killed_at < 20, killed_at  # the kill interrupted training: resume has work to do
    resume = subprocess.Popen(base + ["--resume"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    Trainer(make_family("toy"), config_for("toy", SETS), tmp_path / "full").fit()  # meanwhile: uninterrupted run
    _, err = resume.communicate(timeout=240)
    assert resume.returncode == 0, err[-3000:]
    a, sa = _state(tmp_path / "full")
    b, sb = _state(out)
    assert sa["step"] == sb["step"] == 20 and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert sa["best_val"] == sb["best_val"]
    steps = [r.split(",")[0] for r in (out / "metrics.csv").read_text().splitlines()[1:] if r.split(",")[2]]
    assert len(steps) == len(set(steps)) == 20  # no duplicated or missing rows around the kill
    print(f"killed after step {killed_at}")


WRITER = textwrap.dedent("""
    import sys, torch
    from mpmkit import checkpoint as ckpt
    d = sys.argv[1]
    for i in range(1, 10**6):
        ckpt.save(d, f"step-{i:08d}", {"w": torch.full((1 << 21,), float(i))}, {"step": i})
        ckpt.prune(d, 2)
""")


def test_kill_during_checkpoint_write_leaves_no_torn_file(tmp_path):
    d = tmp_path / "ckpts"
    proc = subprocess.Popen([PYTHON, "-c", WRITER, str(d)], env=toy_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(d / "latest.json", proc)
    time.sleep(random.uniform(0.05, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    tensors, state = ckpt.load(d)  # verifies the SHA-256: a torn file would raise
    i = state["step"]
    assert json.loads((d / "latest.json").read_text())["path"] == f"step-{i:08d}"
    assert torch.equal(tensors["w"], torch.full((1 << 21,), float(i)))
    ckpt.clean_temporary(d)
    assert not list(d.glob(".*")) and not list(d.glob("*.tmp*"))
