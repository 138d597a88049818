"""The topic MPM: normalised likelihood, padding invariance, vocabulary rules."""

import math

import pytest
import torch

from mpmkit import CoordinateAscent
from mpmkit.batch import Batch
from mpmkit_text.family import TopicDocument, collate
from mpmkit_text.model import TopicLikelihood, build_topic_mpm
from mpmkit_text.vocab import build_vocabulary

V, H, D = 11, 6, 8


def _model(seed=0, buckets=4, local="mpm"):
    from mpmkit.psa import PSAEM

    torch.manual_seed(seed)
    return build_topic_mpm(PSAEM() if local == "psa" else CoordinateAscent(), vocab_size=V, encoder_dim=H,
                           num_topics=3, num_global=4, slot_dim=D, hidden=16, position_buckets=buckets,
                           max_positions=16, inner_steps=3, beta=0.1, local=local).eval()


def _doc(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TopicDocument(index=seed, docno=str(seed), words=["w"] * n, ids=torch.randint(V, (n,), generator=g),
                         pos=torch.randperm(16, generator=g)[:n].sort().values,
                         emb=torch.randn(n, H, generator=g).half())


def test_likelihood_normalises_over_vocabulary():
    lik = TopicLikelihood(V, D, hidden=16, position_buckets=4, max_positions=16)
    lam = torch.randn(2, 3, D)
    logp = lik.log_probs(lam)  # [B, K, P, V]
    assert logp.shape == (2, 3, 4, V)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 3, 4))
    # log_prob of every word at one position reproduces the row: Σ_v p(x = v | z = k, λ) = 1
    pos = torch.full((2, V), 9)
    x = {"ids": torch.arange(V).expand(2, V), "pos": pos, "emb": torch.zeros(2, V, H)}
    ll = lik.log_prob(x, lam, torch.ones(2, V, dtype=torch.bool))  # [B, V, K]
    torch.testing.assert_close(torch.logsumexp(ll, 1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    assert int(lik.bucket(torch.tensor([0, 3, 4, 15, 600])).max()) == 3


@pytest.mark.parametrize("local", ["mpm", "psa"])
def test_padding_never_affects_results(local):
    model = _model(local=local)
    docs = [_doc(5, 1), _doc(9, 2)]
    alone = [model(collate([d])) for d in docs]
    batch = collate(docs)  # doc 0 padded from 5 to 9
    extra = collate(docs + [_doc(14, 3)])  # both padded to 14
    # garbage in the padded cells: out-of-range ids, far positions, huge embeddings
    x = {k: v.clone() for k, v in extra.x.items()}
    pad = ~extra.mask
    x["ids"][pad], x["pos"][pad] = 10_000, 10_000
    x["emb"][pad] = 1e3
    garbage = Batch(x=x, mask=extra.mask)
    for b in (batch, extra, garbage):
        loss, terms, inf = model(b)
        for i, d in enumerate(docs):
            _, t1, inf1 = alone[i]
            n = len(d)
            for name in ("log_prior", "log_lik", "log_pz", "entropy", "n_obs"):
                torch.testing.assert_close(getattr(terms, name)[i], getattr(t1, name)[0], rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(inf.q[i, :n], inf1.q[0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(inf.lam[i], inf1.lam[0], rtol=1e-5, atol=1e-5)
            assert float(inf.q[i, n:].detach().abs().sum()) == 0.0
        assert math.isfinite(float(loss.detach()))


def test_vocabulary_rules():
    docs = [["The", "cat", "sat", ",", "cat"], ["the", "Cat", "2024", "x", "dog"], ["dog", "cat", "mat"]]
    v = build_vocabulary(docs, min_count=2)
    assert v.words == ["cat", "dog"]  # stop words, punctuation, numbers, 1-letter words and rare words out
    assert v.lookup(["A", "CAT", "giraffe", "dog"]) == ([1, 3], [0, 1])  # unknown words are not observations
    assert "sat" in build_vocabulary(docs, min_count=1)
    assert "the" in build_vocabulary(docs, min_count=1, stopwords=False)
    with pytest.raises(ValueError, match="empty vocabulary"):
        build_vocabulary(docs, min_count=5)


def test_collate_rejects_empty():
    with pytest.raises(ValueError, match="no documents"):
        collate([])


def test_online_em_prior_tracks_topics_and_restarts_dead_centres():
    from mpmkit_text.model import OnlineGMMPrior

    torch.manual_seed(0)
    prior = OnlineGMMPrior(4, 2, decay=0.9)
    prior.reset(torch.tensor([[0.0, 0.0], [50.0, 50.0], [60.0, 60.0], [70.0, 70.0]]))  # three far-away centres
    targets = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])
    for _ in range(300):
        prior.em_update((targets + 0.1 * torch.randn(8, 4, 2)).reshape(8, 4, 2))
    near = torch.cdist(targets, prior.centres).min(1).values
    assert float(near.max()) < 0.5  # every data cluster has a centre: the dead ones were re-seeded
    assert not prior.centres.requires_grad


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.5])
def test_online_gmm_prior_has_the_gmm_density_and_minorizer(sigma):
    """The online-EM prior changes how ν is learned, not p_η(λ) or its Proposition 1 minorizer."""
    from mpmkit import GMMPrior
    from mpmkit_text.model import OnlineGMMPrior

    torch.manual_seed(0)
    online = OnlineGMMPrior(4, 3, scale=sigma).double()
    plain = GMMPrior(4, 3, scale=sigma).double()
    with torch.no_grad():
        plain.centres.copy_(online.centres)
    lam = 2 * torch.randn(2, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(online.log_prob(lam), plain.log_prob(lam))
    for a, b in zip(online.minorizer(lam), plain.minorizer(lam)):
        torch.testing.assert_close(a, b)


def test_psa_local_model_reads_means_and_mixing_weights():
    """local=psa: λ packs (μ, log σ², log π); the likelihood reads μ, p(z | λ) is π, ν is learned on μ."""
    from mpmkit.psa import PSAPrior, unpack
    from mpmkit_text.model import OnlineGMMPrior, topic_means

    model = _model(local="psa")
    batch = collate([_doc(6, 1), _doc(9, 2)])
    with torch.no_grad():
        inf = model.infer(batch)
    assert inf.lam.shape == (2, 3, 2 * D + 1)
    s = unpack(inf.lam)
    torch.testing.assert_close(model.log_pz(inf.lam), s.log_pi)
    torch.testing.assert_close(model.likelihood.log_probs(inf.lam), model.likelihood.log_probs(s.mu))
    assert isinstance(model.prior, PSAPrior) and isinstance(model.prior.base, OnlineGMMPrior)
    before = model.prior.base.counts.clone()
    model.train()
    model(batch)  # training forward: online EM on the means
    assert not torch.equal(model.prior.base.counts, before)
    with pytest.raises(ValueError, match="expected D = 8 or 2D \\+ 1 = 17"):
        topic_means(torch.zeros(1, 3, 5), D)
    with pytest.raises(ValueError, match="local must be"):
        _model(local="slots")


def test_an_empty_vocabulary_names_the_filter_to_relax():
    from mpmkit.errors import DataError

    only_stop = [["the", "on", "a"], ["the", "a", "of"]]
    with pytest.raises(DataError, match="relax stopwords=true: set stopwords=false") as err:
        build_vocabulary(only_stop, min_count=1)
    assert "min_count" not in str(err.value)  # min_count=1 is not the cause
    with pytest.raises(DataError, match="relax min_count=5: lower it"):
        build_vocabulary([["cat", "dog"], ["cat"]], min_count=5)
    with pytest.raises(DataError, match="relax max_df=0.4: raise it towards 1"):
        build_vocabulary([["cat"], ["cat"]], min_count=1, max_df=0.4)
    with pytest.raises(DataError, match="no one filter is to blame, relax several"):
        build_vocabulary([["the"], ["the"]], min_count=3)  # "the": a stop word, and too rare
    with pytest.raises(DataError, match="have no words"):
        build_vocabulary([[], []], min_count=1)
