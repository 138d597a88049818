"""Topic MPM vs LDA on AP: UMass and NPMI (mean and max over topics), multi-seed mean ± std.

Each seed draws its own 1,800 / 200 / rest split, trains ``ap-topics`` (Algorithm 1) and runs
the family's evaluate(), which also fits scikit-learn LDA on the same training observations
and scores both models' topics with the same coherence code on the same test documents.
LDA is reported two ways: the usual top words of each topic ("LDA") and the MPM rule applied
to LDA's word assignments ("LDA, tf-idf rule"). One table per coherence protocol
(``mpmkit_text.coherence.PROTOCOLS``: "document" = whole test documents, UMass with +1;
"gensim" = gensim's u_mass and c_npmi with 10-token sliding windows; "scholar" = "document" with
NPMI 0 for a pair that never co-occurs).

    python benchmarks/ap_topics.py --seeds 0,1,2 [--set epochs=15 --set lda_topics=0] [--out runs/ap_topics]
    python benchmarks/ap_topics.py --seeds 0,1,2 --out runs/ap_topics --evaluate-only [--set coherence_reference=train]
    python benchmarks/ap_topics.py --seeds 0,1,2 --out runs/ap_topics --evaluate-only \
        --set topic_words=likelihood --set topic_docs=train   # the model's topics, formed without the test articles

The last row scores no model at all: every test document is its own topic (its tf-idf top words).
With the test documents as reference (the paper's protocol) such copies of single articles score
high, since their words co-occur in the article they come from by construction; with
``coherence_reference=train`` (co-occurrences counted in the training documents) they do not.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "mpmkit-text"))

ROWS = [("MPM", "mpm"), ("LDA (as many topics as MPM uses)", "lda"), ("LDA, tf-idf rule", "lda_tfidf"),
        ("LDA, fixed topic count", "ldax"), ("no model: each test document is a topic", "doctopic")]
COLS = ["umass_mean", "umass_max", "npmi_mean", "npmi_max", "n_topics"]


def lda_extra(run: Path, n_topics: int, overrides: dict | None = None) -> dict:
    """LDA with ``n_topics`` topics on the run's split, scored by the same code (prefix ``ldax_``)."""
    from mpmkit.runs import open_run
    from mpmkit_text.family import load_corpus, reference_tokens
    from mpmkit_text.topics import lda_topics, score_all_protocols

    r = open_run(run, overrides=overrides)
    c, o = load_corpus(r.cfg), r.cfg.family
    lda = lda_topics([d.ids.tolist() for d in c.train], [d.ids.tolist() for d in c.test], c.vocab.words, n_topics,
                     r.cfg.train.seed, o.lda_iter, o.top_n,
                     relevance=o.relevance)
    ref = c.test if o.coherence_reference == "test" else c.train
    s = score_all_protocols(lda["topics"], [reference_tokens(c.documents[d.index].text) for d in ref],
                            o.coherence_protocol)
    return {f"ldax_{k}": v for k, v in s.items() if not k.endswith("per_topic")} | {
        "ldax_log_perplexity": lda["log_perplexity"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=str(ROOT / "runs" / "ap_topics"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--evaluate-only", action="store_true", help="re-evaluate existing runs")
    ap.add_argument("--lda-extra", type=int, default=20,
                    help="also score LDA with this many topics (0: skip); the matched LDA has as many as MPM uses")
    args = ap.parse_args()

    import torch

    from mpmkit.config import parse_overrides
    from mpmkit.runs import config_for, evaluate_run, make_family
    from mpmkit.training import Trainer
    from mpmkit_text.coherence import PROTOCOLS

    torch.set_num_threads(args.threads)
    # --evaluate-only --set KEY=VALUE: an evaluation variant (metrics-KEY=VALUE.json; the run's own kept)
    variant = parse_overrides(args.overrides) if args.evaluate_only and args.overrides else None
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        run = Path(args.out) / f"seed{seed}"
        t0 = time.perf_counter()
        if not args.evaluate_only:
            values = {"seed": seed, "progress": False, "tensorboard": False, **parse_overrides(args.overrides)}
            Trainer(make_family("ap-topics"), config_for("ap-topics", values), run).fit()
        fit_s = time.perf_counter() - t0
        m = evaluate_run(run, overrides=variant)
        m["fit_seconds"] = fit_s
        if args.lda_extra:
            m.update(lda_extra(run, args.lda_extra, variant))
        results.append(m)
        print(json.dumps({"seed": seed, "fit_seconds": round(fit_s, 1),
                          **{k: v for k, v in m.items() if isinstance(v, (int, float))}}), flush=True)

    fit = "" if args.evaluate_only else f"; MPM fit {np.mean([r['fit_seconds'] for r in results]):.0f} s/seed"
    note = f"; evaluation variant {variant}" if variant else ""
    print(f"\n{len(results)} seeds{fit}{note}")
    for protocol in PROTOCOLS:
        print_table(results, protocol)


def print_table(results: list[dict], protocol: str) -> None:
    """Markdown table, mean ± sample std over seeds, of one coherence protocol's metrics."""
    print(f"\ncoherence protocol: {protocol}")
    print("| model | UMass mean | UMass max | NPMI mean | NPMI max | topics | log-perplexity |")
    print("|---|---|---|---|---|---|---|")
    for name, p in ROWS:
        if f"{p}_{protocol}_umass_mean" not in results[0]:
            continue
        cells = []
        for c in COLS:
            key = f"{p}_{c}" if c == "n_topics" else f"{p}_{protocol}_{c}"
            v = np.array([r[key] for r in results], float)
            ok = v[np.isfinite(v)]  # NaN: no topic left in that seed (e.g. topic_min_docs filtered all)
            if c == "n_topics":
                cells.append(f"{v.mean():.1f}")
            elif not len(ok):
                cells.append("n/a")
            else:
                cell = f"{ok.mean():.3f} ± {ok.std(ddof=1 if len(ok) > 1 else 0):.3f}"
                cells.append(cell + (f" ({len(ok)}/{len(v)} seeds)" if len(ok) < len(v) else ""))
        lp = {"mpm": "mpm_log_perplexity", "lda": "lda_log_perplexity", "ldax": "ldax_log_perplexity"}.get(p)
        lpv = np.array([r[lp] for r in results]) if lp else None
        cells.append(f"{lpv.mean():.3f} ± {lpv.std(ddof=1 if len(lpv) > 1 else 0):.3f}" if lpv is not None else "")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
