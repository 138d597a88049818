"""The ``ap-topics`` family end to end on a synthetic corpus with a tiny random BERT (CPU, offline)."""

import csv
import json
import math
import pytest
import torch

from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer
from mpmkit_text.coherence import coherence
from mpmkit_text.family import load_corpus, reference_tokens
from mpmkit_text.topics import score_topics
from text_corpus import write_corpus
from text_tiny_bert import make_tiny_bert


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("aptopics")
    bert = make_tiny_bert(root / "bert")
    corpus = write_corpus(root / "ap" / "ap.txt", n_docs=40, empty=2)
    values = {"data_path": str(corpus), "encoder": str(bert), "cache_dir": str(root / "cache"), "min_count": 2,
              "num_global": 6, "slot_dim": 16, "hidden": 32, "lda_iter": 10, "max_length": 64, "epochs": 6,
              "batch_size": 8, "lr": 3e-3, "lr_milestones": [], "progress": False, "tensorboard": False,
              "log_every": 1}
    return root, values


@pytest.fixture(scope="module")
def fitted(setup):
    root, values = setup
    run = root / "run"
    Trainer(make_family("ap-topics"), config_for("ap-topics", values), run).fit()
    return run, evaluate_run(run)


def test_tiny_fit_lowers_the_loss(fitted):
    run, _ = fitted
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("loss")]
    first = sum(float(r["loss"]) for r in rows[:4]) / 4
    last = sum(float(r["loss"]) for r in rows[-4:]) / 4
    assert last < first - 0.05, (first, last)


def test_evaluate_writes_topics_and_metrics(fitted, setup):
    run, m = fitted
    assert json.loads((run / "metrics.json").read_text())["mpm_umass_mean"] == m["mpm_umass_mean"]
    for key in ("mpm_umass_mean", "mpm_umass_max", "mpm_npmi_mean", "mpm_npmi_max", "mpm_log_perplexity",
                "lda_umass_mean", "lda_npmi_mean", "lda_log_perplexity"):
        assert isinstance(m[key], float) and math.isfinite(m[key]), key
    # a sanity bound only (this tiny corpus does not generalise); the value itself is checked below
    assert m["mpm_log_perplexity"] <= math.log(m["vocab_size"]) + 1.0
    assert m["dropped_empty"] == 2  # the stop-word-only documents have no observations
    lines = (run / "topics.txt").read_text().splitlines()
    assert any(not ln.startswith("#") and len(ln.split("\t")[-1].split()) >= 2 for ln in lines)
    fig = (run / "fig6.md").read_text()
    assert "Article topics" in fig and "Corpus topics" in fig


def test_coherence_identical_for_lda_and_mpm(fitted, setup):
    """The MPM topics and the LDA topics are scored by the same function on the same test documents."""
    run, m = fitted
    _, values = setup
    cfg = config_for("ap-topics", values)
    corpus = load_corpus(cfg)
    reference = [reference_tokens(corpus.documents[d.index].text) for d in corpus.test]
    lines = (run / "topics.txt").read_text().splitlines()
    mpm = [ln.split("\t")[-1].split() for ln in lines if not ln.startswith("#") and not ln.startswith("lda")]
    lda = [ln.split("\t")[-1].split() for ln in lines if ln.startswith("lda")]
    assert m["coherence_protocol"] == "document"
    for topics, prefix in ((mpm, "mpm"), (lda, "lda")):
        s = score_topics(topics, reference)
        g = score_topics(topics, reference, "gensim")
        for measure in ("umass", "npmi"):
            direct = coherence(topics, reference, measure)
            direct = direct[~(direct != direct)]
            assert s[f"{measure}_mean"] == pytest.approx(m[f"{prefix}_{measure}_mean"], abs=1e-12)
            assert s[f"{measure}_mean"] == pytest.approx(float(direct.mean()), abs=1e-12)
            assert s[f"{measure}_max"] == pytest.approx(m[f"{prefix}_{measure}_max"], abs=1e-12)
            # every protocol is written with a prefix; the unprefixed keys are the configured one
            assert m[f"{prefix}_document_{measure}_mean"] == m[f"{prefix}_{measure}_mean"]
            for stat in ("mean", "max"):
                assert g[f"{measure}_{stat}"] == pytest.approx(m[f"{prefix}_gensim_{measure}_{stat}"], abs=1e-12)


