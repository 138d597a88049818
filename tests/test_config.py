"""Config files and --set overrides are validated with errors that name the key and what is allowed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from mpmkit.config import build_config, load_file, parse_overrides
from mpmkit.errors import ConfigError


@dataclass
class Opts:
    decoder: Literal["additive", "mixture"] = "additive"
    num_datasets: int = 10
    noise: float = 0.1


def test_unknown_key_is_named_with_suggestion_and_allowed_keys():
    with pytest.raises(ConfigError) as e:
        build_config("fam", Opts, {"num_dataset": 3})
    msg = str(e.value)
    assert "'num_dataset'" in msg and "Did you mean 'num_datasets'" in msg and "decoder" in msg and "lr" in msg


def test_literal_lists_allowed_values():
    with pytest.raises(ConfigError, match="'decoder' must be one of 'additive', 'mixture'; got 'sum'"):
        build_config("fam", Opts, {"decoder": "sum"})


@pytest.mark.parametrize("key,value,expect", [("epochs", "ten", "integer"), ("lr", "fast", "number"),
                                              ("progress", "maybe", "true or false"), ("epochs", 2.5, "integer"),
                                              ("lr_milestones", {"a": 1}, "list"), ("backward", "adjoint", "one of"),
                                              ("lr", True, "number"), ("grad_clip", False, "number")])
def test_wrong_types_name_the_key(key, value, expect):
    with pytest.raises(ConfigError, match=f"'{key}.*{expect}"):
        build_config("fam", Opts, {key: value})


@pytest.mark.parametrize("key,value,expect", [("keep_checkpoints", 0, ">= 1"), ("log_every", 0, ">= 1"),
                                              ("batch_size", 0, ">= 1"), ("epochs", -3, ">= 1"),
                                              ("max_steps", -1, ">= 0"), ("inner_steps", 0, ">= 1"), ("lr", 0, "> 0"), ("lr", -1e-3, "> 0"),
                                              ("grad_clip", -1, ">= 0"), ("lr_milestones", [-2], "epochs >= 0")])
def test_out_of_range_training_options_are_refused(key, value, expect):
    """Values that would crash later (log_every=0) or lose data (keep_checkpoints=0) fail up front."""
    with pytest.raises(ConfigError, match=f"'{key}'.*{expect}"):
        build_config("fam", Opts, {key: value})


def test_values_are_coerced_and_family_defaults_apply():
    cfg = build_config("fam", Opts, {"lr": 1, "lr_milestones": 5, "noise": "0.5"}, {"epochs": 7})
    assert cfg.train.lr == 1.0 and cfg.train.lr_milestones == [5] and cfg.family.noise == 0.5
    assert cfg.epochs == 7 and cfg.decoder == "additive"


def test_yaml_toml_and_sectioned_json_load(tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 0.01\ndecoder: mixture\n")
    (tmp_path / "a.toml").write_text('lr = 0.01\ndecoder = "mixture"\n')
    (tmp_path / "a.json").write_text('{"family": "fam", "train": {"lr": 0.01}, "options": {"decoder": "mixture"}}')
    for name in ("a.yaml", "a.toml", "a.json"):
        assert load_file(tmp_path / name) == {"lr": 0.01, "decoder": "mixture"}


def test_malformed_files_are_reported(tmp_path):
    (tmp_path / "bad.yaml").write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_file(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="unknown format"):
        (tmp_path / "c.ini").write_text("x")
        load_file(tmp_path / "c.ini")
    with pytest.raises(ConfigError, match="does not exist"):
        load_file(tmp_path / "missing.yaml")


def test_overrides_parse_yaml_values():
    assert parse_overrides(["lr=1e-3", "lr_milestones=[5, 10]", "solver=pyro-nuts", "progress=false"]) == {
        "lr": 1e-3, "lr_milestones": [5, 10], "solver": "pyro-nuts", "progress": False}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])


def test_solver_options_reach_the_solver_and_bad_ones_are_named(toy_host):
    from mpmkit.components import solver_from_config
    from mpmkit.config import parse_overrides
    from mpmkit.runs import config_for

    cfg = config_for("toy", parse_overrides(["solver=gradient", "solver_options={step_size: 0.25}"]))
    assert cfg.solver_options == {"step_size": 0.25}
    solver = solver_from_config(cfg)
    assert solver.step_size == 0.25
    bad = config_for("toy", {"solver": "coordinate-ascent", "solver_options": {"num_steps": 3}})
    with pytest.raises(ConfigError, match=r"solver 'coordinate-ascent' does not take option\(s\) 'num_steps'; its options: .*tol"):
        solver_from_config(bad)
    with pytest.raises(ConfigError, match="must be a mapping"):
        config_for("toy", {"solver_options": [1, 2]})


def test_every_registered_solver_names_an_unknown_option():
    """Also solvers whose constructors pass **kw on to FixedPointSolver (a typo must not surface as a TypeError)."""
    from mpmkit.components import make_solver
    from mpmkit.plugins import registry

    for name in registry("solver").names():
        with pytest.raises(ConfigError, match=f"solver '{name}' does not take option\\(s\\) 'num_step'; its options: "):
            make_solver(name, num_step=5)


def test_a_field_without_a_default_is_a_required_key_and_fixed_tuples_are_checked():
    from dataclasses import field

    @dataclass
    class Needs:
        data_path: str
        window: tuple[float, float] = (0.0, 1.0)
        sizes: list[int] = field(default_factory=list)

    with pytest.raises(ConfigError, match=r"config key\(s\) 'data_path' have no default and must be given, "
                                          r"e.g. --set data_path=\.\.\."):
        build_config("fam", Needs, {})
    cfg = build_config("fam", Needs, {"data_path": "x", "window": [1, 2], "sizes": 3})
    assert cfg.window == (1.0, 2.0) and cfg.sizes == [3]
    for bad in ([1, 2, 3], 5, "a"):
        with pytest.raises(ConfigError, match=r"'window' must be a list of 2 values"):
            build_config("fam", Needs, {"data_path": "x", "window": bad})
    with pytest.raises(ConfigError, match=r"'window\[1\]' must be a number"):
        build_config("fam", Needs, {"data_path": "x", "window": [1, "b"]})


def test_a_value_the_solver_refuses_is_a_config_error_naming_solver_and_option(toy_host):
    from mpmkit.components import make_solver

    with pytest.raises(ConfigError, match=r"solver 'pyro-svi' refused its options \(guide='bogus'\): .*bogus"):
        make_solver("pyro-svi", guide="bogus")
    # values are checked against the solver's own annotations (tol: float | None), as config keys are
    with pytest.raises(ConfigError, match=r"'solver_options.tol' must be a number, got 'abc'"):
        make_solver("gradient", tol="abc")
    assert make_solver("gradient", tol=1, step_size="0.25").tol == 1.0


@pytest.mark.parametrize("name, options, named", [
    ("coordinate-ascent", {"truncate": -1}, "truncate is the number of steps"),
    ("coordinate-ascent", {"truncate": 0}, "truncate is the number of steps"),
    ("gradient", {"neumann": -2}, "neumann is a number of correction terms"),
    ("coordinate-ascent", {"tol": 0.0}, "tol is a distance, > 0"),
    ("gradient", {"step_size": -1.0}, "step_size must be > 0"),
])
def test_fixed_point_options_that_would_run_the_wrong_loop_are_refused(toy_host, name, options, named):
    from mpmkit.components import make_solver

    with pytest.raises(ConfigError, match=f"solver '{name}' refused its options.*{named}"):
        make_solver(name, **options)


def test_backward_inside_solver_options_points_at_the_top_level_key(toy_host):
    from mpmkit.components import solver_from_config
    from mpmkit.runs import config_for

    cfg = config_for("toy", {"solver_options": {"backward": "implicit"}})

    with pytest.raises(ConfigError, match="top-level key: use --set backward=implicit"):
        solver_from_config(cfg)


def test_infer_with_zero_steps_is_refused_not_read_as_the_default(toy_host):
    from mpmkit.runs import config_for, make_family

    family = make_family("toy")
    cfg = config_for("toy", {"solver_options": {"trace": True}})
    model, splits = family.build_model(cfg), family.build_data(cfg)
    batch = splits.collate(list(splits.train[:3]))
    with pytest.raises(ValueError, match="steps"):  # 0 is a number of steps, not "the default"
        model.infer(batch, steps=0)
    assert len(model.infer(batch).trace["surrogate_elbo"]) == cfg.inner_steps + 1
