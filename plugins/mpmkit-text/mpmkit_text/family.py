"""The ``ap-topics`` family: topic discovery on the AP corpus with the topic MPM (Sec. 3.2, 5.3).

Data: AP documents (lda-c format, :mod:`mpmkit_text.ap`), split 1,800 / 200 / rest by seed.
Every document is encoded once by the frozen encoder and cached on disk
(:class:`~mpmkit_text.cache.EmbeddingCache`); training reads only the cached embeddings.
Documents longer than the encoder limit are truncated (``window=truncate``, the paper's
choice) or covered by sliding windows (``window=sliding``). Observations are the
in-vocabulary words (:mod:`mpmkit_text.vocab`); a document with no observation left is
dropped from its split (the count is reported as ``dropped_empty``).

Evaluation (:meth:`APTopicsFamily.evaluate`): corpus-level topics by the paper's rule
(:mod:`mpmkit_text.topics`; ``topic_words=likelihood`` reads them off the likelihood instead,
:func:`likelihood_topics`, and ``topic_docs=train`` forms them from the training documents),
UMass / NPMI on the test documents under every coherence protocol
(``coherence_protocol`` picks the one reported without prefix; ``coherence_reference=train`` counts
co-occurrences in the training documents instead), held-out log-perplexity, the LDA baseline and a
no-model row (each test document its own topic, ``doctopic_*``) scored by the same code, a
``topics.txt`` file and a Fig. 6-style table (``fig6.md``) in the run directory.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from mpmkit import Family, MPM, Splits, pad_datasets
from mpmkit.batch import Batch
from mpmkit.components import solver_from_config
from mpmkit.config import Config
from mpmkit.errors import ConfigError, DataError
from mpmkit.psa import var_prior

from .model import build_topic_mpm, global_prior
from .topics import rank_words, unigram


@dataclass
class APTopicsOptions:
    """Options of the ``ap-topics`` family (each field is a config key)."""

    # -- data --------------------------------------------------------------------------------
    data_path: Optional[str] = None  #: ap.txt or its directory (None: $MPMKIT_DATA_DIR, then shared/data/ap)
    max_docs: int = 0  #: use only the first max_docs documents (0: all 2,246)
    split_seed: Optional[int] = None  #: seed of the train/val/test permutation (None: the run's seed)
    encoder: Optional[str] = None  #: transformers encoder path or hub name (None: packaged all-MiniLM-L6-v2)
    max_length: int = 512  #: encoder tokens per document (incl. [CLS]/[SEP])
    window: Literal["truncate", "sliding"] = "truncate"  #: long documents: keep the prefix, or sliding windows
    cache_dir: Optional[str] = None  #: embedding cache (None: $MPMKIT_CACHE_DIR/embeddings or ~/.cache/mpmkit/embeddings)
    encode_batch: int = 8
    min_count: int = 10  #: vocabulary: minimum number of training documents holding a word
    stopwords: bool = True  #: vocabulary: drop English stop words
    alpha_only: bool = True  #: vocabulary: alphabetic words of >= 2 letters only
    max_df: float = 1.0  #: vocabulary: drop words in more than this fraction of training documents
    # -- model -------------------------------------------------------------------------------
    num_topics: int = 5  #: K local topics per document
    #: each document's local model: the paper's (uniform p(z), ψ = −½‖g − μ‖²) or PSA's (mixing weights π and
    #: diagonal variances σ² over the word embeddings, solved by psa-em; Probabilistic Slot Attention)
    local: Literal["mpm", "psa"] = "mpm"
    #: PSA: [α, β] of an inverse-gamma prior on each σ²; [0, 0] flat (needed > 0 by pyro-nuts / pyro-svi's Normal guide)
    psa_var_prior: list[float] = field(default_factory=lambda: [0.0, 0.0])
    num_global: int = 100  #: L global topic clusters (GMM components)
    slot_dim: int = 128  #: D, size of a topic embedding μ_ik
    hidden: int = 256  #: width of f_θ's 3-layer MLP
    position_buckets: int = 8  #: learned positional encodings s (max_length: one per position, as the paper)
    prior_scale: float = 1.0  #: σ of each GMM component
    prior_init: Literal["data", "random"] = "data"  #: ν: random topic embeddings of the untrained model, or N(0, I)
    prior_update: Literal["em", "gradient"] = "em"  #: ν by online EM with dead-centre restarts, or by Adam
    prior_decay: float = 0.99  #: online EM: decay of the running statistics (unused centres restart after ~log(0.01)/log(decay) steps)
    # -- evaluation ----------------------------------------------------------------------------
    top_n: int = 10  #: words per corpus-level topic
    topic_tf: Literal["count", "docs"] = "count"  #: tf-idf's tf: word occurrences (paper) or documents per cluster
    #: a cluster's words: the paper's tf-idf of the words pooled into it, or the top words of the likelihood
    #: averaged over the local topics assigned to it (a topic-word distribution, like LDA's; see likelihood_topics)
    topic_words: Literal["tfidf", "likelihood"] = "tfidf"
    #: documents whose words are pooled into the topics: the test documents (paper), the training documents
    #: (scored on the test documents, topics and reference are then disjoint), or both; MPM's topics only
    #: (the LDA row under MPM's tf-idf rule pools LDA's assignments of the test documents either way)
    topic_docs: Literal["test", "train", "train+test"] = "test"
    #: score only the tf-idf topics pooled from at least this many test documents (1: every used cluster, the
    #: paper's rule). A cluster holding one article gets that article's rarest words, which always co-occur
    #: there (the no-model effect); 2 leaves such topics out, for MPM and for LDA under the tf-idf rule alike
    topic_min_docs: int = 1
    #: how topic-word distributions are ranked into top words (MPM's likelihood topics and LDA's top words
    #: alike): by probability, or by Sievert & Shirley's relevance with λ = relevance_lambda (p(w): the
    #: training documents' unigram distribution), which demotes words frequent everywhere. MPM's tf-idf
    #: topics (topic_words=tfidf) have no distribution to rank: there only LDA's top-word rows change
    topic_rank: Literal["probability", "relevance"] = "probability"
    relevance_lambda: float = 0.6

    @property
    def relevance(self) -> float | None:
        """λ of the relevance ranking, or None for the probability ranking."""
        return self.relevance_lambda if self.topic_rank == "relevance" else None
    #: coherence protocol of the unprefixed metrics (mpm_umass_mean, ...): "document" (whole test documents,
    #: UMass +1), "gensim" (gensim's u_mass / c_npmi, 10-token windows) or "scholar" ("document" with NPMI 0
    #: for a pair that never co-occurs); every protocol is also written
    #: as {model}_{protocol}_{measure}_{mean|max}, see mpmkit_text.coherence
    coherence_protocol: Literal["document", "gensim", "scholar"] = "document"
    #: documents whose co-occurrences coherence counts: the test documents the topics are formed from (the
    #: paper's protocol) or the training documents, disjoint from them (a topic copied from one test article
    #: then gets no credit for its words co-occurring in that article; see the ``doctopic`` row)
    coherence_reference: Literal["test", "train"] = "test"
    eval_inner_steps: int = 0  #: inner steps at test time (0: the training inner_steps)
    lda: bool = True  #: fit the LDA baseline in evaluate()
    lda_topics: int = 0  #: LDA topics (0: as many as MPM's used clusters)
    lda_iter: int = 50
    example_doc: int = 0  #: test document shown in fig6.md

    def validate(self) -> None:
        var_prior(self.psa_var_prior, self.local)
        # 0 means "the default" for the first three; a topic needs two words to have a pair to score
        low = {"max_docs": 0, "lda_topics": 0, "eval_inner_steps": 0, "top_n": 2}
        for key in ("max_docs", "min_count", "num_topics", "num_global", "slot_dim", "hidden", "position_buckets",
                    "top_n", "lda_iter", "encode_batch", "max_length", "topic_min_docs", "lda_topics",
                    "eval_inner_steps"):
            if getattr(self, key) < low.get(key, 1):
                raise ConfigError(f"config key {key!r} must be >= {low.get(key, 1)}, got {getattr(self, key)}")
        if self.position_buckets > self.max_length:
            raise ConfigError(f"position_buckets ({self.position_buckets}) cannot exceed max_length ({self.max_length})")
        from .coherence import PROTOCOLS

        if self.topic_tf not in ("count", "docs") or self.topic_docs not in ("test", "train", "train+test"):
            raise ConfigError(f"topic_tf must be count|docs and topic_docs test|train|train+test, "
                              f"got {self.topic_tf!r}, {self.topic_docs!r}")
        if self.topic_words not in ("tfidf", "likelihood"):
            raise ConfigError(f"topic_words must be tfidf|likelihood, got {self.topic_words!r}")
        if self.topic_rank not in ("probability", "relevance"):
            raise ConfigError(f"topic_rank must be probability|relevance, got {self.topic_rank!r}")
        if not 0 <= self.relevance_lambda <= 1:
            raise ConfigError(f"relevance_lambda must be in [0, 1], got {self.relevance_lambda}")
        if self.topic_min_docs > 1 and (self.topic_words != "tfidf" or self.topic_docs != "test"):
            raise ConfigError("topic_min_docs counts the test documents pooled into a tf-idf topic; it needs "
                              "topic_words=tfidf and topic_docs=test (or set topic_min_docs=1)")
        if self.coherence_reference not in ("test", "train"):
            raise ConfigError(f"coherence_reference must be test|train, got {self.coherence_reference!r}")
        if self.coherence_protocol not in PROTOCOLS:
            raise ConfigError(f"coherence_protocol must be one of {tuple(PROTOCOLS)}, got {self.coherence_protocol!r}")
        if self.prior_scale <= 0 or not 0 < self.max_df <= 1 or not 0 < self.prior_decay < 1:
            raise ConfigError("need prior_scale > 0, 0 < max_df <= 1 and 0 < prior_decay < 1")


@dataclass
class TopicDocument:
    """One document as a dataset: its observations and where they come from."""

    index: int  #: position in the corpus
    docno: str
    words: list[str]  #: observation words (lower-cased), in order
    ids: torch.Tensor  #: vocabulary ids, int64 [n]
    pos: torch.Tensor  #: word positions in the document, int64 [n]
    emb: torch.Tensor  #: frozen encoder embeddings, float16 [n, H] (float16 halves the memory)

    def __len__(self) -> int:
        return len(self.words)


def collate(docs: list[TopicDocument]) -> Batch:
    """Pad documents to a batch; ``x = {emb, ids, pos}`` plus a mask."""
    if not docs:
        raise ValueError("collate got no documents")
    emb, mask = pad_datasets([d.emb for d in docs])
    ids, _ = pad_datasets([d.ids for d in docs])
    pos, _ = pad_datasets([d.pos for d in docs])
    return Batch(x={"emb": emb, "ids": ids, "pos": pos}, mask=mask,
                 extras={"index": torch.tensor([d.index for d in docs])})


@dataclass
class Corpus:
    """Everything the family derives from the raw corpus for one config."""

    documents: list  #: raw :class:`~mpmkit_text.ap.Document` objects
    vocab: Any  #: :class:`~mpmkit_text.vocab.Vocabulary`
    train: list[TopicDocument]
    val: list[TopicDocument]
    test: list[TopicDocument]
    encoder_dim: int
    dropped_empty: int
    encode_seconds: float


_DATA_KEYS = ("data_path", "max_docs", "split_seed", "encoder", "max_length", "window", "cache_dir", "min_count",
              "stopwords", "alpha_only", "max_df")
_MEMO: dict[tuple, Corpus] = {}


def load_corpus(cfg: Config) -> Corpus:
    """Read, split, encode (through the cache) and tokenise the corpus; memoised per config."""
    o = cfg.family
    seed = cfg.train.seed if o.split_seed is None else o.split_seed
    key = tuple(getattr(o, k) for k in _DATA_KEYS) + (seed,)
    if key not in _MEMO:
        _MEMO.clear()
        _MEMO[key] = _build_corpus(o, seed)
    return _MEMO[key]


def _build_corpus(o: APTopicsOptions, seed: int) -> Corpus:
    from .ap import read_ap, split_documents
    from .cache import EmbeddingCache
    from .encoder import WordEncoder
    from .vocab import build_vocabulary

    docs = read_ap(o.data_path)
    if o.max_docs:
        docs = docs[: o.max_docs]
    if len(docs) < 3:
        raise DataError(f"{len(docs)} document(s) to split into train / validation / test, need >= 3"
                        + (f" (max_docs={o.max_docs})" if o.max_docs else ""))
    parts = split_documents(len(docs), seed)
    t0 = time.perf_counter()
    encoder = WordEncoder(o.encoder, max_length=o.max_length, window=o.window)
    encoded = EmbeddingCache(o.cache_dir).get_or_compute(encoder, docs, batch_size=o.encode_batch)
    encode_seconds = time.perf_counter() - t0
    vocab = build_vocabulary([encoded[i].words for i in parts[0]], o.min_count, o.stopwords, o.alpha_only, o.max_df)
    dropped = 0
    splits = []
    for part in parts:
        items = []
        for i in part:
            enc = encoded[int(i)]
            keep, ids = vocab.lookup(enc.words)
            if not keep:
                dropped += 1
                continue
            items.append(TopicDocument(
                index=int(i), docno=docs[int(i)].docno, words=[enc.words[j].lower() for j in keep],
                ids=torch.as_tensor(ids, dtype=torch.int64), pos=torch.as_tensor(enc.positions[keep], dtype=torch.int64),
                emb=torch.from_numpy(enc.embeddings[keep]).to(torch.float16)))
        splits.append(items)
    for name, items, part in zip(("training", "validation", "test"), splits, parts):
        if not items:  # every document of the split lost all its words to the vocabulary
            raise DataError(f"the {name} split is empty: its {len(part)} document(s) hold no vocabulary word "
                            f"({dropped} document(s) dropped in all; vocabulary {len(vocab)} words). Use more "
                            "documents (max_docs) or a wider vocabulary (min_count, stopwords, alpha_only, max_df)")
    return Corpus(docs, vocab, *splits, encoder_dim=encoder.hidden_size, dropped_empty=dropped,
                  encode_seconds=encode_seconds)


def reference_tokens(text: str) -> list[str]:
    """A reference document for coherence: its lower-cased words (full text, not truncated)."""
    from .words import split_words

    return [w.lower() for w in split_words(text)]


class APTopicsFamily(Family):
    """Topic MPM on AP: frozen-encoder word embeddings, K local topics, global GMM over topics."""

    name = "ap-topics"
    description = "Sequential text modeling on AP (Sec. 3.2, 5.3): topics with UMass/NPMI, LDA baseline"
    options = APTopicsOptions
    data_keys = ("max_docs", "split_seed")  # with the seed, they pick the test articles
    defaults = {"epochs": 15, "batch_size": 16, "lr": 1e-3, "lr_milestones": [10], "lr_gamma": 0.5, "beta": 0.1,
                "inner_steps": 3, "log_every": 20, "grad_clip": 1.0}

    def build_data(self, cfg: Config) -> Splits:
        c = load_corpus(cfg)
        return Splits(train=c.train, val=c.val, test=c.test, collate=collate)

    def check(self, cfg: Config) -> None:
        """Solver combinations, before the corpus is read and encoded (minutes on a first run)."""
        self._solver(cfg)

    @staticmethod
    def _solver(cfg: Config):
        """The training solver, after refusing the ones that do not fit ``local``."""
        o = cfg.family
        if o.local == "psa" and cfg.solver in ("slot-attention", "learned-posterior"):
            raise ConfigError(f"local=psa runs PSA's EM inner loop over packed (μ, σ², π); the {cfg.solver} solver "
                              "learns its own update of the means only. Use solver=coordinate-ascent (= psa-em "
                              "under local=psa), psa-em, gradient, pyro-svi, or pyro-nuts (pyro-nuts and pyro-svi's Normal "
                              "guide need a proper variance prior, e.g. psa_var_prior=[1.0,0.01])")
        return solver_from_config(cfg, local=o.local)

    def build_model(self, cfg: Config) -> MPM:
        o = cfg.family
        solver = self._solver(cfg)  # before the corpus: a refusal costs no encoding
        c = load_corpus(cfg)
        model = build_topic_mpm(solver, vocab_size=len(c.vocab),
                                encoder_dim=c.encoder_dim, num_topics=o.num_topics, num_global=o.num_global,
                                slot_dim=o.slot_dim, hidden=o.hidden, position_buckets=o.position_buckets,
                                max_positions=o.max_length, inner_steps=cfg.inner_steps, beta=cfg.beta,
                                prior_scale=o.prior_scale, prior_update=o.prior_update,
                                prior_decay=o.prior_decay, local=o.local,
                                var_prior=var_prior(o.psa_var_prior))
        if o.prior_init == "data":
            init_centres(model, c.train, o.num_global)
        return model

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def infer(self, model: MPM, docs: list[TopicDocument], cfg: Config, batch_size: int = 32,
              word_mass: bool = False) -> dict[str, Any]:
        """Per document: argmax local topic per word, global cluster per local topic, log-likelihoods;
        with ``word_mass`` also :func:`cluster_word_mass` of ``docs`` from the same inner loop."""
        local, cluster, ll_sum, elbo_sum, n = [], [], 0.0, 0.0, 0
        mass = torch.zeros(0, 0, dtype=torch.float64)
        for chunk, batch, inf in _inferred_batches(model, docs, cfg, batch_size):
            ll = model.likelihood.log_prob(batch.x, inf.lam, batch.mask)  # [B, N, K]
            mix = torch.logsumexp(ll + model.log_pz(inf.lam).unsqueeze(1), -1)  # log Σ_k p(z=k) p(x|k, λ)
            ll_sum += float((mix * batch.mask).sum())
            elbo_sum += float(model.elbo(batch, inf, beta=1.0).total.sum())
            n += int(batch.mask.sum())
            k = inf.q.argmax(-1).cpu().numpy()
            r = _responsibilities(model, inf.lam).argmax(-1).cpu().numpy()  # [B, K]
            for b, d in enumerate(chunk):
                local.append(k[b, : len(d)])
                cluster.append(r[b])
            if word_mass:
                mass = _add_word_mass(mass, model, batch, inf)
        out = {"local": local, "cluster": cluster, "log_perplexity": -ll_sum / max(n, 1),
               "neg_elbo_per_word": -elbo_sum / max(n, 1), "n_words": n}
        return out | ({"word_mass": mass.cpu()} if word_mass else {})

    def evaluate(self, model: MPM, splits: Splits, cfg: Config, out_dir: Path) -> dict[str, Any]:
        from .coherence import tfidf_topics
        from .topics import lda_topics, pool_words, score_all_protocols

        t0 = time.perf_counter()
        o, c, seed = cfg.family, load_corpus(cfg), cfg.train.seed
        test = list(splits.test)
        model.eval()
        likelihood, with_test = o.topic_words == "likelihood", o.topic_docs != "train"
        res = self.infer(model, test, cfg, word_mass=likelihood and with_test)  # the test documents, once
        words = [d.words for d in test]
        pooled, contributors = pool_words(words, res["local"], res["cluster"], o.topic_tf)
        mass = res.get("word_mass")
        if o.topic_docs != "test":  # add (train+test) or switch (train) to the training documents
            train = list(splits.train)
            if likelihood:
                mass = cluster_word_mass(model, train, cfg) + (mass if with_test else 0)
            else:
                tr = self.infer(model, train, cfg)
                pooled, _ = pool_words([d.words for d in train] + (words if with_test else []),
                                       tr["local"] + (res["local"] if with_test else []),
                                       tr["cluster"] + (res["cluster"] if with_test else []), o.topic_tf)
        relevance = o.relevance
        # p(w) of the relevance ranking: the training documents' words, for MPM's likelihood topics and LDA alike
        p_w = unigram([d.ids.tolist() for d in splits.train], len(c.vocab)) if relevance is not None else None
        topics = top_words(mass, c.vocab.words, o.top_n, p_w, relevance) if likelihood \
            else tfidf_topics(pooled, o.top_n)
        contributors = {t: contributors.get(t, set()) for t in topics}  # test documents pooled per topic
        used = len(topics)
        # test articles pooled into a topic are known for tf-idf topics of the test articles only
        single = sum(len(d) == 1 for d in contributors.values()) \
            if o.topic_words == "tfidf" and o.topic_docs == "test" else None
        if not likelihood and o.topic_min_docs > 1:
            topics = {t: w for t, w in topics.items() if len(contributors[t]) >= o.topic_min_docs}
            contributors = {t: contributors[t] for t in topics}
        ref_docs = test if o.coherence_reference == "test" else list(splits.train)
        reference = [reference_tokens(c.documents[d.index].text) for d in ref_docs]
        mpm = score_all_protocols(topics, reference, o.coherence_protocol)
        per_topic = {}
        for key in [k for k in mpm if k.endswith("_per_topic")]:
            for t, v in zip(topics, mpm.pop(key)):
                per_topic.setdefault(t, {})[key[: -len("_per_topic")]] = v
        n_docs = [len(contributors[t]) for t in topics]
        metrics: dict[str, Any] = {
            **{f"mpm_{k}": v for k, v in mpm.items()},
            "coherence_protocol": o.coherence_protocol,
            "mpm_log_perplexity": res["log_perplexity"],
            "mpm_neg_elbo_per_word": res["neg_elbo_per_word"],
            "mpm_docs_per_topic_median": float(np.median(n_docs)) if n_docs else float("nan"),
            "mpm_single_doc_topics": single,  # tf-idf topics from one test article (before topic_min_docs); None otherwise
            "topic_min_docs": o.topic_min_docs, "topic_rank": o.topic_rank,
            "relevance_lambda": relevance,
            "num_test_docs": len(test), "num_test_words": res["n_words"], "vocab_size": len(c.vocab),
            "dropped_empty": c.dropped_empty, "num_global": o.num_global, "num_topics": o.num_topics,
            "coherence_reference": o.coherence_reference, "num_reference_docs": len(reference),
        }
        # no model: every test document is its own topic (its tf-idf top words across the test documents);
        # what the protocol gives topics that are copies of single articles
        own = pool_words(words, [np.zeros(len(w), int) for w in words], [[i] for i in range(len(words))],
                         o.topic_tf)[0]
        s = score_all_protocols(tfidf_topics(own, o.top_n), reference, o.coherence_protocol)
        metrics.update({f"doctopic_{k}": v for k, v in s.items() if not k.endswith("_per_topic")})
        lda = None
        if o.lda:
            n_lda = o.lda_topics or max(used, 2)  # as many as MPM's used clusters, before topic_min_docs
            lda = lda_topics([d.ids.tolist() for d in splits.train], [d.ids.tolist() for d in test], c.vocab.words,
                             n_lda, seed, o.lda_iter, o.top_n, o.topic_tf, o.topic_min_docs, relevance, p_w)
            for name, tl in (("lda", lda["topics"]), ("lda_tfidf", lda["topics_tfidf"])):
                s = score_all_protocols(tl, reference, o.coherence_protocol)
                metrics.update({f"{name}_{k}": v for k, v in s.items() if not k.endswith("_per_topic")})
            metrics["lda_log_perplexity"] = lda["log_perplexity"]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        ranking = "probability" if relevance is None else f"relevance (λ = {relevance})"
        rule = "by tf-idf" if o.topic_words == "tfidf" else f"of the likelihood by {ranking}"
        write_topics(out_dir / "topics.txt", topics, per_topic, contributors, lda,
                     f"top words {rule}, {o.topic_docs} documents", ranking)
        example = min(max(o.example_doc, 0), len(test) - 1)
        (out_dir / "fig6.md").write_text(fig6_table(c.documents[test[example].index], test[example],
                                                    res["local"][example], res["cluster"][example], topics, contributors))
        metrics["topics_file"] = str(out_dir / "topics.txt")
        metrics["fig6_file"] = str(out_dir / "fig6.md")
        metrics["eval_seconds"] = time.perf_counter() - t0
        return metrics


def _responsibilities(model: MPM, lam: torch.Tensor) -> torch.Tensor:
    """r_ikl of each local topic's mean under the global GMM, ``[B, K, L]`` (PSA's λ: its means)."""
    return global_prior(model.prior).responsibilities(model.potential.slot_means(lam))


def _inferred_batches(model: MPM, docs: list[TopicDocument], cfg: Config, batch_size: int):
    """(documents, batch, inference) for each batch of ``docs``: the test-time inner loop, run once."""
    steps = cfg.family.eval_inner_steps or cfg.inner_steps
    device = next(model.parameters()).device
    for lo in range(0, len(docs), batch_size):
        chunk = docs[lo: lo + batch_size]
        batch = collate(chunk).to(device)
        yield chunk, batch, model.infer(batch, steps=steps)


def _add_word_mass(acc: torch.Tensor, model: MPM, batch: Batch, inf) -> torch.Tensor:
    """``acc`` (``[L, V]``, or empty to start) plus one batch's n_ik p_θ(x | μ_ik), each in the row of its cluster."""
    p = model.likelihood.log_probs(inf.lam).exp().mean(2)  # [B, K, V]
    n = (inf.q * batch.mask.unsqueeze(-1)).sum(1)  # [B, K] words per local topic
    r = _responsibilities(model, inf.lam)  # [B, K, L]
    if not acc.numel():
        acc = torch.zeros(r.shape[-1], p.shape[-1], dtype=torch.float64, device=p.device)
    return acc.index_add_(0, r.argmax(-1).reshape(-1), (n.unsqueeze(-1) * p).reshape(-1, p.shape[-1]).double())


