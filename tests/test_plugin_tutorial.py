"""The tutorial plugin (tutorials/02_write_a_plugin/mpmkit-blobs) is found through its entry point.

Nothing in mpmkit knows about it: the package is pip-installed into a temporary directory, and
``python -m mpmkit`` runs in a subprocess with that directory on PYTHONPATH. ``importlib.metadata``
then finds ``mpmkit_blobs-0.1.0.dist-info/entry_points.txt`` exactly as for a normal install.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import math
import os
import shutil
import subprocess
import re
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "02_write_a_plugin"
PACKAGE = TUTORIAL / "mpmkit-blobs"
PYPROJECT = (PACKAGE / "pyproject.toml").read_text()
VERSION = re.search(r'^version = "(.+)"$', PYPROJECT, re.M).group(1)

# Empirical, with the family's defaults and epochs=2: over seeds 0-9 and the variants dim=1,
# recognition=mlp, prior=shrinkage and prior=gaussian, the test ARI was 0.50-0.80 (0.71 at seed 0)
# while uniformly random labels scored |ARI| <= 0.021.
MIN_ARI = 0.4


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin installed (no dependencies, no network) into a fresh directory."""
    tmp = tmp_path_factory.mktemp("blobs")
    src = tmp / "src"  # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    target = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), str(src)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def mpmkit(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPMKIT_")}
    env.update(PYTHONPATH=os.pathsep.join([str(site), *(p for p in sys.path if p)]),
               MPMKIT_STRICT_PLUGINS="1",  # the plugin must load cleanly
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # torch.set_num_threads(1) in the child
    proc = subprocess.run([sys.executable, "-m", "mpmkit", *args], env=env, cwd=site.parent, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"mpmkit {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_not_visible_to_this_process_without_the_install():
    assert "blobs" not in md.entry_points(group="mpmkit").names  # so the subprocess finds it only via site/


def test_plugins_command_lists_blobs_with_version_and_components(site):
    assert (site / f"mpmkit_blobs-{VERSION}.dist-info" / "entry_points.txt").read_text().split() == \
        ["[mpmkit]", "blobs", "=", "mpmkit_blobs"]
    data = json.loads(mpmkit(site, "plugins", "--json").stdout)
    assert data["errors"] == []
    blobs = {p["name"]: p for p in data["plugins"]}["blobs"]
    assert blobs["version"] == VERSION and blobs["source"] == "entry-point"
    assert blobs["registers"] == {"family": ["blobs"], "prior": ["shrinkage"], "dataset": ["blobs"]}


def test_fit_then_evaluate_through_the_cli(site):
    run = site.parent / "run"
    fit = mpmkit(site, "fit", "blobs", "--out", str(run), "--set", "epochs=2")
    assert "trained blobs: 20 steps" in fit.stdout
    assert json.loads((run / "config.json").read_text())["family"] == "blobs"
    (run / "metrics.json").unlink()  # written by fit's own evaluation; evaluate must write it again

    mpmkit(site, "evaluate", str(run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["family"] == "blobs" and metrics["checkpoint"].startswith("best-")
    assert math.isfinite(metrics["ari"]) and metrics["ari"] > MIN_ARI, metrics
    assert abs(metrics["chance_ari"]) < 0.1 and metrics["num_test_datasets"] == 20
    theta = metrics["theta"]
    assert math.isfinite(theta["a"]) and theta["a"] != 1.0 and len(theta["b"]) == 2  # θ moved from its init


def test_readme_shows_the_packages_real_entry_point():
    readme = (TUTORIAL / "README.md").read_text()
    table = '[project.entry-points.mpmkit]\nblobs = "mpmkit_blobs"'
    assert table in PYPROJECT and table in readme
    assert "mpmkit fit blobs" in readme and "mpmkit.testing" in readme
