"""The tetrominoes family: shapes, the likelihoods' math, padding invariance, bad input, a tiny fit."""

import math

import numpy as np
import pytest
import torch

from mpmkit.components import make_solver
from mpmkit_image.data import Scene, check_images, collate, pixel_colours, scenes_from_arrays
from mpmkit_image.metrics import fg_ari
from mpmkit_image.model import AdditiveImageLikelihood, MixtureImageLikelihood, build_mpm, gather_pixels
from mpmkit_image.tetrominoes import generate


@pytest.fixture(scope="module")
def scenes():
    return scenes_from_arrays(generate(8, seed=3))


def tiny(decoder="additive", arch="fast", solver="coordinate-ascent", **kw):
    torch.manual_seed(0)
    return build_mpm(make_solver(solver), decoder=decoder, arch=arch, num_global=10, **kw)


class FixedDecoder(torch.nn.Module):
    """Returns given (rgb [B, N, K, 3], alpha [B, N, K]), whatever the slots."""

    def __init__(self, rgb, alpha):
        super().__init__()
        self.rgb, self.alpha = rgb, alpha

    def forward(self, lam, index, hw):
        return self.rgb, self.alpha


@pytest.mark.parametrize("decoder", ["additive", "mixture"])
@pytest.mark.parametrize("arch", ["fast", "paper"])
def test_shapes(scenes, decoder, arch):
    model = tiny(decoder, arch).eval()
    batch = collate([Scene(s.image, s.labels, torch.arange(0, 1225, 7)) for s in (scenes[0], scenes[1])])
    inf = model.infer(batch)
    d = model.lambda0.shape[1]
    assert inf.g.shape == (2, 175, d) and inf.lam.shape == (2, 4, d) and inf.q.shape == (2, 175, 4)
    ll = model.likelihood.log_prob(batch.x, inf.lam, batch.mask)
    assert ll.shape == ((2, 175) if decoder == "additive" else (2, 175, 4))
    recon, masks = model.likelihood.masks(batch.x, inf.lam, inf.q)
    assert recon.shape == (2, 175, 3) and masks.shape == (2, 175, 4)
    assert model.prior.responsibilities(inf.lam).shape == (2, 4, 10)


def test_alpha_masks_sum_to_one_over_slots(scenes):
    model = tiny("additive")
    batch = collate([scenes[0], scenes[1]])
    lam = torch.randn(2, 4, model.lambda0.shape[1]) * 3
    _, w = model.likelihood.masks(batch.x, lam)
    assert torch.allclose(w.sum(-1), torch.ones(2, 1225), atol=1e-5) and (w >= 0).all()


def test_mixture_log_likelihood_by_hand():
    image = torch.zeros(1, 3, 2, 2)
    image[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.5])
    x = {"image": image, "index": torch.tensor([[1, 3]])}
    rgb = torch.tensor([[[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0.2, 0.2, 0.2], [0.0, 1.0, 0.0]]]])  # [1, 2, 2, 3]
    sigma = 0.5
    lik = MixtureImageLikelihood(FixedDecoder(rgb, torch.zeros(1, 2, 2)), sigma=sigma)
    mask = torch.tensor([[True, True]])
    ll = lik.log_prob(x, torch.zeros(1, 2, 4), mask)
    pix = [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]]  # pixel 1 = (0, 1), pixel 3 = (1, 1)
    for j in range(2):
        for k in range(2):
            sq = sum((a - b) ** 2 for a, b in zip(pix[j], rgb[0, j, k].tolist()))
            want = -0.5 * sq / sigma**2 - 3 * math.log(sigma) - 1.5 * math.log(2 * math.pi)
            assert ll[0, j, k].item() == pytest.approx(want, abs=1e-5)
    # additive: one Gaussian around Σ_k w_k rgb_k with w = softmax(alpha)
    alpha = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])
    add = AdditiveImageLikelihood(FixedDecoder(rgb, alpha), sigma=sigma).log_prob(x, torch.zeros(1, 2, 4), mask)
    mean0 = 0.25 * rgb[0, 0, 0] + 0.75 * rgb[0, 0, 1]
    sq = float(((torch.tensor(pix[0]) - mean0) ** 2).sum())
    assert add[0, 0].item() == pytest.approx(-0.5 * sq / sigma**2 - 3 * math.log(sigma) - 1.5 * math.log(2 * math.pi),
                                             abs=1e-5)