@torch.no_grad()
def cluster_word_mass(model: MPM, docs: list[TopicDocument], cfg: Config, batch_size: int = 32) -> torch.Tensor:
    """``[L, V]``: row l = Σ_{(i,k) → l} n_ik p_θ(x | μ_ik), over the local topics (i, k) of ``docs``
    whose most responsible cluster is l, with n_ik = Σ_j q_ijk the number of words local topic k explains
    and p_θ(x | μ_ik) averaged over the position buckets (float64; empty ``[0, 0]`` without documents)."""
    acc = torch.zeros(0, 0, dtype=torch.float64)
    for _, batch, inf in _inferred_batches(model, docs, cfg, batch_size):
        acc = _add_word_mass(acc, model, batch, inf)
    return acc.cpu()


def top_words(mass: torch.Tensor, vocab, top_n: int = 10, p_w=None, relevance: float | None = None) -> dict[int, list[str]]:
    """Cluster l → the ``top_n`` words of row l of a :func:`cluster_word_mass` (by probability, or by
    relevance with λ = ``relevance`` against ``p_w``: :func:`~mpmkit_text.topics.rank_words`); clusters
    explaining no word are unused."""
    used = (mass.sum(1) > 0.5).nonzero()[:, 0].tolist() if mass.numel() else []
    if not used:
        return {}
    ranked = rank_words(mass[used].numpy(), p_w, relevance, top_n)  # ties: the lower index, as for LDA
    return {int(l): [vocab[v] for v in r] for l, r in zip(used, ranked)}


