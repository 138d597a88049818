"""What the training options do, observed on the toy family: lr schedule (and its resume), gradient
clipping, the best-checkpoint pointer, checkpoint pruning and mixed precision."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from mpmkit import checkpoint as ckpt
from mpmkit.training import Trainer
from test_training import fit

# the toy family: 12 training datasets in batches of 8, so 2 outer steps per epoch


def final_params(path):
    tensors, state = ckpt.load(path)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "optim."))}, state


def metric_rows(run, column):
    with open(run / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get(column)]


def test_resume_with_lr_milestones_matches_uninterrupted_run(tmp_path, toy_host):
    """The scheduler's position is part of the checkpoint: a run cut mid-epoch 1 and resumed decays lr at
    the same epochs as an uninterrupted one (a fresh scheduler would decay again at the end of epoch 1)."""
    kw = dict(lr_milestones=[1], lr_gamma=0.1)
    fit(tmp_path / "full", **kw)
    fit(tmp_path / "cut", max_steps=3, **kw)  # stops after epoch 0 and the first step of epoch 1
    fit(tmp_path / "cut", resume=True, **kw)
    a, sa = final_params(tmp_path / "full" / "checkpoints")
    b, sb = final_params(tmp_path / "cut" / "checkpoints")
    assert sa["step"] == sb["step"] == 6
    assert sa["scheduler"] == sb["scheduler"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lrs = [float(r["lr"]) for r in metric_rows(tmp_path / "cut", "lr")]
    assert lrs == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.005, 0.005])


def test_lr_decays_at_milestones(tmp_path, toy_host):
    fit(tmp_path / "run", lr=0.05, lr_milestones=[1, 2], lr_gamma=0.1, log_every=1)
    rows = metric_rows(tmp_path / "run", "lr")
    assert len(rows) == 6  # one per outer step
    epochs = [int(float(r["epoch"])) for r in rows]
    assert epochs == [0, 0, 1, 1, 2, 2]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005])


def test_grad_clip_bounds_the_gradient_norm_the_optimiser_sees(tmp_path, toy_host, monkeypatch):
    norms = []
    adam_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    clip = 1e-3  # far below the toy's gradient norms, so every step is clipped
    fit(tmp_path / "run", epochs=1, grad_clip=clip)
    assert len(norms) == 2
    assert norms == pytest.approx([clip] * 2, rel=1e-3)  # clipped to the bound, not below it

    norms.clear()
    fit(tmp_path / "free", epochs=1)  # grad_clip = 0: off
    assert len(norms) == 2 and min(norms) > 100 * clip


def test_best_pointer_follows_the_lowest_validation_loss(tmp_path, toy_host, monkeypatch):
    vals = iter([3.0, 1.0, 2.0])
    monkeypatch.setattr(Trainer, "validate", lambda self, model, splits: next(vals))
    fit(tmp_path / "run", keep_checkpoints=3)  # checkpoints after epochs 0, 1, 2: steps 2, 4, 6
    ckpts = tmp_path / "run" / "checkpoints"
    assert json.loads((ckpts / "best.json").read_text())["val_loss"] == 1.0
    best_params, best_state = final_params(ckpt.resolve(ckpts, "best"))
    assert best_state["step"] == 4 and best_state["best_val"] == 1.0
    epoch1, _ = final_params(ckpts / "step-00000004")
    assert best_params.keys() == epoch1.keys() and all(torch.equal(best_params[k], epoch1[k]) for k in epoch1)
    _, latest = final_params(ckpts)
    assert latest["step"] == 6 and latest["best_val"] == 1.0  # epoch 2's 2.0 did not replace it
    assert sorted(p.name for p in ckpts.glob("best-*")) == ["best-00000004"]


def test_keep_checkpoints_prunes_old_step_checkpoints(tmp_path, toy_host):
    fit(tmp_path / "run", checkpoint_every=1, keep_checkpoints=2)
    ckpts = tmp_path / "run" / "checkpoints"
    steps = sorted(p.name for p in ckpts.glob("step-*") if p.is_dir())
    assert steps == ["step-00000005", "step-00000006"]
    assert len([p for p in ckpts.glob("best-*") if p.is_dir()]) == 1
    assert ckpt.resolve(ckpts, "latest").name == "step-00000006"
    assert ckpt.resolve(ckpts, "best").exists()


@pytest.mark.parametrize("amp", [True, False])
def test_amp_turns_on_autocast_for_the_likelihood(tmp_path, toy_host, monkeypatch, amp):
    import toy

    seen = []
    log_prob = toy.ShiftedGaussian.log_prob

    def spy(self, x, lam, mask):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return log_prob(self, x, lam, mask)

    monkeypatch.setattr(toy.ShiftedGaussian, "log_prob", spy)
    fit(tmp_path / "run", epochs=1, amp=amp, device="cpu")
    assert len(seen) >= 2  # every training step and the validation pass
    assert all(on == amp for on, _ in seen), seen
    if amp:
        assert all(dtype == torch.bfloat16 for _, dtype in seen)