@pytest.mark.parametrize("decoder", ["additive", "mixture"])
def test_padding_does_not_change_a_dataset(scenes, decoder):
    model = tiny(decoder).eval()
    a = Scene(scenes[0].image, scenes[0].labels, torch.arange(0, 1225, 11))
    b = Scene(scenes[1].image, scenes[1].labels, torch.arange(0, 1225, 3))  # more pixels: a gets padded
    with torch.no_grad():
        alone = model.elbo(collate([a]), model.infer(collate([a])))
        batch = collate([a, b])
        assert not batch.mask[0].all()
        padded = model.elbo(batch, model.infer(batch))
    assert alone.total[0].item() == pytest.approx(padded.total[0].item(), rel=1e-5)
    assert padded.n_obs[0].item() == len(a)


def test_pixel_colours_and_collate(scenes):
    s = scenes[2]
    batch = collate([s])
    assert batch.mask.all() and batch.x["index"].shape == (1, 1225)
    col = pixel_colours(batch.x)[0]
    assert torch.allclose(col.T.reshape(3, 35, 35), s.image)


def test_bad_images_are_named():
    ok = generate(2, seed=0)["image"]
    with pytest.raises(ValueError, match="uint8"):
        check_images(ok.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="channels-last"):
        check_images(ok.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="35x35"):
        check_images(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="3 colour channels"):
        check_images(np.zeros((2, 35, 35, 4), np.uint8))
    with pytest.raises(ValueError, match="batch"):
        check_images(ok[0])
    model = tiny()
    with pytest.raises(ValueError, match="float"):
        model.infer(collate([Scene(torch.zeros(3, 35, 35, dtype=torch.uint8), torch.zeros(1225).long())]))


