"""Topic MPM: time and memory per epoch with cached encoder embeddings vs re-running the encoder.

The paper re-runs its frozen BERT on every step. mpmkit encodes each document once and
reads the embeddings from the on-disk cache. Both variants train the same ``ap-topics`` MPM
(defaults: K=5, L=100, D=128, batch 16, 3 inner steps, full backward) on the same AP
training documents, side by side in one run; each (mode, max_length) is measured in its own
process, after the cache was filled by a separate process, so peak memory is its own.

Time per epoch = mean time per outer step × ceil(1800 / batch) (the paper's 1,800 training
documents), measured over ``--steps`` steps after one warm-up step. Memory = peak RSS growth
during the timed steps above the RSS before them (CPU), or ``max_memory_allocated`` on CUDA.

    python benchmarks/text_cache.py                       # speed-up at 512 + scaling 64..512
    python benchmarks/text_cache.py --lengths 512 --steps 3
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

from problem_size import run_child

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "mpmkit-text"))


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(args, max_length):
    """Training documents, vocabulary (min_count 10 on all training documents) and the encoder."""
    from mpmkit_text.ap import read_ap, split_documents
    from mpmkit_text.encoder import WordEncoder
    from mpmkit_text.vocab import build_vocabulary
    from mpmkit_text.words import split_words

    docs = read_ap(args.data)
    train, _, _ = split_documents(len(docs), 0)
    vocab = build_vocabulary([split_words(docs[i].text) for i in train], min_count=10)
    texts = [docs[i].text for i in train[: args.docs]]
    return texts, vocab, WordEncoder(None, max_length=max_length)


def _items(encoded, vocab):
    import torch

    from mpmkit_text.family import TopicDocument

    out = []
    for i, e in enumerate(encoded):
        keep, ids = vocab.lookup(e.words)
        out.append(TopicDocument(i, str(i), [e.words[j] for j in keep], torch.as_tensor(ids),
                                 torch.as_tensor(e.positions[keep]), torch.from_numpy(e.embeddings[keep]).half()))
    return out


def worker(args) -> dict:
    import torch

    from mpmkit import CoordinateAscent
    from mpmkit_text.cache import EmbeddingCache
    from mpmkit_text.family import collate
    from mpmkit_text.model import build_topic_mpm

    torch.set_num_threads(args.threads)
    texts, vocab, encoder = _setup(args, args.max_length)
    cache = EmbeddingCache(args.cache_dir)
    if args.mode == "prepare":
        t0 = time.perf_counter()
        cache.get_or_compute(encoder, texts, batch_size=args.batch, progress=False)
        return {"encode_seconds": time.perf_counter() - t0, "docs": len(texts)}
    cached = _items(cache.get_or_compute(encoder, texts, progress=False), vocab) if args.mode == "cached" else None
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = build_topic_mpm(CoordinateAscent(), vocab_size=len(vocab), encoder_dim=encoder.hidden_size,
                            position_buckets=8, max_positions=args.max_length).to(dev)
    if args.mode == "recompute":
        encoder.model.to(dev)
        encoder.device = dev
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [list(range(lo, lo + args.batch)) for lo in range(0, len(texts) - args.batch + 1, args.batch)]

    def step(ix):
        items = cached if cached is not None else None
        if items is None:
            items = _items(encoder.encode([texts[i] for i in ix], batch_size=args.batch), vocab)
            ix = range(len(ix))
        batch = collate([items[i] for i in ix]).to(dev)
        opt.zero_grad()
        loss, _, _ = model(batch)
        loss.backward()
        opt.step()
        return len(batch.mask), int(batch.mask.sum())

    step(batches[0])  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_mib()
    times, words = [], 0
    for s in range(args.steps):
        t0 = time.perf_counter()
        words += step(batches[(s + 1) % len(batches)])[1]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else max(0.0, _peak_mib() - rss0)
    per_step = sum(times) / len(times)
    return {"mode": args.mode, "max_length": args.max_length, "step_s": per_step,
            "epoch_s": per_step * math.ceil(1800 / args.batch), "peak_mib": mem, "words_per_step": words / args.steps}


def run(args, mode, max_length) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--max-length", str(max_length), "--steps", str(args.steps),
           "--docs", str(args.docs), "--batch", str(args.batch), "--threads", str(args.threads),
           "--device", args.device, "--cache-dir", args.cache_dir] + (["--data", args.data] if args.data else [])
    return json.loads(run_child(cmd, {**os.environ, "HF_HUB_OFFLINE": "1"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="64,128,256,512")
    ap.add_argument("--steps", type=int, default=3, help="timed outer steps per variant")
    ap.add_argument("--docs", type=int, default=64, help="training documents cycled through")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default=None, help="ap.txt or its directory (default: find_ap())")
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "mpmkit" / "bench-embeddings"))
    ap.add_argument("--worker", default=None, choices=["prepare", "cached", "recompute"], help=argparse.SUPPRESS)
    ap.add_argument("--max-length", type=int, default=512, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.mode = args.worker
        print(json.dumps(worker(args)))
        return
    import torch

    print(f"# torch {torch.__version__}, {args.threads} thread(s), device {args.device}, batch {args.batch}, "
          f"{args.steps} timed steps, epoch = {math.ceil(1800 / args.batch)} steps")
    rows = []
    for L in [int(x) for x in args.lengths.split(",")]:
        prep = run(args, "prepare", L)
        c, r = run(args, "cached", L), run(args, "recompute", L)
        rows.append((L, prep, c, r))
        print(json.dumps({"max_length": L, "prepare": prep, "cached": c, "recompute": r}), flush=True)
    print("\n| max length | epoch, cached (s) | epoch, recompute (s) | speed-up | peak MiB, cached | peak MiB, recompute |"
          " words/step |")
    print("|---|---|---|---|---|---|---|")
    for L, prep, c, r in rows:
        print(f"| {L} | {c['epoch_s']:.1f} | {r['epoch_s']:.1f} | {r['epoch_s'] / c['epoch_s']:.1f}× | "
              f"{c['peak_mib']:.0f} | {r['peak_mib']:.0f} | {c['words_per_step']:.0f} |")


if __name__ == "__main__":
    main()