def likelihood_topics(model: MPM, docs: list[TopicDocument], cfg: Config, vocab, top_n: int = 10,
                      batch_size: int = 32) -> dict[int, list[str]]:
    """Corpus-level topics from the likelihood: cluster l → the ``top_n`` words of row l of
    :func:`cluster_word_mass` (a topic-word distribution, as LDA's); clusters explaining no word are unused."""
    return top_words(cluster_word_mass(model, docs, cfg, batch_size), vocab, top_n)


@torch.no_grad()
def init_centres(model: MPM, train: list[TopicDocument], num_global: int, max_docs: int = 256) -> None:
    """ν ← random distinct topic embeddings μ_ik that the untrained model infers on training documents."""
    if not train:
        return
    pick = torch.randperm(len(train))[:max_docs].tolist()  # the global RNG, seeded by the trainer
    means = [model.potential.slot_means(model.infer(collate([train[i] for i in pick[lo: lo + 64]])).lam)
             for lo in range(0, len(pick), 64)]
    lam = torch.cat([m.reshape(-1, m.shape[-1]) for m in means])
    idx = torch.randperm(lam.shape[0])
    if lam.shape[0] < num_global:
        idx = idx[torch.randint(lam.shape[0], (num_global,))]
    centres = lam[idx[:num_global]]
    centres = centres + 0.01 * torch.randn_like(centres)
    gmm = global_prior(model.prior)
    if hasattr(gmm, "reset"):
        gmm.reset(centres)
    else:
        gmm.centres.copy_(centres)