def test_slot_attention_baseline_runs(scenes):
    """The baseline trains: q is Slot Attention's attention at Λ^T (softmax over slots of the scaled
    dot products of the projected, normalised g and λ), the solver's layers get gradients, and a few Adam
    steps on a fixed batch lower the loss."""
    model = tiny(solver="slot-attention")
    batch = collate([scenes[0], scenes[1]])
    loss, terms, inf = model(batch)
    loss.backward()
    assert torch.isfinite(loss) and inf.q.shape == (2, 1225, 4)

    sa = model.solver
    with torch.no_grad():
        keys = sa.to_k(sa.norm_inputs(inf.g))
        queries = sa.to_q(sa.norm_slots(inf.lam))
        attn = torch.softmax(keys @ queries.transpose(1, 2) / math.sqrt(inf.lam.shape[-1]), dim=-1)
    torch.testing.assert_close(inf.q.detach(), attn * batch.mask.unsqueeze(-1))
    for name in ("to_q.weight", "to_k.weight", "to_v.weight", "gru.weight_ih", "mlp.2.weight"):
        grad = dict(sa.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name

    def eval_loss():
        model.eval()  # no noise on λ⁰: the same loss for the same parameters
        with torch.no_grad():
            value = float(model(batch)[0])
        model.train()
        return value

    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = [eval_loss()]
    for i in range(4):
        torch.manual_seed(i)
        opt.zero_grad()
        model(batch)[0].backward()
        opt.step()
        losses.append(eval_loss())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 0.05, losses


def test_family_options_and_config():
    from mpmkit.errors import ConfigError
    from mpmkit.runs import config_for

    cfg = config_for("tetrominoes", {"decoder": "mixture", "arch": "paper", "num_images": 20})
    assert cfg.family.decoder == "mixture" and cfg.beta == 0.0
    assert cfg.family.slot_noise == 0.3  # the default: training-time noise on λ⁰
    with pytest.raises(ConfigError, match="slot_noise"):
        config_for("tetrominoes", {"slot_noise": -0.1})
    from mpmkit.runs import make_family
    from mpmkit_image.model import NoisyInitMPM

    family = make_family("tetrominoes")
    assert isinstance(family.build_model(config_for("tetrominoes", {"num_global": 5})), NoisyInitMPM)
    sa = family.build_model(config_for("tetrominoes", {"num_global": 5, "solver": "slot-attention"}))
    assert not isinstance(sa, NoisyInitMPM)  # the solver brings its own noise on λ⁰
    with pytest.raises(ConfigError, match="decoder"):
        config_for("tetrominoes", {"decoder": "sum"})
    with pytest.raises(ConfigError, match="eval_refine_steps"):
        config_for("tetrominoes", {"eval_refine_steps": -2})
    from mpmkit_image.family import REFINE_STEPS, refine_steps

    assert refine_steps(config_for("tetrominoes", {})) == REFINE_STEPS  # the additive MPM refines by default
    assert refine_steps(config_for("tetrominoes", {"decoder": "mixture"})) == 0
    assert refine_steps(config_for("tetrominoes", {"solver": "slot-attention"})) == 0
    assert refine_steps(config_for("tetrominoes", {"eval_refine_steps": 7, "decoder": "mixture"})) == 7
    with pytest.raises(ConfigError, match="eval_refine_lr"):
        config_for("tetrominoes", {"eval_refine_lr": 0})
    with pytest.raises(ConfigError, match="eval_restarts"):
        config_for("tetrominoes", {"eval_restarts": 0})
    with pytest.raises(ConfigError, match="tfrecord"):
        config_for("tetrominoes", {"tfrecord": "/nonexistent/tetrominoes_train.tfrecords"})
    bad_values = [({"num_objects": [5, 2]}, "min <= max"), ({"eval_inner_steps": -1}, "'eval_inner_steps' must be >= 0"),
                  ({"eval_limit": -3}, "'eval_limit'"), ({"data_seed": -1}, "'data_seed'"), ({"slot_dim": -8}, "'slot_dim'"),
                  ({"channels": -1}, "'channels'"), ({"hidden": 0}, "'hidden' must be >= 1"), ({"seed": -1}, "'seed'"),
                  ({"arch": "paper", "dilations": [1, 2]}, "arch=paper has the paper's own CNNs"),
                  ({"arch": "paper", "rel_freqs": 4}, "Leave them at")]
    for values, message in bad_values:
        with pytest.raises(ConfigError, match=message):
            config_for("tetrominoes", values)


def test_tfrecord_that_is_not_one_is_a_clear_error(tmp_path):
    from mpmkit.errors import ConfigError, DataError
    from mpmkit.runs import config_for
    from mpmkit_image.family import load_arrays

    with pytest.raises(ConfigError, match="is not a file"):
        config_for("tetrominoes", {"tfrecord": str(tmp_path)})
    for name, content, message in (("plain.tfrecords", b"not a gzip stream at all" * 8, "cannot read '.*plain"
                                    ".tfrecords' as the Tetrominoes TFRecord \\(GZIP-compressed"),
                                   ("empty.tfrecords", b"", "empty.tfrecords' holds 0 examples; need at least 10")):
        path = tmp_path / name
        path.write_bytes(content)
        cfg = config_for("tetrominoes", {"tfrecord": str(path), "num_images": 10})
        with pytest.raises(DataError, match=message):
            load_arrays(cfg.family)


def test_evaluation_refinement_raises_every_images_true_elbo(scenes):
    """``infer_scenes(refine_steps=...)`` decodes the refined Λ: per image the additive model's true
    ELBO (log p(x | Λ) + log p(Λ), all pixels) is at least the inner loop's, and higher on average."""
    from mpmkit_image.family import infer_scenes

    model = tiny().eval()
    plain = infer_scenes(model, scenes[:4], steps=3)
    refined = infer_scenes(model, scenes[:4], steps=3, refine_steps=10, refine_lr=0.05)
    batch = collate(scenes[:4])

    def elbo(lam):
        lam = torch.from_numpy(lam)
        return (model.likelihood.log_prob(batch.x, lam, batch.mask).sum(1) + model.prior.log_prob(lam)).detach()

    a, b = elbo(plain["lam"]), elbo(refined["lam"])
    assert (b >= a - 1e-3).all() and (b - a).mean() > 0
    assert refined["masks"].shape == plain["masks"].shape


def test_evaluation_restarts_keep_each_images_best_true_elbo(scenes):
    """``infer_scenes(restarts=3)`` starts two more inner loops from λ⁰ + the learned noise; each image
    keeps the run with the highest true ELBO, so none ends below the single run from λ⁰, and the
    choice is reproducible (the noise comes from ``seed``)."""
    from mpmkit_image.family import infer_scenes

    model = tiny(slot_noise=0.3).eval()  # NoisyInitMPM: restarts perturb the slot means by the learned σ
    batch = collate(scenes[:4])
    single = infer_scenes(model, scenes[:4], steps=3, refine_steps=5, refine_lr=0.05)
    best = infer_scenes(model, scenes[:4], steps=3, refine_steps=5, refine_lr=0.05, restarts=3)
    again = infer_scenes(model, scenes[:4], steps=3, refine_steps=5, refine_lr=0.05, restarts=3)

    def elbo(res):
        lam = torch.from_numpy(res["lam_full"])  # additive likelihood: q is not in log p(x | Λ)
        return (model.likelihood.log_prob(batch.x, lam, batch.mask).sum(1) + model.prior.log_prob(lam)).detach()

    assert (elbo(best) >= elbo(single) - 1e-3).all()
    assert np.array_equal(best["lam_full"], again["lam_full"])


def test_tiny_fit_lowers_the_loss_and_beats_init(scenes):
    """A tiny additive model, 80 steps on 8 images (200 random pixels each): the negative ELBO drops and
    the alpha masks segment the objects better than at initialisation (a few seconds of CPU)."""
    torch.manual_seed(0)
    model = build_mpm(make_solver("coordinate-ascent"), num_global=10, sigma=0.1, slot_dim=16, channels=16, hidden=32)
    full = collate([scenes[i] for i in range(8)])

    def score():
        with torch.no_grad():
            inf = model.eval().infer(full)
            _, w = model.likelihood.masks(full.x, inf.lam)
        model.train()
        return fg_ari(full.extras["labels"], w.argmax(-1))

    before = score()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(80):
        batch = collate([Scene(s.image, s.labels, torch.randperm(1225)[:200]) for s in (scenes[i] for i in range(8))])
        loss, _, _ = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = score()
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses
    assert after > before + 5, (before, after)


def test_family_reads_the_official_tfrecord_layout(tmp_path):
    from mpmkit.runs import config_for, make_family
    from mpmkit_image.tfrecord import tetromino_examples, write_examples

    data = generate(20, seed=5)
    path = tmp_path / "tetrominoes_train.tfrecords"
    write_examples(path, tetromino_examples(data))
    cfg = config_for("tetrominoes", {"tfrecord": str(path), "num_images": 20, "seed": 1})
    splits = make_family("tetrominoes").build_data(cfg)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 2, 2)
    rows = list(splits.train.rows) + list(splits.val.rows) + list(splits.test.rows)
    assert sorted(rows) == list(range(20))
    s = splits.val[0]
    assert np.array_equal((s.image * 255).round().byte().permute(1, 2, 0).numpy(), data["image"][splits.val.rows[0]])


