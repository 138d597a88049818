"""Algorithm 1 trainer: runs, resumes exactly, refuses to clobber runs, names bad inputs."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mpmkit import checkpoint as ckpt
from mpmkit.cli import main
from mpmkit.errors import CheckpointError, ConfigError, IncompatibleSolverError, UnknownNameError
from mpmkit.runs import config_for, evaluate_run, make_family
from mpmkit.training import Trainer


def fit(out, resume=False, **values):
    cfg = config_for("toy", {"epochs": 3, **values})
    return Trainer(make_family("toy"), cfg, out, resume=resume).fit()


def final_params(out):
    tensors, state = ckpt.load(out / "checkpoints")
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "optim."))}, state


def test_resume_after_stop_matches_uninterrupted_run(tmp_path, toy_host):
    fit(tmp_path / "full")
    fit(tmp_path / "cut", max_steps=3)  # stops mid-epoch 1 (2 batches per epoch)
    fit(tmp_path / "cut", resume=True, max_steps=3)  # same config → resumes (nothing to do)
    with pytest.raises(ConfigError, match="keys differ: lr"):
        fit(tmp_path / "cut", resume=True, lr=0.5)
    fit(tmp_path / "cut", resume=True)  # budget keys (max_steps) may change on resume
    a, sa = final_params(tmp_path / "full")
    b, sb = final_params(tmp_path / "cut")
    assert sa["step"] == sb["step"] == 6
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_metrics_csv_has_no_duplicate_steps_after_resume(tmp_path, toy_host):
    fit(tmp_path / "run", max_steps=3)
    fit(tmp_path / "run", resume=True)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    train_steps = [r.split(",")[0] for r in rows[1:] if r.split(",")[2] != ""]
    assert len(train_steps) == len(set(train_steps))


def test_tensorboard_and_csv_hold_the_same_steps_after_resume(tmp_path, toy_host):
    """Resuming purges TensorBoard events after the checkpoint's step, as metrics.csv drops its rows."""
    import csv

    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    fit(run, max_steps=3, log_every=1, tensorboard=True)  # stops mid-epoch 2 (2 batches per epoch)
    fit(run, resume=True, log_every=1, tensorboard=True)
    ea = ea_mod.EventAccumulator(str(run / "tb"))
    ea.Reload()
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    for tag in ("loss", "val_loss"):
        in_csv = sorted({int(float(r["step"])) for r in rows if r.get(tag)})
        assert in_csv and sorted({e.step for e in ea.Scalars(tag)}) == in_csv, tag


def test_existing_run_is_not_overwritten(tmp_path, toy_host):
    fit(tmp_path / "run", epochs=1)
    before = (tmp_path / "run" / "checkpoints" / "latest.json").read_text()
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(tmp_path / "run", epochs=1)
    assert (tmp_path / "run" / "checkpoints" / "latest.json").read_text() == before


def test_resume_refuses_other_family(tmp_path, toy_host):
    fit(tmp_path / "run", epochs=1)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    saved["family"] = "other"
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match="'other' run"):
        fit(tmp_path / "run", resume=True, epochs=1)


def test_training_improves_elbo_and_evaluates(tmp_path, toy_host):
    fit(tmp_path / "run", epochs=15)
    rows = [r.split(",") for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()]
    header = rows[0]
    val = [float(r[header.index("val_loss")]) for r in rows[1:] if r[header.index("val_loss")]]
    assert val[-1] < val[0]
    metrics = evaluate_run(tmp_path / "run")
    # a sanity floor for the evaluation path, not evidence of learning: an untrained toy model already
    # clusters these well-separated blobs (ARI ≈ 0.89); learning is the val_loss check above
    assert metrics["ari"] > 0.8
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["ari"] == metrics["ari"]


def test_incompatible_solver_names_those_that_can(tmp_path, toy_host, monkeypatch):
    import toy

    from mpmkit import DotProductPotential

    orig = toy.ToyFamily.build_model

    def dot_model(self, cfg):
        m = orig(self, cfg)
        m.potential = DotProductPotential()
        return m

    monkeypatch.setattr(toy.ToyFamily, "build_model", dot_model)
    with pytest.raises(IncompatibleSolverError, match="no closed form.*Solvers that can: gradient"):
        fit(tmp_path / "run", epochs=1)
    fit(tmp_path / "run2", epochs=1, solver="gradient")  # the suggested solver trains the same model