def write_topics(path: Path, topics: dict, per_topic: dict, contributors: dict, lda: dict | None,
                 rule: str = "top words by tf-idf", lda_rule: str = "probability") -> None:
    """One line per corpus-level topic: cluster, test documents pooled, coherences, top words.

    ``per_topic``: cluster -> {"umass": u, "npmi": n, "document_umass": ..., "gensim_npmi": ...}; the
    unprefixed pair (the configured protocol) comes first, then each protocol's pair.
    """
    keys = []
    for t in topics:
        keys += [k for k in per_topic.get(t, {}) if k not in keys]
    from .coherence import MEASURES, PROTOCOLS

    order = list(MEASURES) + [f"{p}_{m}" for p in PROTOCOLS for m in MEASURES]
    keys = [k for k in order if k in keys] + sorted(k for k in keys if k not in order)
    lines = [f"# MPM corpus-level topics (global cluster: #test docs pooled, {', '.join(keys)}: {rule})"]
    for t, ws in topics.items():
        vals = "".join(f"{per_topic.get(t, {}).get(k, math.nan):.3f}\t" for k in keys)
        lines.append(f"{t}\t{len(contributors[t])}\t{vals}{' '.join(ws)}")
    if lda is not None:
        lines.append(f"# LDA topics (top words of each topic-word distribution by {lda_rule})")
        lines += [f"lda{t}\t{' '.join(ws)}" for t, ws in lda["topics"].items()]
    path.write_text("\n".join(lines) + "\n")