def test_slot_noise_only_in_training_seeded_and_learned(scenes):
    """``slot_noise``: λ⁰ + σε in training (same ε under the same seed), plain λ⁰ in eval, σ gets gradients."""
    from mpmkit_image.model import NoisyInitMPM

    model = tiny(slot_noise=0.5)
    assert isinstance(model, NoisyInitMPM) and not isinstance(tiny(), NoisyInitMPM)
    batch = collate([scenes[0], scenes[1]])
    lam0 = model.lambda0.unsqueeze(0).expand(2, -1, -1)
    assert torch.equal(model.eval().problem(batch).lam0, lam0)
    with torch.no_grad():
        eval_lam = model.infer(batch).lam
        assert torch.equal(model.infer(batch).lam, eval_lam)  # deterministic at test time
    model.train()
    torch.manual_seed(7)
    a = model.problem(batch).lam0
    torch.manual_seed(7)
    b = model.problem(batch).lam0
    assert torch.equal(a, b) and not torch.allclose(a, lam0)
    assert not torch.allclose(a[0], a[1])  # a fresh draw per image
    noise_std = float((a - lam0).detach().std())
    assert 0.3 < noise_std < 0.7, noise_std
    loss, _, _ = model(batch)
    loss.backward()
    assert model.log_slot_sigma.grad is not None and model.log_slot_sigma.grad.abs().sum() > 0
    assert model.lambda0.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="slot_noise"):
        tiny(slot_noise=-1.0)