def test_cli_fit_then_evaluate(setup, tmp_path):
    from click.testing import CliRunner

    from mpmkit.cli import main

    _, values = setup
    sets = []
    for k, v in {**values, "epochs": 1, "lda": False}.items():
        sets += ["--set", f"{k}={json.dumps(v) if isinstance(v, (list, bool)) else v}"]
    out = tmp_path / "RUN"
    r = CliRunner().invoke(main, ["fit", "ap-topics", "--out", str(out), "--no-evaluate", *sets])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(m["mpm_umass_mean"]) and (out / "topics.txt").exists() and "lda_umass_mean" not in m
    # the other protocol as the unprefixed one: a separate metrics file, same per-protocol numbers
    topics = (out / "topics.txt").read_text()
    r = CliRunner().invoke(main, ["evaluate", str(out), "--set", "coherence_protocol=gensim"])
    assert r.exit_code == 0, r.output
    assert (out / "topics.txt").read_text() == topics  # the variant's outputs go to their own folder
    assert (out / "eval-coherence_protocol=gensim" / "topics.txt").exists()
    (g,) = out.glob("metrics-*gensim*.json")
    g = json.loads(g.read_text())
    assert g["coherence_protocol"] == "gensim" and g["mpm_umass_mean"] == g["mpm_gensim_umass_mean"]
    assert g["mpm_gensim_npmi_mean"] == pytest.approx(m["mpm_gensim_npmi_mean"], abs=1e-12)
    assert g["mpm_document_umass_mean"] == pytest.approx(m["mpm_umass_mean"], abs=1e-12)


def test_doctopic_row_and_training_reference(fitted, setup):
    """The no-model row is each test document's own tf-idf top words; coherence_reference=train moves
    every row's co-occurrence counts to the training documents (a separate metrics file)."""
    from mpmkit_text.coherence import tfidf_topics

    run, m = fitted
    _, values = setup
    corpus = load_corpus(config_for("ap-topics", values))
    test_ref = [reference_tokens(corpus.documents[d.index].text) for d in corpus.test]
    train_ref = [reference_tokens(corpus.documents[d.index].text) for d in corpus.train]
    own = tfidf_topics({i: d.words for i, d in enumerate(corpus.test)}, 10)
    assert m["doctopic_n_topics"] == len(corpus.test) == len(own)
    assert m["doctopic_umass_mean"] == pytest.approx(score_topics(own, test_ref)["umass_mean"], abs=1e-12)
    assert m["coherence_reference"] == "test" and m["num_reference_docs"] == len(corpus.test)

    t = evaluate_run(run, overrides={"coherence_reference": "train", "lda": False})
    assert t["num_reference_docs"] == len(corpus.train)
    assert (run / "metrics-coherence_reference=train,lda=false.json").exists()
    mpm = [ln.split("\t")[-1].split() for ln in (run / "topics.txt").read_text().splitlines()
           if not ln.startswith("#") and not ln.startswith("lda")]  # same checkpoint, same topics
    for measure in ("umass", "npmi"):
        assert t[f"mpm_{measure}_mean"] == pytest.approx(score_topics(mpm, train_ref)[f"{measure}_mean"], abs=1e-12)
        own_train = score_topics(own, train_ref)[f"{measure}_mean"]
        assert t[f"doctopic_{measure}_mean"] == pytest.approx(own_train, abs=1e-12)
    assert t["mpm_umass_mean"] != m["mpm_umass_mean"]  # the counts did move


def test_topic_docs_train_pools_only_training_documents(fitted, setup):
    """topic_docs=train: topics from the training documents' words, scored on the test documents."""
    from mpmkit.runs import open_run
    from mpmkit_text.coherence import tfidf_topics
    from mpmkit_text.topics import pool_words

    run, _ = fitted
    overrides = {"topic_docs": "train", "lda": False}
    r = open_run(run, overrides=overrides)
    train = list(r.splits.train)
    inf = r.family.infer(r.model, train, r.cfg)
    expected = tfidf_topics(pool_words([d.words for d in train], inf["local"], inf["cluster"])[0], 10)
    m = evaluate_run(run, overrides=overrides)
    lines = (run / "eval-lda=false,topic_docs=train" / "topics.txt").read_text().splitlines()
    got = {int(ln.split("\t")[0]): ln.split("\t")[-1].split() for ln in lines if not ln.startswith("#")}
    assert got == expected and m["mpm_n_topics"] == len(expected)
    corpus = load_corpus(r.cfg)
    test_ref = [reference_tokens(corpus.documents[d.index].text) for d in r.splits.test]
    assert m["mpm_umass_mean"] == pytest.approx(score_topics(expected, test_ref)["umass_mean"], abs=1e-12)