def fig6_table(doc, item: TopicDocument, local, cluster, topics: dict, contributors: dict, top: int = 5,
               columns: int = 5, excerpt_words: int = 40) -> str:
    """Fig. 6: (a) the start of a test article, (b) its document-level topics, (c) corpus topics.

    Document-level topic k lists its most frequent words in this article; corpus topics are
    the ``columns`` clusters pooled from the most test documents, top ``top`` words each.
    """
    from collections import Counter

    excerpt = " ".join(doc.text.split()[:excerpt_words])
    counts = {k: Counter() for k in range(len(cluster))}
    for w, k in zip(item.words, local):
        counts[int(k)][w] += 1
    used = [k for k in counts if counts[k]]
    cols = [[w for w, _ in counts[k].most_common(top)] for k in used]
    heads = [f"k={k} (cluster {int(cluster[k])})" for k in used]
    corpus = sorted(topics, key=lambda t: -len(contributors[t]))[:columns]

    def table(heads, cols):
        rows = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for r in range(max((len(c) for c in cols), default=0)):
            rows.append("| " + " | ".join(c[r] if r < len(c) else "" for c in cols) + " |")
        return "\n".join(rows)

    return (f"# Fig. 6-style table\n\n## (a) Test article {doc.docno}\n\n{excerpt} ...\n\n"
            f"## (b) Article topics (top {top} words of each local topic)\n\n{table(heads, cols)}\n\n"
            f"## (c) Corpus topics (the {len(corpus)} clusters pooled from most test documents)\n\n"
            f"{table([f'cluster {t}' for t in corpus], [topics[t][:top] for t in corpus])}\n")