def test_encoder_without_position_gives_the_inner_pixels_of_a_blank_image_one_embedding():
    from mpmkit_image.data import Scene

    blank = Scene(torch.zeros(3, 35, 35), torch.zeros(1225, dtype=torch.long))
    batch = collate([blank])
    with torch.no_grad():
        g = tiny(encoder_position=False).eval().potential.embed(batch.x, batch.mask)
        g_pos = tiny().eval().potential.embed(batch.x, batch.mask)
    # away from the border (3×3 convs with dilations 1, 2, 4, 8 see the zero padding up to 15 pixels
    # in) every pixel is alike
    inner = torch.zeros(35, 35, dtype=torch.bool)
    inner[15:-15, 15:-15] = True
    gi, gpi = g[0][inner.reshape(-1)], g_pos[0][inner.reshape(-1)]
    assert torch.allclose(gi, gi[:1].expand_as(gi), atol=1e-5)
    assert not torch.allclose(gpi, gpi[:1].expand_as(gpi), atol=1e-3)


def test_relative_fourier_features_decode_in_the_slot_frame():
    """With ``rel_freqs`` and no absolute position, a slot's output at pixel p depends on p − c_k only:
    moving the slot centre by whole pixels moves its decoded rgb and alpha by the same pixels."""
    from mpmkit_image.model import BroadcastDecoder

    torch.manual_seed(0)
    dec = BroadcastDecoder(8, hidden=16, absolute=False, rel_freqs=4)
    lam = torch.randn(1, 1, 8)
    step = 2.0 / 34  # one pixel on the [-1, 1] grid of a 35×35 image
    outs = []
    for shift in (0, 3):
        with torch.no_grad():
            dec.centre.weight.zero_()
            dec.centre.bias.copy_(torch.atanh(torch.tensor([0.1, -0.2 + shift * step])))  # (y, x) centre
        # pixel (row 10, col 12) with the first centre, (row 10, col 12 + 3) with the shifted one
        index = torch.tensor([[10 * 35 + 12 + shift]])
        rgb, alpha = dec(lam, index, (35, 35))
        outs.append(torch.cat([rgb[0, 0, 0], alpha[0, 0]]))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    # and the features are used: the output changes with the offset
    rgb_far, alpha_far = dec(lam, torch.tensor([[20 * 35 + 30]]), (35, 35))
    assert not torch.allclose(outs[1], torch.cat([rgb_far[0, 0, 0], alpha_far[0, 0]]), atol=1e-3)


