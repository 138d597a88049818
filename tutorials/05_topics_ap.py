"""Tutorial 5 — topic discovery on the AP corpus with a meta-probabilistic model (Sec. 3.2, 5.3).

Every news article is a *dataset* and every word an *observation*. A frozen transformer gives a
contextual embedding per word; the MPM clusters each article's words into K local topics
(λ_i = {μ_ik}), and a global GMM over the topic embeddings ties the articles' topics into L
corpus-level topics. We read off topics with the paper's rule, score them with UMass and NPMI on
the test articles, and compare with LDA scored by the very same code.

Run it as a script (or cell by cell in an editor that understands ``# %%``)::

    python tutorials/05_topics_ap.py                          # CPU-friendly: 600 articles, 256 tokens
    MPMKIT_TUTORIAL_SMALL=1 python tutorials/05_topics_ap.py  # tiny: 40 articles, seconds

Full scale (all 2,246 articles, 512 tokens, the settings of benchmarks/RESULTS.md)::

    mpmkit fit ap-topics --out runs/ap-topics      # then: mpmkit evaluate runs/ap-topics
    python benchmarks/ap_topics.py --seeds 0,1,2   # MPM vs LDA over three seeds

The corpus is read from ``$MPMKIT_DATA_DIR/ap`` or ``shared/data/ap`` (fetch it with
``mpmkit data fetch ap``); it is AP's copyright and never copied into the project. Encoder
embeddings are cached in ``$MPMKIT_CACHE_DIR/embeddings`` (default ``~/.cache/mpmkit/embeddings``), so a second run skips
the encoder. Outputs go to ``$MPMKIT_TUTORIAL_OUT`` (default ``./tutorial_out``).
"""

# %% [markdown]
# ## Set-up
# The text plugin registers the family `ap-topics`; we ask mpmkit's registry for it by name.

# %%
import json
import os
import shutil
import time
from pathlib import Path

import torch

from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer

torch.set_num_threads(1)
SMALL = os.environ.get("MPMKIT_TUTORIAL_SMALL", "").strip().lower() in {"1", "true", "yes"}
OUT = Path(os.environ.get("MPMKIT_TUTORIAL_OUT", "tutorial_out"))
OUT.mkdir(parents=True, exist_ok=True)
print(f"scale: {'small' if SMALL else 'CPU-friendly'}; output: {OUT.resolve()}")

# %% [markdown]
# ## 1. The corpus and its split
# `ap.txt` holds 2,246 articles in lda-c's DOC / DOCNO / TEXT tag format. The split is the paper's:
# 1,800 training / 200 validation / the rest for test, shuffled by the seed (smaller corpora keep
# the proportions).

# %%
from mpmkit_text.ap import find_ap, read_ap, split_sizes  # noqa: E402

docs = read_ap()
print(f"{len(docs)} articles from {find_ap()}; split of all of them: {split_sizes(len(docs))}")

options = {  # family options and training options share one flat namespace
    "max_docs": 40 if SMALL else 600,  # the first articles only (0: all)
    "max_length": 64 if SMALL else 256,  # encoder tokens per article; longer articles are truncated
    "min_count": 2 if SMALL else 5,  # vocabulary: words in at least this many training articles
    "num_global": 10 if SMALL else 50,  # L
    "epochs": 2 if SMALL else 10,
    "prior_decay": 0.95,  # online EM of the GMM centres: restart unused centres sooner in a short run
    "lr_milestones": [] if SMALL else [7],
    "lda_iter": 5 if SMALL else 30,
    "progress": False, "tensorboard": False,
}
cfg = config_for("ap-topics", options)
print({k: getattr(cfg, k) for k in ("num_topics", "num_global", "slot_dim", "beta", "inner_steps", "lr")})

# %% [markdown]
# ## 2. Words, observations and the frozen encoder
# The family encodes each article once with the packaged all-MiniLM-L6-v2 (a word's vector is the
# mean of its sub-word vectors) and caches the result on disk. Observations are the vocabulary
# words: lower-cased, alphabetic, not stop words, in enough training articles. Other words are not
# predicted, but the encoder still reads them as context.

# %%
from mpmkit_text.family import load_corpus  # noqa: E402

t0 = time.perf_counter()
corpus = load_corpus(cfg)
print(f"encoded (or read from the cache) in {time.perf_counter() - t0:.1f} s; vocabulary V = {len(corpus.vocab)}; "
      f"train/val/test = {len(corpus.train)}/{len(corpus.val)}/{len(corpus.test)} articles "
      f"({corpus.dropped_empty} without observations dropped)")
first = corpus.train[0]
print(f"article {first.docno}: {len(first)} observations, e.g. {first.words[:8]}; embeddings {tuple(first.emb.shape)}")

