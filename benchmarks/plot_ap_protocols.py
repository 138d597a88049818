"""UMass and NPMI of MPM, LDA and the no-model row under four ways of forming and scoring topics, as a figure.

    python benchmarks/plot_ap_protocols.py runs/apd/k5 runs/apd/k2 runs/apd/k1 --out benchmarks/ap_protocols.png

Each argument is an ``ap_topics.py --out`` folder (``seedS/`` runs) evaluated four ways:
(a) the paper's protocol (``metrics.json``), (b) tf-idf topics from the training articles scored on
the test articles (``metrics-topic_docs=train.json``), (c) the paper's topics scored on the training
articles (``metrics-coherence_reference=train.json``) and (d) the likelihood's topic-word
distributions from the training articles scored on the test articles
(``metrics-topic_docs=train,topic_words=likelihood.json``), written by ``ap_topics.py --evaluate-only
[--set topic_docs=train | --set coherence_reference=train | --set topic_docs=train --set topic_words=likelihood]``.
Bars are means over the seeds, whiskers the sample std; the issue's targets are dashed lines.
Panels: UMass, NPMI with a never co-occurring pair scored -1 (protocol ``document``) and NPMI with
such a pair scored 0 (protocol ``scholar``; its UMass is ``document``'s).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

WAYS = [("(a) paper: tf-idf, formed from\ntest, scored on test", "metrics.json"),
        ("(b) tf-idf, formed from\ntrain, scored on test", "metrics-topic_docs=train.json"),
        ("(c) tf-idf, formed from\ntest, scored on train", "metrics-coherence_reference=train.json"),
        ("(d) likelihood, formed from\ntrain, scored on test", "metrics-topic_docs=train,topic_words=likelihood.json")]
FROM_TRAIN = {WAYS[1][1], WAYS[3][1]}  # ways whose topics come from the training articles
TARGETS = {"umass": -0.46, "npmi": 0.23}
#: (measure, protocol, panel title) of each panel
PANELS = [("umass", "document", "UMass mean"),
          ("npmi", "document", "NPMI mean, unseen pair = -1 ('document')"),
          ("npmi", "scholar", "NPMI mean, unseen pair = 0 ('scholar')")]


def read(folder: Path, name: str) -> list[dict]:
    """The metrics file ``name`` of every ``seed*/`` run in ``folder``."""
    runs = sorted(p for p in folder.glob("seed*") if (p / name).exists())
    if not runs:
        raise SystemExit(f"no {folder}/seed*/{name}; run benchmarks/ap_topics.py --out {folder} first "
                         "(with --evaluate-only --set ... for the other ways of scoring)")
    return [json.loads((p / name).read_text()) for p in runs]


def bars(folders: list[Path]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """label -> panel index -> [(mean, std) per way]; LDA has as many topics as the first folder's MPM uses."""
    out: dict[str, dict[str, list]] = {}
    for i, folder in enumerate(folders):
        for _, name in WAYS:
            ms = read(folder, name)
            k = ms[0]["num_topics"]
            rows = [(f"MPM K={k}", "mpm")] + ([(f"LDA, as many topics as MPM K={k}", "lda"),
                                               ("no model", "doctopic")] if i == 0 else [])
            for label, prefix in rows:
                for panel, (measure, protocol, _) in enumerate(PANELS):
                    v = np.array([m[f"{prefix}_{protocol}_{measure}_mean"] for m in ms], float)
                    if prefix == "doctopic" and name in FROM_TRAIN:
                        v[:] = np.nan  # the no-model row is formed from the test articles
                    sd = v.std(ddof=1) if len(v) > 1 else 0.0
                    out.setdefault(label, {}).setdefault(panel, []).append((float(np.mean(v)), float(sd)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--out", default="benchmarks/ap_protocols.png")
    args = ap.parse_args()
    data = bars(args.folders)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(20, 4.8))
    width = 0.8 / len(data)
    for panel, (ax, (measure, _, title)) in enumerate(zip(axes, PANELS)):
        for j, (label, d) in enumerate(data.items()):
            mean, sd = zip(*d[panel])
            x = np.arange(len(WAYS)) + (j - (len(data) - 1) / 2) * width
            ax.bar(x, mean, width, yerr=sd, label=label, capsize=2,
                   color="0.6" if label == "no model" else None, hatch="//" if label == "no model" else None)
        ax.axhline(TARGETS[measure], ls="--", c="k", lw=1)
        ax.axhline(0, c="k", lw=0.5)
        ax.set_xticks(range(len(WAYS)), [w for w, _ in WAYS], fontsize=8)
        ax.set_title(f"{title} (dashed: the issue's target)", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels))
    fig.suptitle("AP topics: topics formed and scored four ways (document co-occurrence; mean ± std over seeds)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"{len(data)} rows x {len(WAYS)} ways -> {args.out}")


if __name__ == "__main__":
    main()