def test_topic_min_docs_leaves_out_topics_pooled_from_few_articles(fitted, setup):
    """topic_min_docs=N scores the same tf-idf topics, minus those pooled from fewer than N test documents."""
    from mpmkit.errors import ConfigError

    run, m = fitted
    rows = [ln.split("\t") for ln in (run / "topics.txt").read_text().splitlines()
            if not ln.startswith("#") and not ln.startswith("lda")]
    docs = {int(r[0]): int(r[1]) for r in rows}
    words = {int(r[0]): r[-1].split() for r in rows}
    assert m["mpm_single_doc_topics"] == sum(n == 1 for n in docs.values())
    n = sorted(docs.values())[len(docs) // 2]  # a threshold that keeps some topics and drops others
    f = evaluate_run(run, overrides={"topic_min_docs": n})
    kept = {t for t, k in docs.items() if k >= n}
    assert 0 < len(kept) < len(docs), docs  # the threshold bites
    assert f["mpm_n_topics"] == len(kept) and f["lda_n_topics"] == m["lda_n_topics"]  # LDA sized as before
    assert f["lda_tfidf_n_topics"] <= m["lda_tfidf_n_topics"]
    lines = (run / f"eval-topic_min_docs={n}" / "topics.txt").read_text().splitlines()
    got = {int(ln.split("\t")[0]): ln.split("\t")[-1].split() for ln in lines
           if not ln.startswith("#") and not ln.startswith("lda")}
    assert got == {t: words[t] for t in kept}
    corpus = load_corpus(config_for("ap-topics", setup[1]))
    test_ref = [reference_tokens(corpus.documents[d.index].text) for d in corpus.test]
    assert f["mpm_umass_mean"] == pytest.approx(score_topics(got, test_ref)["umass_mean"], abs=1e-12)
    with pytest.raises(ConfigError, match="topic_min_docs"):
        config_for("ap-topics", {**setup[1], "topic_min_docs": 2, "topic_words": "likelihood"})
    with pytest.raises(ConfigError, match="topic_min_docs"):
        config_for("ap-topics", {**setup[1], "topic_min_docs": 0})


def test_likelihood_topics_match_a_direct_sum_and_ignore_padding(fitted, setup):
    """topic_words=likelihood: cluster l's words are the top words of Σ n_ik p(x | μ_ik) over the local
    topics assigned to l; padded batches give the sums of one document at a time."""
    import torch
    from mpmkit.runs import open_run
    from mpmkit_text.family import cluster_word_mass, collate, likelihood_topics

    run, _ = fitted
    r = open_run(run)
    model, cfg = r.model.eval(), r.cfg
    docs = list(r.splits.train)
    vocab = load_corpus(cfg).vocab.words
    acc = torch.zeros(cfg.family.num_global, len(vocab), dtype=torch.float64)
    with torch.no_grad():
        for d in docs:  # one document at a time, by hand
            b = collate([d])
            inf = model.infer(b, steps=cfg.inner_steps)
            p = model.likelihood.log_probs(inf.lam).exp().mean(2)[0]  # [K, V]
            n = inf.q[0].sum(0)  # [K]
            for k, l in enumerate(model.prior.responsibilities(inf.lam)[0].argmax(-1).tolist()):
                acc[l] += n[k].double() * p[k].double()
    for batch_size in (1, 7, 32):
        assert torch.allclose(cluster_word_mass(model, docs, cfg, batch_size), acc, rtol=1e-5, atol=1e-6)
    assert float(acc.sum()) == pytest.approx(sum(len(d) for d in docs), rel=1e-4)  # every word explained once
    mass = cluster_word_mass(model, docs, cfg)
    topics = likelihood_topics(model, docs, cfg, vocab, top_n=5)
    assert set(topics) == {l for l in range(len(acc)) if float(acc[l].sum()) > 0.5}
    for l, words in topics.items():
        assert words == [vocab[v] for v in mass[l].topk(5).indices.tolist()]
    m = evaluate_run(run, overrides={"topic_words": "likelihood", "lda": False})
    assert m["mpm_n_topics"] == len(topics)


def test_relevance_ranks_mpm_and_lda_topic_words_alike(fitted, setup):
    """topic_rank=relevance: MPM's likelihood topics and LDA's top words are both ranked by
    λ log p(w|t) + (1 − λ) log(p(w|t)/p(w)), p(w) from the training documents."""
    import numpy as np
    from mpmkit.runs import open_run
    from mpmkit_text.family import cluster_word_mass
    from mpmkit_text.topics import lda_topics, rank_words, unigram

    # a hand case: probability ranks w0 > w1 > w2, lift and relevance at λ = 0.6 rank w1 first
    p_wt, p_w = np.array([[0.5, 0.3, 0.2]]), np.array([0.6, 0.1, 0.3])
    assert rank_words(p_wt, top_n=3) == rank_words(p_wt, p_w, 1.0, 3) == [[0, 1, 2]]
    assert rank_words(p_wt, p_w, 0.0, 3) == rank_words(p_wt, p_w, 0.6, 3) == [[1, 0, 2]]
    with pytest.raises(ValueError, match="relevance"):
        rank_words(p_wt, None, 0.6)
    with pytest.raises(ValueError, match="p_w > 0"):
        rank_words(p_wt, np.array([0.5, 0.5, 0.0]), 0.6)
    assert rank_words(np.array([[0.1, 0.2, 0.7, 0.0]]), np.array([0.5, 0.5, 0.0, 0.0]), 1.0, 4) == [[2, 1, 0, 3]]
    assert rank_words(np.array([[1.0, 1.0, 0.0]]), top_n=5) == [[0, 1, 2]]  # ties: the lower index; top_n > V

    run, _ = fitted
    overrides = {"topic_words": "likelihood", "topic_docs": "train", "topic_rank": "relevance", "relevance_lambda": 0.3}
    r = open_run(run, overrides=overrides)
    vocab = load_corpus(r.cfg).vocab.words
    train_ids = [d.ids.tolist() for d in r.splits.train]
    mass = cluster_word_mass(r.model.eval(), list(r.splits.train), r.cfg)
    used = [l for l in range(len(mass)) if float(mass[l].sum()) > 0.5]
    expected = dict(zip(used, rank_words(mass[used].numpy(), unigram(train_ids, len(vocab)), 0.3, 10)))
    m = evaluate_run(run, overrides=overrides)
    lines = (run / "eval-relevance_lambda=0.3,topic_docs=train,topic_rank=relevance,topic_words=likelihood"
             / "topics.txt").read_text().splitlines()
    mpm = {int(ln.split("\t")[0]): ln.split("\t")[-1].split() for ln in lines if not ln.startswith("#") and not ln.startswith("lda")}
    assert mpm == {l: [vocab[v] for v in ws] for l, ws in expected.items()} and m["mpm_n_topics"] == len(used)
    lda = lda_topics(train_ids, [d.ids.tolist() for d in r.splits.test], vocab, m["lda_n_topics"], r.cfg.train.seed,
                     r.cfg.family.lda_iter, 10, relevance=0.3)["topics"]
    written = {ln.split("\t")[0]: ln.split("\t")[-1].split() for ln in lines if ln.startswith("lda")}
    assert written == {f"lda{t}": ws for t, ws in lda.items()}
    assert any("by relevance (λ = 0.3)" in ln for ln in lines if ln.startswith("# LDA"))
    assert m["topic_rank"] == "relevance" and m["relevance_lambda"] == 0.3
    assert m["mpm_single_doc_topics"] is None  # not known for likelihood topics of the training articles
    from mpmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="relevance_lambda"):
        config_for("ap-topics", {**setup[1], "relevance_lambda": 1.5})


