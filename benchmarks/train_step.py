"""Tetrominoes training step: the recognition path of g_φ, previous vs current, side by side.

``previous``: convs on the NCHW image, then the per-pixel MLP and LayerNorm on all H·W pixels, then
the observed pixels are gathered. ``current`` (``mpmkit_image.model.PixelRecognition``): convs
channels-last, the observed pixels gathered from the conv features, MLP and LayerNorm on those only.
Both give the same g (checked here, and in ``test_recognition_at_observed_pixels_equals_...``).
One full training step each (forward with the inner loop, backward, Adam) on the family's default
config, the two variants alternated step by step so load on the machine hits both alike.

    python benchmarks/train_step.py [--steps 40] [--threads 1] [--batch 32]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def previous_forward(self, x: dict) -> torch.Tensor:
    """PixelRecognition.forward before the change: whole-image head, NCHW convs."""
    from mpmkit_image.model import gather_pixels, position_grid

    enc, image = self.encoder, x["image"]
    _, _, h, w = image.shape
    f = enc.convs(image).flatten(2).transpose(1, 2)
    if enc.position is not None:
        f = f + enc.position(position_grid(h, w, image.device))
    return gather_pixels(enc.head(f), x["index"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    if a.steps < 1 or a.threads < 1:
        ap.error("--steps and --threads must be whole numbers >= 1")
    torch.set_num_threads(a.threads)

    from mpmkit.runs import config_for, make_family
    from mpmkit_image.model import PixelRecognition

    cfg = config_for("tetrominoes", {"num_images": 2000, "progress": False, "tensorboard": False})
    family = make_family("tetrominoes")
    splits = family.build_data(cfg)
    if not 1 <= a.batch <= len(splits.train):
        ap.error(f"--batch {a.batch}: use 1 to {len(splits.train)} (the training images of this config)")
    n = len(splits.train) // a.batch
    batches = [splits.collate([splits.train[i] for i in range(j * a.batch, (j + 1) * a.batch)]) for j in range(n)]
    current_forward = PixelRecognition.forward
    variants = {"previous": previous_forward, "current": current_forward}
    models, opts = {}, {}
    for name in variants:
        torch.manual_seed(0)
        models[name] = family.build_model(cfg).train()
        opts[name] = torch.optim.Adam(models[name].parameters(), cfg.train.lr)

    with torch.no_grad():  # same g from both paths
        probe = batches[0]
        g = {}
        for name, fwd in variants.items():
            PixelRecognition.forward = fwd
            g[name] = models["current"].potential.recognition(probe.x)
        PixelRecognition.forward = current_forward
    diff = float((g["previous"] - g["current"]).abs().max())

    times: dict[str, list[float]] = {k: [] for k in variants}
    for s in range(a.steps + 3):
        for name, fwd in variants.items():
            PixelRecognition.forward = fwd
            batch = batches[s % n]
            t0 = time.perf_counter()
            loss, _, _ = models[name](batch)
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            if s >= 3:  # warm-up
                times[name].append(time.perf_counter() - t0)
    PixelRecognition.forward = current_forward

    print(f"tetrominoes default config, batch {a.batch}, {cfg.family.train_pixels} pixels per image, "
          f"{a.threads} thread(s), {a.steps} steps each, alternated; max |g_prev - g_cur| = {diff:.2e}")
    print("| variant | median step (ms) | images/s |")
    print("|---|---|---|")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, m in med.items():
        print(f"| {k} | {m * 1e3:.1f} | {a.batch / m:.0f} |")
    print(f"ratio previous / current: {med['previous'] / med['current']:.2f}x")


if __name__ == "__main__":
    main()
