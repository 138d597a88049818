"""The plugin loader: broken plugins are reported not fatal, strict mode, duplicate names, unknown
names, the loader's environment variables, the testing helpers, and docs that cover every hook.

Entry points are faked with :func:`mpmkit.testing.fake_entry_point` (the loader sees them exactly
as installed ones); every test works on a fresh :class:`PluginHost` or a reset process host.
"""
from __future__ import annotations

import importlib.metadata as md
import inspect
import json
import re
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpmkit import hookimpl, hookspecs, plugins
from mpmkit.cli import main as cli
from mpmkit.components import make_solver
from mpmkit.errors import PluginError, UnknownNameError
from mpmkit.plugins import PluginHost
from mpmkit.testing import fake_entry_point, registered

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
LOADER_ENV = ("MPMKIT_STRICT_PLUGINS", "MPMKIT_LOAD_PLUGINS", "MPMKIT_DISABLE_PLUGIN_AUTOLOAD", "MPMKIT_TRACE_PLUGINS")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    """No loader variables from the outside (conftest sets strict mode), and a fresh process host."""
    for var in LOADER_ENV:
        monkeypatch.delenv(var, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def plugin(**hooks) -> types.ModuleType:
    """A plugin module whose hooks register ``{hook: [(name, obj), ...]}``."""
    mod = types.ModuleType("fake_plugin")
    for hook, items in hooks.items():
        def impl(register, _items=items):
            for name, obj in _items:
                register(name, obj)

        impl.__name__ = hook
        setattr(mod, hook, hookimpl(impl))
    return mod


@pytest.fixture
def broken(tmp_path, monkeypatch) -> str:
    """An importable module whose import raises, like a plugin with a bug or a missing dependency."""
    (tmp_path / "mpmkit_test_broken.py").write_text("raise RuntimeError('boom from broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mpmkit_test_broken"


@pytest.fixture
def three(monkeypatch, broken):
    """Installed plugins (and only these): good-a, broken, good-z."""
    good_a = plugin(register_priors=[("prior-a", object())])
    fake_entry_point(monkeypatch, "good-a", good_a, version="1.0", replace=True)
    fake_entry_point(monkeypatch, "broken", broken, version="0.3")
    fake_entry_point(monkeypatch, "good-z", plugin(register_solvers=[("solver-z", object())]), version="2.0")


# -- a broken plugin ---------------------------------------------------------------------------
def test_broken_plugin_is_reported_and_the_others_still_load(three, capsys):
    h = PluginHost().load(strict=False)
    assert list(h.plugins) == ["mpmkit", "good-a", "good-z"]
    assert "prior-a" in h["prior"] and "solver-z" in h["solver"] and "coordinate-ascent" in h["solver"]
    [err] = h.load_errors
    assert err.name == "broken" and err.error == "RuntimeError: boom from broken"
    assert "mpmkit_test_broken.py" in err.traceback
    assert "'broken'" in capsys.readouterr().err  # one warning line on stderr


def test_broken_plugin_is_listed_by_the_plugins_command(three):
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "broken: FAILED TO LOAD: RuntimeError: boom from broken" in result.stdout
    assert "good-a 1.0 (entry-point)" in result.stdout and "good-z 2.0 (entry-point)" in result.stdout

    plugins.reset()
    data = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).stdout)
    assert data["errors"] == [{"name": "broken", "error": "RuntimeError: boom from broken"}]
    assert {p["name"]: p["version"] for p in data["plugins"]} == {"mpmkit": None, "good-a": "1.0", "good-z": "2.0"}


# -- strict mode -------------------------------------------------------------------------------
def test_strict_load_reraises_as_plugin_error_naming_the_plugin(three):
    with pytest.raises(PluginError, match=r"Error loading plugin 'broken' \(import\): RuntimeError: boom") as e:
        PluginHost().load(strict=True)
    assert isinstance(e.value.__cause__, RuntimeError)


def test_strict_env_var_raises_every_time_and_the_cli_says_so(three, monkeypatch):
    monkeypatch.setenv("MPMKIT_STRICT_PLUGINS", "1")
    for _ in range(2):  # a failed strict load must not leave a half-loaded host behind
        with pytest.raises(PluginError, match="'broken'"):
            plugins.host()
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 1
    assert "Error loading plugin 'broken'" in result.output and "Traceback" not in result.output


# -- duplicate names ---------------------------------------------------------------------------
def test_duplicate_name_is_rejected_naming_both_plugins_and_nothing_stays():
    h = PluginHost().load(strict=False)
    dup = plugin(register_priors=[("only-in-dup", object()), ("gaussian", object())],
                 register_metrics=[("dup-metric", object())])
    with pytest.raises(PluginError) as e:
        h.register(dup, name="dup")
    msg = str(e.value)
    assert "prior 'gaussian' registered twice" in msg and "'mpmkit'" in msg and "'dup'" in msg
    assert "only-in-dup" not in h["prior"] and "dup-metric" not in h["metric"]
    assert "dup" not in h.plugins and h.pm.get_plugin("dup") is None
    assert h["prior"].entry("gaussian").plugin == "mpmkit"  # the first registration is untouched