def test_log_perplexity_is_the_per_word_mixture_likelihood(fitted):
    """mpm_log_perplexity = -Σ_words log Σ_k (1/K) p_θ(x | z = k, λ̂) / #words, λ̂ inferred from each test
    document alone (no padding), summed here one document at a time."""
    from mpmkit.runs import open_run
    from mpmkit_text.family import collate

    run, m = fitted
    r = open_run(run)
    total, n = 0.0, 0
    with torch.no_grad():
        for doc in r.splits.test:
            batch = collate([doc])
            inf = r.model.infer(batch)
            ll = r.model.likelihood.log_prob(batch.x, inf.lam, batch.mask)[0]  # [N, K]
            total += float(torch.logsumexp(ll - math.log(ll.shape[-1]), -1).sum())
            n += len(doc)
    assert n == m["num_test_words"]
    assert m["mpm_log_perplexity"] == pytest.approx(-total / n, rel=1e-5)


def test_psa_local_model_fits_and_evaluates(setup):
    """local=psa (mixing weights and variances per document, psa-em) trains, evaluates and lowers the loss."""
    root, values = setup
    run = root / "psa"
    Trainer(make_family("ap-topics"), config_for("ap-topics", {**values, "local": "psa"}), run).fit()
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("loss")]
    first = sum(float(r["loss"]) for r in rows[:4]) / 4
    last = sum(float(r["loss"]) for r in rows[-4:]) / 4
    assert last < first - 0.05, (first, last)
    m = evaluate_run(run)
    for key in ("mpm_umass_mean", "mpm_npmi_mean", "mpm_log_perplexity", "lda_umass_mean"):
        assert math.isfinite(m[key]), key
    assert m["mpm_n_topics"] >= 1 and (run / "topics.txt").exists()
    held_out = evaluate_run(run, overrides={"topic_words": "likelihood", "topic_docs": "train", "lda": False})
    assert held_out["mpm_n_topics"] >= 1
    # NUTS needs a proper prior on the variances: refused without one, runs with psa_var_prior
    nuts = {"solver": "pyro-nuts", "lda": False, "solver_options": {"num_samples": 4, "warmup_steps": 4,
                                                                    "num_chains": 1, "map_steps": 5}}
    from mpmkit.errors import IncompatibleSolverError

    with pytest.raises(IncompatibleSolverError, match="psa_var_prior"):
        evaluate_run(run, overrides=nuts)
    m = evaluate_run(run, overrides={**nuts, "psa_var_prior": [1.0, 0.01]})
    assert math.isfinite(m["mpm_log_perplexity"]) and math.isfinite(m["mpm_umass_mean"])