def test_rel_freqs_zero_keeps_the_checkpoint_layout():
    """Runs saved before ``rel_freqs`` existed load: with 0 the decoder has exactly the old parameters."""
    solver = make_solver("coordinate-ascent")
    old = set(build_mpm(solver).state_dict())
    new = set(build_mpm(solver, rel_freqs=3).state_dict())
    assert new - old == {"likelihood.decoder.rel_fourier.weight"}


@pytest.mark.parametrize("dilations, field", [((1, 1, 1), 7), ((1, 2, 4), 15)])
def test_encoder_dilations_set_the_receptive_field(dilations, field):
    """One 3×3 conv per entry: a pixel's g depends on exactly the (1 + 2·Σ d)² input pixels around it."""
    from mpmkit_image.model import Encoder

    torch.manual_seed(0)
    enc = Encoder([(4, 3, d) for d in dilations], 4, 8, position=False)
    image = torch.rand(1, 3, 35, 35, requires_grad=True)
    (enc(image)[0, 17 * 35 + 17] * torch.randn(8)).sum().backward()  # (a plain sum is flat under LayerNorm)
    seen = image.grad[0].abs().sum(0) > 0
    rows, cols = seen.any(1).nonzero().squeeze(1), seen.any(0).nonzero().squeeze(1)
    assert (int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1) == (field, field)


def test_dilations_default_per_local_and_explicit_list_wins():
    from mpmkit.errors import ConfigError
    from mpmkit.runs import config_for, make_family

    def dilations(values):
        model = make_family("tetrominoes").build_model(config_for("tetrominoes", {"num_global": 5, **values}))
        return [m.dilation[0] for m in model.potential.recognition.encoder.convs if isinstance(m, torch.nn.Conv2d)]

    with pytest.raises(ConfigError, match="dilations"):
        config_for("tetrominoes", {"dilations": [1, 0]})
    # the default is per local GMM: the wide encoder for MPM, the 7×7 one for PSA (measured best for each)
    assert dilations({}) == [1, 2, 4, 8]
    assert dilations({"local": "psa", "num_slots": 5, "num_objects": [1, 4]}) == [1, 1, 1]
    assert dilations({"solver": "slot-attention"}) == [1, 1, 1]  # the baseline with its better encoder
    assert dilations({"dilations": [1, 2]}) == [1, 2]


@pytest.mark.parametrize("decoder", ["additive", "mixture"])
def test_infer_scenes_segments_by_masks_and_by_q(scenes, decoder):
    from mpmkit_image.family import infer_scenes

    model = tiny(decoder)
    res = infer_scenes(model, scenes, steps=3)
    inf = model.infer(collate(list(scenes)), steps=3)
    np.testing.assert_array_equal(res["pred_q"], inf.q.argmax(-1).numpy())  # q of the inner loop itself
    if decoder == "mixture":  # the mixture model's masks are q: both segmentations are one
        np.testing.assert_array_equal(res["pred"], res["pred_q"])
    else:  # the additive model's masks are the decoder's alphas, an untrained decoder's differ from q
        assert (res["pred"] != res["pred_q"]).any()


@pytest.mark.parametrize("arch", ["fast", "paper"])
def test_recognition_at_observed_pixels_equals_the_whole_image_read_there(scenes, arch):
    model = tiny(arch=arch)
    model.train()  # BatchNorm (paper) uses batch statistics: over every pixel of the image in both paths
    batch = collate([scenes[i] for i in range(4)])
    batch.x["index"] = torch.randint(0, 35 * 35, (4, 50), generator=torch.Generator().manual_seed(1))
    enc = model.potential.recognition.encoder
    expect = gather_pixels(enc(batch.x["image"]), batch.x["index"])
    torch.testing.assert_close(model.potential.recognition(batch.x), expect, rtol=1e-5, atol=1e-5)
    assert enc.per_pixel == (arch == "fast")