def test_duplicate_between_two_installed_plugins_keeps_the_first(monkeypatch):
    fake_entry_point(monkeypatch, "alpha", plugin(register_families=[("same", "A")]), replace=True)
    fake_entry_point(monkeypatch, "beta", plugin(register_families=[("same", "B"), ("beta-only", "C")]))
    h = PluginHost().load(strict=False)
    [err] = h.load_errors
    assert err.name == "beta" and "'alpha'" in err.error and "'beta'" in err.error
    assert h["family"].get("same") == "A" and "beta-only" not in h["family"] and "beta" not in h.plugins


def test_same_object_under_a_second_name_leaves_the_first_registration_intact():
    h = PluginHost().load(strict=False)
    mod = plugin(register_metrics=[("m1", object())])
    h.register(mod, name="first")
    with pytest.raises(PluginError, match="'second'"):
        h.register(mod, name="second")
    assert h.pm.get_plugin("first") is mod and "m1" in h["metric"]
    h.unregister("first")
    assert "m1" not in h["metric"] and h.pm.get_plugin("first") is None


# -- unknown names -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind,typo,meant", [("solver", "coordinate-ascend", "coordinate-ascent"),
                                             ("prior", "gausian", "gaussian"), ("family", "toyy", "toy")])
def test_unknown_name_lists_what_exists_and_suggests(toy_host, kind, typo, meant):
    reg = plugins.registry(kind)
    with pytest.raises(UnknownNameError) as e:
        reg.get(typo)
    msg = str(e.value)
    assert isinstance(e.value, KeyError) and e.value.available == reg.names()
    assert f"unknown {kind} {typo!r}; available: {', '.join(reg.names())}" in msg
    assert f"Did you mean {meant!r}?" in msg and "mpmkit plugins" in msg


def test_unknown_name_without_a_close_match_has_no_suggestion():
    with pytest.raises(UnknownNameError) as e:
        make_solver("xyzzy")
    assert "coordinate-ascent" in str(e.value) and "Did you mean" not in str(e.value)