# %% [markdown]
# ## 3. The model and Algorithm 1
# * recognition g_φ: cached embedding → 2-layer MLP → LayerNorm;
# * uniform p(z | λ) over K = 5 local topics; potential ψ = −½‖μ_ik − g_φ(x_ij)‖², so the inner
#   loop is Proposition 1's closed-form coordinate ascent;
# * likelihood p(x_ij = v | z = k, λ) = Softmax(f_θ(μ_ik, s_j))_v: slot + residual MLP, a learned
#   positional encoding s_j, a 3-layer MLP to the V vocabulary logits;
# * global GMM prior over topic embeddings (L centres ν, initialised at topic embeddings of the
#   untrained model); entropy weight β = 0.1.

# %%
run = OUT / "run"
shutil.rmtree(run, ignore_errors=True)
t0 = time.perf_counter()
summary = Trainer(make_family("ap-topics"), cfg, run).fit()
print(f"trained {summary['step']} steps in {time.perf_counter() - t0:.1f} s; best validation loss "
      f"{summary['best_val']:.3f} (per word: the negative ELBO with its KL term scaled by beta = {cfg.beta})")

# %% [markdown]
# ## 4. Topics, coherence and the LDA baseline
# `evaluate_run` calls the family's evaluate(): each test word goes to its argmax local topic, each
# local topic to its most responsible global cluster, words are pooled per cluster and the top 10
# by tf-idf across clusters form a topic. UMass and NPMI are computed on the test articles — for MPM
# and for scikit-learn LDA (same observations, same code). NPMI scores a word pair that never
# co-occurs −1; the `scholar` protocol (keys `*_scholar_npmi_*`) scores it 0, the convention that
# reproduces the NPMI rows of the paper's Table 3 at full scale.

# %%
metrics = evaluate_run(run)
for p in ("mpm", "lda"):
    print(f"{p.upper():4s} UMass mean {metrics[f'{p}_umass_mean']:.3f} max {metrics[f'{p}_umass_max']:.3f} | "
          f"NPMI mean {metrics[f'{p}_npmi_mean']:.3f} max {metrics[f'{p}_npmi_max']:.3f} "
          f"(unseen pairs 0: {metrics[f'{p}_scholar_npmi_mean']:.3f}) | {metrics[f'{p}_n_topics']} topics | log-perplexity {metrics[f'{p}_log_perplexity']:.3f}")
print((run / "topics.txt").read_text()[:1500])
print((run / "fig6.md").read_text())
print("metrics:", json.dumps({k: v for k, v in metrics.items() if k.startswith("mpm_") and "file" not in k})[:400])

# %% [markdown]
# ## 5. What the paper's protocol measures
# The topics are formed from the test articles and scored on the same articles, so a topic copied
# from one article scores well whatever the model: `doctopic_*` is that no-model row (every test
# article is its own topic, its tf-idf top words). A cluster that pools a single test article is
# such a copy too: `mpm_single_doc_topics` counts them, and `topic_min_docs=2` scores the topics
# without them (for MPM and for LDA under the same rule). Counting co-occurrences in the training
# articles instead (`coherence_reference=train`, which the topics never saw) removes the free credit.
# The other disjoint set-up forms the topics from the training articles and scores them on the test
# articles; there `topic_words=likelihood` reads each cluster's words off the model — the likelihood
# p_θ(x | μ_ik) summed over the local topics assigned to the cluster, a topic-word distribution like
# LDA's. (At full scale that set-up is where MPM beats LDA of the same size on UMass, and on NPMI
# when unseen pairs score −1 but not when they score 0; see benchmarks/RESULTS.md.) A variant evaluation writes `metrics-KEY=VALUE.json` and its topics to
# `eval-KEY=VALUE/` (keys sorted; characters other than letters, digits and `=,.-_` written as `_`), and keeps
# the run's own metrics and topics.

# %%
train_ref = evaluate_run(run, overrides={"coherence_reference": "train", "lda": False})
for name, m in (("test articles (paper)", metrics), ("training articles", train_ref)):
    print(f"reference = {name:22s} | MPM UMass {m['mpm_umass_mean']:.3f} NPMI {m['mpm_npmi_mean']:.3f} | "
          f"no model UMass {m['doctopic_umass_mean']:.3f} NPMI {m['doctopic_npmi_mean']:.3f} "
          f"({m['num_reference_docs']} reference articles)")
multi = evaluate_run(run, overrides={"topic_min_docs": 2, "lda": False})
print(f"{metrics['mpm_single_doc_topics']} of {metrics['mpm_n_topics']} MPM topics pool a single test article; "
      f"without them: MPM UMass {multi['mpm_umass_mean']:.3f} NPMI {multi['mpm_npmi_mean']:.3f} "
      f"({multi['mpm_n_topics']} topics)")
held_out = evaluate_run(run, overrides={"topic_docs": "train", "topic_words": "likelihood"})
print(f"likelihood topics from the training articles, scored on the test articles: "
      f"MPM UMass {held_out['mpm_umass_mean']:.3f} NPMI {held_out['mpm_npmi_mean']:.3f} | "
      f"LDA ({held_out['lda_n_topics']} topics) UMass {held_out['lda_umass_mean']:.3f} "
      f"NPMI {held_out['lda_npmi_mean']:.3f}")
print((run / "eval-topic_docs=train,topic_words=likelihood" / "topics.txt").read_text()[:800])
