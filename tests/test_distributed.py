"""Data-parallel training: 2 CPU processes (Gloo, launched by torchrun) match one process with the same global batch."""
from __future__ import annotations

import subprocess

import pytest
import torch

from mpmkit import checkpoint as ckpt
from mpmkit.distributed import DistContext, shard
from mpmkit.runs import config_for, make_family
from mpmkit.training import Trainer
from toy_env import PYTHON, toy_env

ARGS = ["--set", "epochs=3", "--set", "seed=1", "--set", "batch_size=4", "--set", "num_datasets=25", "--no-evaluate"]


def torchrun(tmp_path, *args):
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mpmkit", "fit", "toy",
           *ARGS, *args]
    r = subprocess.run(cmd, env=toy_env(tmp_path), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def test_shard_deals_global_batch_round_robin():
    assert shard([7, 3, 5, 1, 9], DistContext(0, 2)) == ([7, 5, 9], True)
    assert shard([7, 3, 5, 1, 9], DistContext(1, 2)) == ([3, 1], True)
    assert shard([4], DistContext(1, 2)) == ([4], False)  # stand-in with weight 0


@pytest.mark.slow
def test_two_gloo_processes_match_single_process_and_resume(tmp_path, toy_host):
    # 13 training datasets, global batch 4: the last batch (1 dataset) leaves rank 1 a zero-weight stand-in
    out = tmp_path / "ddp"
    torchrun(tmp_path, "--set", "max_steps=5", "--out", str(out))  # stops mid-epoch 1
    assert ckpt.load(out / "checkpoints")[1]["world_size"] == 2
    r = torchrun(tmp_path, "--resume", "--set", "max_steps=0", "--out", str(out))
    assert r.stdout.count("trained toy") == 1  # rank 0 reports
    cfg = config_for("toy", {"epochs": 3, "seed": 1, "batch_size": 4, "num_datasets": 25})
    Trainer(make_family("toy"), cfg, tmp_path / "single").fit()
    a, sa = ckpt.load(tmp_path / "single" / "checkpoints")
    b, sb = ckpt.load(out / "checkpoints")
    assert sa["step"] == sb["step"] == 12
    assert sb["best_val"] == pytest.approx(sa["best_val"], rel=1e-5)
    for k in a:
        if k.startswith("model."):
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-5, msg=k)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == len((tmp_path / "single" / "metrics.csv").read_text().splitlines())  # one writer


def test_batchnorm_becomes_sync_batchnorm_on_cuda_and_warns_on_cpu():
    from torch import nn

    from mpmkit.distributed import sync_batchnorm

    def net():
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))

    m = net()
    weight = m[1].weight
    out = sync_batchnorm(m, torch.device("cuda"), DistContext(0, 2))  # conversion itself needs no GPU
    assert isinstance(out[1], nn.SyncBatchNorm) and out[1].weight is weight  # an optimiser on m still holds it
    with pytest.warns(UserWarning, match="BatchNorm statistics stay per process"):
        cpu = sync_batchnorm(net(), torch.device("cpu"), DistContext(0, 2))
    assert type(cpu[1]) is nn.BatchNorm1d
    alone = net()
    assert sync_batchnorm(alone, torch.device("cuda"), DistContext()) is alone and type(alone[1]) is nn.BatchNorm1d