def test_psa_refuses_solvers_that_learn_their_own_update(setup):
    from mpmkit.errors import ConfigError

    _, values = setup
    for solver in ("slot-attention", "learned-posterior"):
        with pytest.raises(ConfigError, match=f"the {solver} solver learns its own update"):
            make_family("ap-topics").build_model(config_for("ap-topics", {**values, "local": "psa", "solver": solver}))


def test_the_trainer_refuses_a_bad_solver_before_reading_the_corpus(setup, tmp_path, monkeypatch):
    from mpmkit.errors import ConfigError

    import mpmkit_text.family as text_family

    _, values = setup
    monkeypatch.setattr(text_family, "load_corpus", lambda cfg: pytest.fail("corpus read before the check"))
    family = make_family("ap-topics")
    for bad, named in (({"local": "psa", "solver": "slot-attention"}, "learns its own update"),
                       ({"solver_options": {"nope": 1}}, "does not take option")):
        with pytest.raises(ConfigError, match=named):
            Trainer(family, config_for("ap-topics", {**values, **bad}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_data_and_options_fail_before_training_with_the_fix(setup, tmp_path):
    from mpmkit.errors import ConfigError, DataError

    root, values = setup
    # an empty test split used to train fully, then crash in LDA / fig6
    from mpmkit_text.ap import split_documents
    test_idx = split_documents(20, 0)[2]
    from mpmkit_text.ap import ap_block
    body = "".join(ap_block(f"E-{i}", "the on a ." if i in set(test_idx.tolist()) else "cat dog mat") for i in range(20))
    (tmp_path / "ap.txt").write_text(body)
    with pytest.raises(DataError, match=r"the test split is empty: its \d+ document\(s\) hold no vocabulary word"):
        make_family("ap-topics").build_data(config_for("ap-topics", {**values, "data_path": str(tmp_path / "ap.txt"),
                                                                      "min_count": 1}))
    with pytest.raises(DataError, match=r"2 document\(s\) to split .* need >= 3 \(max_docs=2\)"):
        make_family("ap-topics").build_data(config_for("ap-topics", {**values, "max_docs": 2}))
    (tmp_path / "none.txt").write_text("no tags at all\n")
    with pytest.raises(DataError, match="no <DOC> block in the file"):
        make_family("ap-topics").build_data(config_for("ap-topics", {**values, "data_path": str(tmp_path / "none.txt")}))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty.txt: no <DOC> blocks"):
        make_family("ap-topics").build_data(config_for("ap-topics", {**values, "data_path": str(tmp_path / "empty.txt")}))
    # options that only failed after training
    for key, value, low in (("lda_topics", -3, 0), ("eval_inner_steps", -2, 0), ("top_n", 1, 2)):
        with pytest.raises(ConfigError, match=f"'{key}' must be >= {low}"):
            config_for("ap-topics", {**values, key: value})
    with pytest.raises(ConfigError, match="max_length 1024 exceeds the encoder's 512 positions; set max_length <= 512"):
        make_family("ap-topics").build_data(config_for("ap-topics", {**values, "max_length": 1024}))
    with pytest.raises(ConfigError, match=r"encoder '/nonexistent/enc': no encoder folder there.*--set encoder=PATH"):
        make_family("ap-topics").build_data(config_for("ap-topics", {**values, "encoder": "/nonexistent/enc"}))