def test_cli_unknown_family_and_solver_list_available(tmp_path, toy_host):
    r = CliRunner().invoke(main, ["fit", "toyy", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "unknown family 'toyy'" in r.output and "toy" in r.output and "Did you mean 'toy'" in r.output
    r = CliRunner().invoke(main, ["fit", "toy", "--set", "solver=nuts", "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "unknown solver 'nuts'" in r.output and "coordinate-ascent" in r.output
    with pytest.raises(UnknownNameError):
        make_family("nope")


def test_cli_bad_config_key_is_named(tmp_path, toy_host):
    (tmp_path / "c.yaml").write_text("epochs: 1\nlearning_rate: 0.1\n")
    r = CliRunner().invoke(main, ["fit", "toy", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")])
    assert r.exit_code != 0 and "'learning_rate'" in r.output and "Allowed keys" in r.output


def test_cli_fit_then_evaluate(tmp_path, toy_host):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["fit", "toy", "--set", "epochs=2", "--out", str(out), "--no-evaluate"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    assert "ari" in json.loads((out / "metrics.json").read_text())


def test_cli_fit_stopped_before_any_validation_says_so(tmp_path, toy_host):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["fit", "toy", "--set", "max_steps=1", "--out", str(out), "--no-evaluate"])
    assert r.exit_code == 0, r.output
    assert "1 steps, no validation pass yet" in r.output and "inf" not in r.output
    r = CliRunner().invoke(main, ["evaluate", str(out), "--set", "seed=5"])
    assert r.exit_code != 0 and "'seed' decides the run's train/test split" in r.output


def test_cli_evaluate_with_another_solver_keeps_the_run_metrics(tmp_path, toy_host):
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["fit", "toy", "--set", "epochs=2", "--out", str(out)]).exit_code == 0
    before = (out / "metrics.json").read_text()
    r = CliRunner().invoke(main, ["evaluate", str(out), "--set", "solver=gradient", "--set", "inner_steps=30"])
    assert r.exit_code == 0, r.output
    variant = json.loads((out / "metrics-inner_steps=30,solver=gradient.json").read_text())
    assert variant["overrides"] == {"solver": "gradient", "inner_steps": 30} and "ari" in variant
    assert (out / "metrics.json").read_text() == before
    r = CliRunner().invoke(main, ["evaluate", str(out), "--set", "solver=nope"])
    assert r.exit_code != 0 and "coordinate-ascent" in r.output  # unknown names list what exists


def test_cli_resume_continues_from_saved_config(tmp_path, toy_host):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert CliRunner().invoke(main, ["fit", "toy", "--set", "epochs=3", "--out", str(full), "--no-evaluate"]).exit_code == 0
    r = CliRunner().invoke(main, ["fit", "toy", "--set", "epochs=3", "--set", "max_steps=4", "--out", str(cut),
                                  "--no-evaluate"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["fit", "toy", "--out", str(cut), "--resume", "--set", "max_steps=0", "--no-evaluate"])
    assert r.exit_code == 0, r.output
    a, _ = final_params(full)
    b, _ = final_params(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_run_saved_before_keys_existed(tmp_path, toy_host):
    """A run's config.json from an older mpmkit lacks keys added since: they take this family's defaults
    (its option dataclass and its ``defaults``, e.g. toy's batch_size 8), and only a non-default value refuses."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    fit(full)
    fit(cut, max_steps=3)
    saved = json.loads((cut / "config.json").read_text())
    assert saved["train"].pop("batch_size") == 8 and saved["options"].pop("ragged") is True
    (cut / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="keys differ: ragged"):
        fit(cut, resume=True, ragged=False)
    r = CliRunner().invoke(main, ["fit", "toy", "--out", str(cut), "--resume", "--set", "max_steps=0", "--no-evaluate"])
    assert r.exit_code == 0, r.output
    a, _ = final_params(full)
    b, state = final_params(cut)
    assert state["step"] == 6 and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_accepts_an_unchanged_tuple_option(tmp_path, toy_host):
    """config.json stores a ``tuple[float, float]`` option as a JSON list; resuming must not read that as a change."""
    from dataclasses import dataclass

    from mpmkit.config import build_config
    from toy import ToyFamily, ToyOptions

    @dataclass
    class WindowOptions(ToyOptions):
        window: tuple[float, float] = (0.0, 1.0)

    class WindowFamily(ToyFamily):
        options = WindowOptions

    def run(resume, **values):
        cfg = build_config("toy", WindowOptions, {"epochs": 2, "window": [0.5, 2.0], **values}, ToyFamily.defaults)
        return Trainer(WindowFamily(), cfg, tmp_path / "run", resume=resume).fit()

    run(False, max_steps=2)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["options"]["window"] == [0.5, 2.0]
    run(True)  # same window: resumes to the end
    assert ckpt.load(tmp_path / "run" / "checkpoints")[1]["step"] == 4
    with pytest.raises(ConfigError, match="keys differ: window"):
        run(True, window=[0.5, 3.0])


def test_validation_rows_carry_the_epoch_they_end(tmp_path, toy_host):
    fit(tmp_path / "run", epochs=3)
    import csv

    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val_epochs = [int(float(r["epoch"])) for r in rows if r["val_loss"]]
    assert val_epochs == [0, 1, 2]
    for e in val_epochs:  # the last training row before each validation row is from the same epoch
        i = next(i for i, r in enumerate(rows) if r["val_loss"] and int(float(r["epoch"])) == e)
        assert int(float(rows[i - 1]["epoch"])) == e and not rows[i - 1]["val_loss"]


def test_evaluate_makes_its_folder_and_writes_numpy_and_torch_values_as_json(tmp_path, toy_host, monkeypatch):
    import numpy as np

    from toy import ToyFamily

    seen = {}

    def evaluate(self, model, splits, cfg, out_dir):
        (out_dir / "extra.txt").write_text("written by the family")  # no mkdir of its own
        seen["dir"] = out_dir
        return {"a": np.float32(0.5), "n": np.int64(3), "v": np.arange(3), "t": torch.tensor([1.5, 2.0]),
                "nan": float("nan"), "inf": [np.float64(-np.inf), 1.0], "path": out_dir / "extra.txt"}

    fit(tmp_path / "run", epochs=1)
    monkeypatch.setattr(ToyFamily, "evaluate", evaluate)
    m = evaluate_run(tmp_path / "run", overrides={"inner_steps": 4})
    assert (seen["dir"] / "extra.txt").exists() and seen["dir"].name == "eval-inner_steps=4"
    assert {k: m[k] for k in ("a", "n", "v", "t")} == {"a": 0.5, "n": 3, "v": [0, 1, 2], "t": [1.5, 2.0]}
    assert type(m["n"]) is int and m["path"].endswith("extra.txt")
    assert m["nan"] is None and m["inf"] == [None, 1.0]  # standard JSON has no NaN / Infinity
    text = (tmp_path / "run" / "metrics-inner_steps=4.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    on_disk = json.loads(text)
    assert on_disk["v"] == [0, 1, 2] and on_disk["t"] == [1.5, 2.0] and on_disk["nan"] is None
    monkeypatch.setattr(ToyFamily, "evaluate", lambda *a: {"bad": object()})
    from mpmkit.errors import PluginError

    with pytest.raises(PluginError, match="family 'toy': evaluate\\(\\) returned a value that is not JSON: object "
                                          "is not JSON-serialisable .*return numbers"):
        evaluate_run(tmp_path / "run", overrides={"inner_steps": 5})
    assert not (tmp_path / "run" / "eval-inner_steps=5").exists()  # the failed variant left no empty folder


def test_a_family_registered_wrongly_is_named_with_the_fix(tmp_path):
    import types as pytypes
    from dataclasses import dataclass

    from mpmkit import hookimpl
    from mpmkit.errors import PluginError
    from mpmkit.family import Family
    from mpmkit.testing import registered

    class NoOptions(Family):
        def build_data(self, cfg): ...
        def build_model(self, cfg): ...
        def evaluate(self, model, splits, cfg, out_dir): ...

    @dataclass
    class Opts:
        path: str

    class Required(NoOptions):
        options = Opts

    mod = pytypes.ModuleType("wrong_families")
    mod.register_families = hookimpl(lambda register: [register("an-instance", Required()),
                                                       register("no-options", NoOptions),
                                                       register("required", Required)])
    with registered(mod, name="wrong-families"):
        with pytest.raises(PluginError, match="'an-instance' of plugin 'wrong-families' must be registered as a "
                                              "subclass of mpmkit.Family"):
            config_for("an-instance", {})
        with pytest.raises(PluginError, match="'no-options' .* needs `options = SomeDataclass`"):
            make_family("no-options")
        with pytest.raises(ConfigError, match="'path' have no default"):
            config_for("required", {})
        r = CliRunner().invoke(main, ["fit", "no-options", "--out", str(tmp_path / "x")])
        assert r.exit_code != 0 and "needs `options = SomeDataclass`" in r.output and "Traceback" not in r.output


def test_evaluate_names_a_damaged_run_and_the_fix(tmp_path, toy_host):
    import shutil

    fit(tmp_path / "run", epochs=1)
    run = tmp_path / "run"
    best = json.loads((run / "checkpoints" / "best.json").read_text())["path"]
    shutil.rmtree(run / "checkpoints" / best)
    r = CliRunner().invoke(main, ["evaluate", str(run)])
    assert r.exit_code != 0 and "points at" in r.output
    assert "best.json" in r.output and "--checkpoint latest" in r.output  # the pointer that is broken, not latest.json
    assert 0 <= evaluate_run(run, "latest")["ari"] <= 1  # the latest checkpoint still evaluates
    (run / "config.json").write_text('{"family": "toy", "train": {')  # cut short
    r = CliRunner().invoke(main, ["evaluate", str(run)])
    assert r.exit_code != 0 and "config.json' is corrupted" in r.output and "state.json" in r.output
    assert "Traceback" not in r.output
    with pytest.raises(ValueError, match="'best' or 'latest'"):
        evaluate_run(run, "lastest")


def test_variant_files_are_named_by_the_values_as_typed(tmp_path, toy_host):
    fit(tmp_path / "run", epochs=1)
    evaluate_run(tmp_path / "run", overrides={"ragged": False, "lr_milestones": [1, 2], "solver": "gradient"})
    assert (tmp_path / "run" / "metrics-lr_milestones=_1,2_,ragged=false,solver=gradient.json").exists()


def test_evaluate_refuses_overrides_that_change_the_test_split(tmp_path, toy_host, monkeypatch):
    from mpmkit.errors import PluginError
    from toy import ToyFamily

    fit(tmp_path / "run", epochs=1, seed=3)
    monkeypatch.setattr(ToyFamily, "data_keys", ("num_datasets",), raising=False)
    for bad, named in (({"seed": 1}, "'seed' decides"), ({"num_datasets": 40, "inner_steps": 4}, "'num_datasets'"),
                       ({"seed": 1, "num_datasets": 40}, "'seed', 'num_datasets' decide")):
        with pytest.raises(ConfigError, match=f"{named}.*trained with .*could score the model on its own training data"):
            evaluate_run(tmp_path / "run", overrides=bad)
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(("eval-", "metrics-"))) == []
    same = evaluate_run(tmp_path / "run", overrides={"seed": 3, "inner_steps": 4})  # unchanged values are fine
    assert same["overrides"] == {"seed": 3, "inner_steps": 4}
    monkeypatch.setattr(ToyFamily, "data_keys", ("num_datsets",))
    with pytest.raises(PluginError, match=r"data_keys \['num_datsets'\] are not fields of ToyOptions"):
        evaluate_run(tmp_path / "run", overrides={"inner_steps": 4})


def test_check_data_tells_nan_padding_from_nan_data(toy_host):
    from mpmkit import Batch
    from mpmkit.errors import DataError
    from mpmkit.training import check_data

    splits = make_family("toy").build_data(config_for("toy", {}))

    def nan_padded(items):  # a user collate that pads with NaN instead of a finite value
        n = max(len(x) for x, _ in items)
        x = torch.full((len(items), n, 2), float("nan"))
        mask = torch.zeros(len(items), n, dtype=torch.bool)
        for i, (xi, _) in enumerate(items):
            x[i, :len(xi)], mask[i, :len(xi)] = xi, True
        return Batch(x=x, mask=mask)

    assert len({len(x) for x, _ in splits.train}) > 1  # ragged, so there is padding
    with pytest.raises(DataError, match="pads x with NaN/Inf.*pad with a finite value"):
        check_data(splits, nan_padded, 2)
    splits.train[1] = (splits.train[1][0].index_fill(0, torch.tensor([0]), float("nan")), splits.train[1][1])
    with pytest.raises(DataError, match="train dataset 1 contains NaN"):
        check_data(splits, splits.collate, 2)
