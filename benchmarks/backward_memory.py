"""Peak memory and time of one training step vs inner steps T for the backward modes full / truncated / implicit.

Image-sized inner loop by default (B=64, N=1225, K=4, D=64, L=100): coordinate ascent (Proposition 1)
on g = g_φ(x) (a leaf standing in for the recognition network's output), GMM prior η, shared λ⁰;
the step's loss is the negative surrogate ELBO at (Λ^T, q^T), then ``backward()``.

Memory, measured per (mode, T) in its own subprocess so the peaks are its own:

* ``graph``: bytes of the distinct tensor storages autograd saves for the backward pass
  (``torch.autograd.graph.saved_tensors_hooks``), the memory a step holds between forward and
  backward. Exact and allocator-independent; it is what "grows with T".
* ``peak``: on CUDA ``torch.cuda.max_memory_allocated`` above the inputs; on CPU the growth of the
  process's peak resident set (``ru_maxrss``) over one step, above the inputs, the imports and a
  tiny warm-up step (one-time library initialisation). It includes transient forward/backward
  buffers. The subprocesses run with ``MALLOC_MMAP_THRESHOLD_=65536`` so glibc returns freed large
  blocks at once and the resident set tracks live memory (without it the CPU peak is noisy by ±20 MiB).

Time is the median of ``--reps`` steps after one warm-up.

    python benchmarks/backward_memory.py                 # table + implicit T=20 vs T=3 ratio
    python benchmarks/backward_memory.py --B 8 --N 200   # a quick smaller run
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

MODES = ("full", "truncated", "implicit")


def run_one(mode: str, T: int, B: int, N: int, K: int, D: int, L: int, reps: int, device: str, threads: int) -> dict:
    from mpmkit import CoordinateAscent, EuclideanPotential, GMMPrior, InnerProblem, surrogate_elbo

    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    g = torch.randn(B, N, D, device=dev, requires_grad=True)
    prior = GMMPrior(L, D).to(dev)
    lam0 = torch.randn(K, D, device=dev, requires_grad=True)
    mask = torch.ones(B, N, dtype=torch.bool, device=dev)
    potential = EuclideanPotential()
    solver = CoordinateAscent(backward=mode)

    def log_pz(lam):
        return lam.new_full(lam.shape[:2], -math.log(K))

    def forward(g=g, mask=mask):
        b, n = mask.shape
        p = InnerProblem(g=g, mask=mask, prior=prior, potential=potential, lam0=lam0.expand(b, K, D), log_pz=log_pz)
        res = solver.solve(p, T)
        return -surrogate_elbo(g, mask, res.lam, res.q, prior, potential, log_pz).sum() / (b * n)

    # a tiny step first, so one-time kernel/library initialisation is not counted as the step's memory
    forward(g[:1, :16], mask[:1, :16]).backward()
    g.grad = lam0.grad = None
    prior.zero_grad(set_to_none=True)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # 1. the step's peak, first thing after the inputs exist
    if dev.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    forward().backward()
    sync()
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base

    # 2. bytes saved for backward
    saved: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        saved[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    loss.backward()

    # 3. time
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        forward().backward()
        sync()
        times.append(time.perf_counter() - t0)
    return {"mode": mode, "T": T, "time_ms": 1000 * statistics.median(times), "graph_mib": sum(saved.values()) / 2**20,
            "peak_mib": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_args(ap)
    ap.add_argument("--T", type=at_least(0), nargs="+", default=[1, 3, 5, 10, 20])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--reps", type=at_least(1), default=3)
    ap.add_argument("--threads", type=at_least(1), default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--one", nargs=2, metavar=("MODE", "T"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    shape = dict(B=a.B, N=a.N, K=a.K, D=a.D, L=a.L, reps=a.reps, device=a.device, threads=a.threads)
    if a.one:
        print(json.dumps(run_one(a.one[0], int(a.one[1]), **shape)))
        return
    # glibc: serve every block >= 64 KiB by mmap and unmap it when freed, so the resident set follows the
    # live tensors instead of the allocator's retained heap (otherwise the CPU peak is noise of +-20 MiB)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    rows = []
    for mode in a.modes:
        for T in a.T:
            cmd = [sys.executable, __file__, "--one", mode, str(T)] + [f"--{k}={v}" for k, v in shape.items()]
            rows.append(json.loads(run_child(cmd, env)))
            r = rows[-1]
            print(f"  {mode:<9} T={T:<3} {r['time_ms']:9.1f} ms  graph {r['graph_mib']:8.1f} MiB  "
                  f"peak {r['peak_mib']:8.1f} MiB", file=sys.stderr, flush=True)
    peak_name = "max_memory_allocated" if a.device.startswith("cuda") else "peak RSS growth"
    print(f"B={a.B} N={a.N} K={a.K} D={a.D} L={a.L} device={a.device} threads={a.threads} torch={torch.__version__}")
    print(f"| backward | T | time/step (ms) | saved for backward (MiB) | {peak_name} (MiB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['T']} | {r['time_ms']:.1f} | {r['graph_mib']:.1f} | {r['peak_mib']:.1f} |")
    by = {(r["mode"], r["T"]): r for r in rows}
    if ("implicit", 3) in by and ("implicit", 20) in by:
        for key, label in (("graph_mib", "saved for backward"), ("peak_mib", peak_name)):
            ratio = by[("implicit", 20)][key] / max(by[("implicit", 3)][key], 1e-9)
            verdict = "PASS" if ratio <= 1.15 else "FAIL"
            print(f"implicit {label}: T=20 / T=3 = {ratio:.3f} ({verdict}: target <= 1.15)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