def test_cli_fit_with_an_unknown_family_lists_the_families(toy_host, tmp_path):
    result = CliRunner().invoke(cli, ["fit", "toyy", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    # Other installed plugins (spiral-gmm, ...) may be listed too; the toy family must be.
    line = result.output
    assert "unknown family 'toyy'; available: " in line
    available = line.split("available: ", 1)[1].split(".", 1)[0].split(", ")
    assert "toy" in available
    assert "Did you mean 'toy'?" in line
    assert not (tmp_path / "run").exists()


# -- loader environment variables --------------------------------------------------------------
def test_load_plugins_env_restricts_loading(monkeypatch):
    fake_entry_point(monkeypatch, "one", plugin(register_metrics=[("m-one", object())]), replace=True)
    fake_entry_point(monkeypatch, "two", plugin(register_metrics=[("m-two", object())]))
    fake_entry_point(monkeypatch, "three", plugin(register_metrics=[("m-three", object())]))
    monkeypatch.setenv("MPMKIT_LOAD_PLUGINS", " two, three ")
    h = PluginHost().load()
    assert list(h.plugins) == ["mpmkit", "three", "two"]
    assert "m-one" not in h["metric"] and {"m-two", "m-three", "ari"} <= set(h["metric"])


def test_load_plugins_env_skips_a_broken_plugin_it_does_not_name(three, monkeypatch):
    monkeypatch.setenv("MPMKIT_LOAD_PLUGINS", "good-z")
    h = PluginHost().load(strict=True)  # strict, yet fine: "broken" is never imported
    assert list(h.plugins) == ["mpmkit", "good-z"] and h.load_errors == []


def test_disable_autoload_leaves_only_the_builtins(three, monkeypatch):
    monkeypatch.setenv("MPMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    h = PluginHost().load(strict=True)
    assert list(h.plugins) == ["mpmkit"] and h.load_errors == []
    assert h["solver"].by_plugin("mpmkit") == h["solver"].names() and "prior-a" not in h["prior"]


def test_trace_env_prints_each_hook_call(monkeypatch, capsys):
    fake_entry_point(monkeypatch, "traced", plugin(register_metrics=[("m", object())]), replace=True)
    monkeypatch.setenv("MPMKIT_TRACE_PLUGINS", "1")
    PluginHost().load()
    err = capsys.readouterr().err
    assert "mpmkit: mpmkit.register_priors(register)" in err and "mpmkit: traced.register_metrics(register)" in err


# -- testing helpers ---------------------------------------------------------------------------
def test_registered_adds_to_the_process_host_for_one_block_only():
    mod = plugin(register_families=[("tmp-family", "F")])
    with registered(mod, name="tmp", version="9.9") as info:
        assert info.registers == {"family": ["tmp-family"]} and info.version == "9.9"
        assert plugins.registry("family").get("tmp-family") == "F"
    assert "tmp-family" not in plugins.registry("family") and "tmp" not in plugins.host().plugins


def test_registered_cleans_up_when_the_block_raises_and_accepts_a_host():
    h = PluginHost().load(strict=False)
    with pytest.raises(ZeroDivisionError), registered(plugin(register_priors=[("p", 1)]), name="x", host=h):
        1 / 0
    assert "p" not in h["prior"] and "x" not in h.plugins
    with pytest.raises(PluginError, match="'x'.*'mpmkit'|'mpmkit'.*'x'"):  # duplicates fail at once
        with registered(plugin(register_priors=[("gaussian", 1)]), name="x", host=h):
            pass


def test_fake_entry_point_is_seen_by_importlib_metadata(monkeypatch):
    obj = plugin(register_metrics=[("fake-metric", object())])
    ep = fake_entry_point(monkeypatch, "fake", obj, version="3.1", replace=True)
    eps = md.entry_points(group="mpmkit")
    assert list(eps.names) == ["fake"] and ep.load() is obj and ep.dist.version == "3.1"
    assert "fake" not in md.entry_points(group="something-else").names
    info = PluginHost().load().plugins["fake"]
    assert (info.version, info.source, info.registers) == ("3.1", "entry-point", {"metric": ["fake-metric"]})


# -- every hook documented -----------------------------------------------------------------------
def hook_names() -> list[str]:
    return sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "mpmkit_spec"))


def test_every_hookspec_has_a_docstring_and_a_registry_kind():
    names = hook_names()
    assert names and names == sorted(hookspecs.KINDS)
    assert names == sorted(n for n in dir(PluginHost().pm.hook) if not n.startswith("_"))
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and "register(" in doc, f"hookspec {name} needs a docstring saying what register() takes"


@pytest.mark.parametrize("hook", hook_names())
def test_docs_cover_every_hook(hook):
    heading = rf"^#+ `{hook}\(register\)`"
    assert re.search(heading, DOCS.read_text(), re.M), f"docs/plugins.md lacks a heading for {hook}"


def test_docs_cover_the_loader_variables_group_and_testing_helpers():
    text = DOCS.read_text()
    source = inspect.getsource(plugins)
    for var in sorted(set(re.findall(r"MPMKIT_[A-Z_]+", source))):
        assert f"`{var}" in text, f"docs/plugins.md does not document {var}"
    assert f'[project.entry-points.{plugins.GROUP}]' in text
    import mpmkit.testing

    for helper in mpmkit.testing.__all__:
        assert f"`{helper}(" in text, f"docs/plugins.md does not document mpmkit.testing.{helper}"


def test_a_misspelled_hook_is_refused_with_the_hook_it_meant():
    # pluggy keeps an impl without a spec and never calls it: the plugin would register nothing, silently
    mod = types.ModuleType("typo_plugin")

    @hookimpl
    def register_family(register):  # singular: not a hook
        register("x", object)

    mod.register_family = register_family
    with pytest.raises(PluginError, match="'register_family' is marked @hookimpl but is not an mpmkit hook. "
                                          "Did you mean 'register_families'"):
        PluginHost().register(mod, name="typo", strict=True)
    h = PluginHost()
    assert h.register(mod, name="typo", strict=False) is None and h.load_errors[0].name == "typo"
    assert "typo" not in h.plugins and h.pm.get_plugin("typo") is None  # nothing of it stays


def test_load_plugins_env_names_an_entry_point_that_is_not_installed(monkeypatch):
    fake_entry_point(monkeypatch, "alpha", plugin(register_priors=[("alpha-prior", object)]), replace=True)
    monkeypatch.setenv("MPMKIT_LOAD_PLUGINS", "alpha,alhpa")
    h = PluginHost().load(strict=False)
    assert "alpha" in h.plugins
    [err] = h.load_errors
    assert err.name == "alhpa" and "not an installed mpmkit plugin; installed: alpha" in err.error
    with pytest.raises(PluginError, match="'alhpa'"):
        PluginHost().load(strict=True)


def test_the_plugins_command_hints_at_a_plugin_that_registers_nothing(monkeypatch):
    mod = types.ModuleType("unmarked")
    mod.register_families = lambda register: register("never", object)  # no @hookimpl: pluggy ignores it
    fake_entry_point(monkeypatch, "unmarked", mod, replace=True)
    out = CliRunner().invoke(cli, ["plugins"]).output
    assert "unmarked" in out and "registers nothing: are its hook functions" in out


def test_the_flat_prior_takes_scale_like_the_others_but_refuses_a_misspelt_option():
    from mpmkit import registry
    import torch

    from mpmkit.priors import FlatPrior

    flat = registry("prior").get("flat")
    assert isinstance(flat(3, scale=2.0), FlatPrior) and float(flat(3).log_prob(torch.randn(2, 4, 3)).abs().sum()) == 0
    with pytest.raises(TypeError, match="scael"):
        flat(3, scael=2.0)
