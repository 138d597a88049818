"""The same spiral code on a GPU: values agree with the CPU, and a PSA run trains and evaluates on CUDA.

Runs only where CUDA is present (``pytest plugins/mpmkit-spiral/tests/test_spiral_cuda.py`` on a GPU
machine); on a CPU-only machine the module is skipped. The helpers below were exercised on the CPU
(``device="cpu"``) when written; the CUDA runs themselves have not been checked yet.
"""

import math

import pytest
import torch

from mpmkit import CoordinateAscent
from mpmkit.psa import PSAEM
from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer

from mpmkit_spiral.data import collate, generate
from mpmkit_spiral.model import build_mpm
from mpmkit_spiral.transforms import SpiralTransform

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def elbo_on(device: str, local: str) -> tuple[torch.Tensor, float]:
    """Per-dataset ELBO and loss of a fixed float64 model and batch, computed on ``device``."""
    torch.manual_seed(0)
    solver = PSAEM() if local == "psa" else CoordinateAscent()
    model = build_mpm(SpiralTransform(0.9, 0.3), solver, num_clusters=3, num_global=4, inner_steps=10,
                      scale=0.6, local=local).double().eval().to(device)
    batch = collate(generate(6, seed=1, num_clusters=3, points=50, points_min=30))
    batch = type(batch)(x=batch.x.double(), mask=batch.mask).to(torch.device(device))
    with torch.no_grad():
        loss, terms, _ = model(batch)
    return terms.total.cpu(), float(loss)


def fit_and_evaluate(tmp_path, device: str) -> dict:
    opts = {"num_datasets": 85, "num_val": 5, "num_test": 20, "points_per_dataset": 60, "points_min": 40,
            "epochs": 2, "batch_size": 16, "vae_steps": 0, "progress": False, "tensorboard": False,
            "local": "psa", "clusters_min": 2, "figure": True, "eval_inner_steps": 20,
            "device": device, "amp": True}
    Trainer(make_family("spiral-gmm"), config_for("spiral-gmm", opts), tmp_path).fit()
    return evaluate_run(tmp_path)  # the sample figure draws on the CPU and decodes on the model's device


@needs_cuda
@pytest.mark.parametrize("local", ["mpm", "psa"])
def test_elbo_on_cuda_equals_cpu_in_float64(local):
    cpu, loss_cpu = elbo_on("cpu", local)
    gpu, loss_gpu = elbo_on("cuda", local)
    torch.testing.assert_close(gpu, cpu, rtol=1e-9, atol=1e-7)
    assert math.isclose(loss_gpu, loss_cpu, rel_tol=1e-9)


@needs_cuda
def test_psa_run_trains_and_evaluates_on_cuda_with_amp(tmp_path):
    m = fit_and_evaluate(tmp_path, "cuda")
    assert math.isfinite(m["ari_mpm"]) and (tmp_path / "psa_samples.png").read_bytes()[:4] == b"\x89PNG"
