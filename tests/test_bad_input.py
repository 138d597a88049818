"""Bad input: each case names the problem and the fix, and what was written before stays intact.

Every case is ``fn(tmp_path, monkeypatch) -> (message the user sees, earlier outputs intact)``,
registered with the substrings its message must contain. ``python tests/test_bad_input.py``
prints the table of ``benchmarks/RESULTS.md`` (section "Bad input") from the same cases.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mpmkit import checkpoint as ckpt
from mpmkit import hookimpl
from mpmkit.cli import main
from mpmkit.errors import MPMKitError
from mpmkit.plugins import PluginHost, registry

CASES: dict[str, tuple] = {}
_BASE: dict[str, Path] = {}


def case(title: str, *expect: str):
    def deco(fn):
        CASES[title] = (fn, expect)
        return fn
    return deco


def cli(*args: str) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code != 0, r.output
    assert "Traceback" not in r.output, r.output
    return r.output.strip().removeprefix("Error: ")


def snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def run(tmp_path: Path) -> Path:
    """A finished small toy run (2 epochs, a checkpoint every step), copied from one built per session."""
    if "run" not in _BASE or not _BASE["run"].exists():
        base = Path(tmp_path).parent / "bad-input-base"
        shutil.rmtree(base, ignore_errors=True)
        r = CliRunner().invoke(main, ["fit", "toy", "--set", "epochs=2", "--set", "checkpoint_every=1",
                                      "--set", "keep_checkpoints=3", "--out", str(base), "--no-evaluate"])
        assert r.exit_code == 0, r.output
        _BASE["run"] = base
    out = tmp_path / "run"
    shutil.copytree(_BASE["run"], out)
    return out


def resume(out: Path, *sets: str) -> str:
    return cli("fit", "toy", "--out", out, "--resume", "--no-evaluate", *sets)


def latest(out: Path) -> Path:
    return ckpt.resolve(out / "checkpoints")


# -- checkpoints -------------------------------------------------------------------------------------------
def _damage_latest(tmp_path, damage):
    out = run(tmp_path)
    bad = latest(out) / ckpt.TENSORS
    damage(bad)
    before = {k: v for k, v in snapshot(out).items() if not k.endswith(str(bad.relative_to(out)))}
    msg = resume(out)
    after = {k: v for k, v in snapshot(out).items() if k in before}
    return msg, before == after and ckpt.load(out / "checkpoints" / "step-00000003")[1]["step"] == 3


@case("checkpoint: one byte flipped in the latest tensors", "SHA-256", "step-00000003", "latest.json")
def flipped(tmp_path, mp):
    def flip(p):
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    return _damage_latest(tmp_path, flip)


@case("checkpoint: latest tensors file truncated", "truncated or corrupted", "other checkpoints")
def truncated(tmp_path, mp):
    return _damage_latest(tmp_path, lambda p: p.write_bytes(p.read_bytes()[:100]))


@case("checkpoint: latest.json pointer corrupted", "latest.json", "corrupted", "step-00000003")
def bad_pointer(tmp_path, mp):
    out = run(tmp_path)
    (out / "checkpoints" / "latest.json").write_text("{\"pa")
    before = snapshot(out)
    return resume(out), snapshot(out) == before


@case("checkpoint from another family", "from family 'spiral-gmm'", "start a new run")
def other_family(tmp_path, mp):
    out = run(tmp_path)
    state = latest(out) / ckpt.STATE
    state.write_text(state.read_text().replace('"family": "toy"', '"family": "spiral-gmm"'))
    before = snapshot(out)
    return resume(out), snapshot(out) == before


@case("checkpoint from another config (K=2 weights, K=3 model)", "does not fit this model", "lambda0", "--out")
def other_config(tmp_path, mp):
    out = run(tmp_path)
    cfg = json.loads((out / "config.json").read_text())
    cfg["options"]["num_clusters"] = 3
    (out / "config.json").write_text(json.dumps(cfg))
    before = snapshot(out)
    return resume(out), snapshot(out) == before


@case("resume with a changed config", "keys differ: lr", "may change on resume")
def changed_config(tmp_path, mp):
    out = run(tmp_path)
    before = snapshot(out)
    return resume(out, "--set", "lr=0.5"), snapshot(out) == before


@case("pickled checkpoint (torch.save file in place of the tensors)", "never unpickles", "safetensors")
def pickled(tmp_path, mp):
    import pickle

    out = run(tmp_path)
    path = latest(out)
    torch.save({"model.lambda0": torch.zeros(2, 2)}, path / ckpt.TENSORS)
    mp.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    mp.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    before = snapshot(out)
    with pytest.raises(MPMKitError, match="never unpickles"):
        ckpt.load(Path(tmp_path) / "run" / "checkpoints" / path.name / ckpt.TENSORS)  # handed over as a file
    return resume(out), snapshot(out) == before


@case("new run into a directory that holds one", "already holds a run", "--resume")
def clobber(tmp_path, mp):
    out = run(tmp_path)
    before = snapshot(out)
    return cli("fit", "toy", "--out", out, "--no-evaluate"), snapshot(out) == before


# -- data ------------------------------------------------------------------------------------------------
def _bad_data(tmp_path, mp, edit):
    import toy

    out = run(tmp_path)
    orig = toy.ToyFamily.build_data

    def build(self, cfg):
        splits = orig(self, cfg)
        return edit(splits)

    mp.setattr(toy.ToyFamily, "build_data", build)
    before = snapshot(out)
    return resume(out, "--set", "epochs=3"), snapshot(out) == before


def _set_x(splits, i, fn):
    x, z = splits.train[i]
    splits.train[i] = (fn(x.clone()), z)
    return splits


@case("NaN in the data", "train dataset 3 contains NaN", "clean or drop it")
def nan_data(tmp_path, mp):
    return _bad_data(tmp_path, mp, lambda s: _set_x(s, 3, lambda x: x.index_fill_(0, torch.tensor([1]), float("nan"))))


@case("Inf in the data", "train dataset 5 contains Inf", "clean or drop it")
def inf_data(tmp_path, mp):
    return _bad_data(tmp_path, mp, lambda s: _set_x(s, 5, lambda x: x.index_fill_(1, torch.tensor([0]), float("inf"))))


@case("a dataset with no observations", "train dataset 2 has no observations", "remove it")
def empty_dataset(tmp_path, mp):
    return _bad_data(tmp_path, mp, lambda s: _set_x(s, 2, lambda x: x[:0]))


@case("an empty training split", "empty training split", "split sizes")
def empty_split(tmp_path, mp):
    def edit(s):
        s.train = []
        return s
    return _bad_data(tmp_path, mp, edit)


@case("K larger than a dataset's number of observations (a warning; training runs)",
      "fewer observations than the K=12 slots", "Lower the number of slots")
def k_too_large(tmp_path, mp):
    from mpmkit.runs import config_for, make_family
    from mpmkit.training import Trainer

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        summary = Trainer(make_family("toy"), config_for("toy", {"epochs": 1, "num_clusters": 12}),
                          Path(tmp_path) / "k").fit()
    assert np.isfinite(summary["best_val"])
    return "warning: " + next(str(x.message) for x in w if "slots" in str(x.message)), True


# -- configuration and names --------------------------------------------------------------------------------
@case("config: unknown key", "unknown config key 'epoch'", "Did you mean 'epochs'", "Allowed keys")
def unknown_key(tmp_path, mp):
    out = run(tmp_path)
    (Path(tmp_path) / "c.yaml").write_text("epoch: 5\n")
    before = snapshot(out)
    return resume(out, "--config", Path(tmp_path) / "c.yaml"), snapshot(out) == before


@case("config: wrong type", "'epochs' must be an integer", "'ten'")
def wrong_type(tmp_path, mp):
    out = run(tmp_path)
    before = snapshot(out)
    return resume(out, "--set", "epochs=ten"), snapshot(out) == before


@case("config: out of range (keep no checkpoint)", "'keep_checkpoints' must be >= 1, got 0")
def keep_none(tmp_path, mp):
    out = run(tmp_path)
    before = snapshot(out)
    return resume(out, "--set", "keep_checkpoints=0"), snapshot(out) == before


@case("config: a boolean where a number belongs", "'lr' must be a number, got True")
def bool_number(tmp_path, mp):
    return cli("fit", "toy", "--set", "lr=true", "--out", Path(tmp_path) / "x"), not (Path(tmp_path) / "x").exists()


@case("solver option that does not exist", "solver 'gradient' does not take option(s) 'step'", "its options: step_size")
def bad_solver_option(tmp_path, mp):
    return (cli("fit", "toy", "--set", "solver=gradient", "--set", "solver_options={step: 0.1}",
                "--out", Path(tmp_path) / "x"), not (Path(tmp_path) / "x").exists())


@case("config: malformed YAML", "could not be parsed")
def bad_yaml(tmp_path, mp):
    out = run(tmp_path)
    (Path(tmp_path) / "c.yaml").write_text("lr: [1, 2\n")
    before = snapshot(out)
    return resume(out, "--config", Path(tmp_path) / "c.yaml"), snapshot(out) == before


@case("unknown family name", "unknown family 'toyy'", "Did you mean 'toy'", "mpmkit plugins")
def unknown_family(tmp_path, mp):
    out = run(tmp_path)
    before = snapshot(out)
    return cli("fit", "toyy", "--out", out, "--resume"), snapshot(out) == before


@case("resume with another family", "is a 'toy' run, not 'spiral-gmm'", "mpmkit fit toy --out")
def resume_other_family(tmp_path, mp):
    # checked before the run's keys are read as the other family's (which named a key, not the cause)
    out = run(tmp_path)
    before = snapshot(out)
    return cli("fit", "spiral-gmm", "--out", out, "--resume"), snapshot(out) == before


@case("unknown device", "unknown device 'gpu'; use auto, cpu, cuda or cuda:N")
def unknown_device(tmp_path, mp):
    fresh, out = Path(tmp_path) / "x", run(tmp_path)
    before = snapshot(out)
    msg = cli("fit", "toy", "--set", "device=gpu", "--out", fresh)
    # device may change on resume: the bad one is refused there too, before the run is touched
    again = resume(out, "--set", "device=gpu")
    return msg, not fresh.exists() and "unknown device 'gpu'" in again and snapshot(out) == before


@case("unknown solver name", "unknown solver 'nuts'", "coordinate-ascent")
def unknown_solver(tmp_path, mp):
    fresh, out = Path(tmp_path) / "x", run(tmp_path)
    before = snapshot(out)
    msg = cli("fit", "toy", "--set", "solver=nuts", "--out", fresh)
    resume(out, "--set", "solver=nuts")  # refused (a changed key, or the unknown name) without touching the run
    return msg, not fresh.exists() and snapshot(out) == before


@case("unknown prior (any registry) name", "unknown prior 'gmn'", "Did you mean 'gmm'")
def unknown_prior(tmp_path, mp):
    with pytest.raises(MPMKitError) as e:
        registry("prior").get("gmn")
    return str(e.value), True


@case("a plugin that raises on import", "Error loading plugin 'broken' (import)", "RuntimeError: boom")
def broken_plugin(tmp_path, mp):
    from mpmkit.testing import fake_entry_point

    (Path(tmp_path) / "mpmkit_bad_input_broken.py").write_text("raise RuntimeError('boom')\n")
    mp.syspath_prepend(str(tmp_path))
    fake_entry_point(mp, "broken", "mpmkit_bad_input_broken", replace=True)
    h = PluginHost().load(strict=False)  # default: reported, the others still load
    assert [e.name for e in h.load_errors] == ["broken"] and "coordinate-ascent" in h["solver"]
    with pytest.raises(MPMKitError) as e:  # strict mode (CI): an error naming the plugin
        PluginHost().load(strict=True)
    return str(e.value), True


@case("a plugin registering a duplicate name", "prior 'gaussian' registered twice", "rename one")
def duplicate(tmp_path, mp):
    dup = types.SimpleNamespace(register_priors=hookimpl(lambda register: register("gaussian", object())))
    h = PluginHost().load(strict=False)
    with pytest.raises(MPMKitError) as e:
        h.register(dup, name="dup")
    assert h["prior"].entry("gaussian").plugin == "mpmkit"
    return str(e.value), True


# -- the image and text families' own checks (their public functions, when installed) -------------------------
def _image_case(make, expect):
    def fn(tmp_path, mp):
        data = pytest.importorskip("mpmkit_image.data")
        with pytest.raises(ValueError) as e:
            data.check_images(make())
        return str(e.value), True
    return fn


for _title, _make, _expect in [
    ("image: wrong size (32x32)", lambda: np.zeros((2, 32, 32, 3), np.uint8), "35x35"),
    ("image: wrong dtype (float)", lambda: np.zeros((2, 35, 35, 3), np.float32), "uint8"),
    ("image: wrong channel count (RGBA)", lambda: np.zeros((2, 35, 35, 4), np.uint8), "3 colour channels"),
]:
    case(_title, _expect)(_image_case(_make, _expect))


@pytest.mark.parametrize("title", list(CASES))
def test_bad_input(title, tmp_path, monkeypatch, toy_host):
    fn, expect = CASES[title]
    msg, intact = fn(tmp_path, monkeypatch)
    for text in expect:
        assert text in msg, (text, msg)
    assert intact


def table(tmp: Path) -> str:
    """The markdown table of every case (run from ``python tests/test_bad_input.py``)."""
    rows = ["| bad input | error the user sees | earlier outputs intact |", "|---|---|---|"]
    for i, (title, (fn, _)) in enumerate(CASES.items()):
        d = tmp / f"case{i}"
        d.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            msg, intact = fn(d, mp)
        msg = " ".join(msg.replace(str(d), "DIR").replace(str(tmp), "TMP").split()).replace("|", "\\|").replace("`", "'")
        rows.append(f"| {title} | `{msg}` | {'yes' if intact else 'NO'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    import toy

    from mpmkit.plugins import host

    torch.set_num_threads(1)
    host().register(toy, name="toy-tests")
    with tempfile.TemporaryDirectory() as t:
        print(table(Path(t)))
