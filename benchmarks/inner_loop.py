"""Inner loop cost: mpmkit's coordinate ascent vs the naive [B, N, K, D] formulation.

Paper's image sizes by default (B=64, N=1225, K=4, D=64, L=100, T=3). Each variant runs in
its own subprocess so peak memory is its own: peak RSS growth on CPU, max_memory_allocated on
CUDA (on CPU measured in a process run with ``MALLOC_MMAP_THRESHOLD_=65536``, so the resident set tracks
live tensors). Time is the median of forward+backward through T unrolled steps, in a process with the
default allocator.

    python benchmarks/inner_loop.py            # prints a table and the ratios
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch

from problem_size import add_size_args, at_least, run_child


def naive_step(g, lam, nu):
    """Proposition 1 as written, with explicit difference tensors."""
    diff = lam.unsqueeze(1) - g.unsqueeze(2)  # [B, N, K, D]
    s = torch.softmax(-0.5 * (diff**2).sum(-1), -1)
    pd = lam.unsqueeze(2) - nu  # [B, K, L, D]
    r = torch.softmax(-0.5 * (pd**2).sum(-1), -1)
    num = (r.unsqueeze(-1) * nu).sum(2) + (s.unsqueeze(-1) * g.unsqueeze(2)).sum(1)  # [B, N, K, D] product
    return num / (r.sum(-1) + s.sum(1)).unsqueeze(-1)


def run_one(variant: str, B: int, N: int, K: int, D: int, L: int, T: int, reps: int, device: str) -> dict:
    from mpmkit import CoordinateAscent, EuclideanPotential, GMMPrior, InnerProblem

    dev = torch.device(device)
    torch.manual_seed(0)
    g = torch.randn(B, N, D, device=dev, requires_grad=True)
    prior = GMMPrior(L, D).to(dev)
    lam0 = torch.randn(B, K, D, device=dev, requires_grad=True)
    mask = torch.ones(B, N, dtype=torch.bool, device=dev)
    solver = CoordinateAscent()

    def once(g=g, mask=mask, lam0=lam0):
        if variant == "mpmkit":
            p = InnerProblem(g=g, mask=mask, prior=prior, potential=EuclideanPotential(), lam0=lam0,
                             log_pz=lambda lam: lam.new_full(lam.shape[:2], -math.log(K)))
            lam = solver.solve(p, T).lam
        else:
            lam = lam0
            for _ in range(T):
                lam = naive_step(g, lam, prior.centres)
        lam.pow(2).sum().backward()

    # a tiny step first, so one-time kernel/library initialisation is not counted as the step's memory
    once(g[:1, :16], mask[:1, :16], lam0[:1])
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB: interpreter + torch + inputs
    once()  # the first full step: its peak, then warm-up for the timings
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # MiB
    return {"variant": variant, "time_ms": 1000 * statistics.median(times), "peak_mib": peak - base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_args(ap)
    ap.add_argument("--T", type=at_least(0), default=3)
    ap.add_argument("--reps", type=at_least(1), default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(run_one(a.variant, a.B, a.N, a.K, a.D, a.L, a.T, a.reps, a.device)))
        return
    # memory: glibc serves blocks >= 64 KiB by mmap and unmaps them when freed, so the resident set follows
    # the live tensors rather than the allocator's retained heap (as in backward_memory.py); that makes every
    # allocation a page fault, so time is taken in a second process with the default allocator
    env_memory = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    rows = []
    for variant in ("mpmkit", "naive"):
        cmd = [sys.executable, __file__, "--variant", variant] + [f"--{k}={v}" for k, v in vars(a).items()
                                                                  if k != "variant"]
        timed = json.loads(run_child(cmd))
        rows.append({**timed, "peak_mib": json.loads(run_child(cmd, env_memory))["peak_mib"]})
    print(f"B={a.B} N={a.N} K={a.K} D={a.D} L={a.L} T={a.T} device={a.device} threads={torch.get_num_threads()}")
    print(f"{'variant':<8} {'fwd+bwd ms':>11} {'peak MiB above inputs':>22}")
    for r in rows:
        print(f"{r['variant']:<8} {r['time_ms']:>11.1f} {r['peak_mib']:>22.0f}")
    m, n = rows
    print(f"speed-up (naive / mpmkit time): {n['time_ms'] / m['time_ms']:.2f}x")
    if m["peak_mib"] >= 1:
        print(f"peak memory ratio (naive / mpmkit): {n['peak_mib'] / m['peak_mib']:.2f}x")
    else:  # tiny sizes: the step fits in memory the process already had, so its peak RSS hardly moves
        print(f"peak memory ratio (naive / mpmkit): not measurable, mpmkit's step raised the peak resident set "
              f"by {m['peak_mib']:.2f} MiB (< 1); use larger --B/--N")


if __name__ == "__main__":
    main()
