"""Open a finished (or interrupted) run directory: its config, family, data and weights."""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .config import Config, build_config
from .errors import CheckpointError, ConfigError, PluginError
from .family import Family, Splits
from .model import MPM
from .plugins import registry
from .training import load_model_tensors
from .utils import resolve_device, seed_everything


@dataclass
class Run:
    family: Family
    cfg: Config
    model: MPM
    splits: Splits
    checkpoint: Path


def family_class(name: str) -> type[Family]:
    """The registered family ``name``, checked: a :class:`Family` subclass whose ``options`` is a dataclass."""
    entry = registry("family").entry(name)
    obj = entry.obj
    if not (isinstance(obj, type) and issubclass(obj, Family)):
        raise PluginError(f"family {name!r} of plugin {entry.plugin!r} must be registered as a subclass of "
                          f"mpmkit.Family (the class, not an instance), got {obj!r}")
    if not (isinstance(getattr(obj, "options", None), type) and dataclasses.is_dataclass(obj.options)):
        raise PluginError(f"family {name!r} ({obj.__name__}, plugin {entry.plugin!r}) needs `options = "
                          "SomeDataclass`, whose fields are its config keys (an empty @dataclass if it has none); "
                          f"got {getattr(obj, 'options', None)!r}")
    unknown = sorted(set(obj.data_keys) - {f.name for f in dataclasses.fields(obj.options)})
    if unknown:
        raise PluginError(f"family {name!r} ({obj.__name__}, plugin {entry.plugin!r}): data_keys {unknown} are not "
                          f"fields of {obj.options.__name__}; list the options that decide the test split")
    return obj


def make_family(name: str) -> Family:
    return family_class(name)()


def config_for(family_name: str, values: dict[str, Any]) -> Config:
    fam_cls = family_class(family_name)
    return build_config(family_name, fam_cls.options, values, fam_cls.defaults)


def open_run(run_dir: str | Path, which: str = "best", device: str | None = None,
             overrides: dict[str, Any] | None = None) -> Run:
    """Rebuild the family, data and model of ``run_dir`` and load the ``best`` (or ``latest``) weights.

    ``overrides`` change config keys first (e.g. ``{"solver": "pyro-nuts"}`` to infer with another
    backend); a change that alters the model's parameters fails when the weights are loaded.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{str(run_dir)!r} is not a run directory ({cfg_path.name} missing); "
                              "create one with `mpmkit fit FAMILY --out DIR`")
    if which not in ("best", "latest"):
        raise ValueError(f"which checkpoint: 'best' or 'latest', got {which!r}")
    try:
        saved = json.loads(cfg_path.read_text())
        family_name = saved["family"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{str(cfg_path)!r} is corrupted ({type(exc).__name__}: {exc}); restore it from "
                              "a checkpoint's state.json (key 'config')") from exc
    values = {**saved.get("train", {}), **saved.get("options", {})}
    cfg = config_for(family_name, {**values, **(overrides or {})})
    if overrides:
        _keep_split(cfg, config_for(family_name, values), overrides)
    if device is not None:
        cfg.train.device = device
    ckpt_dir = run_dir / "checkpoints"
    # a run stopped before its first validation has no best checkpoint yet: its latest is the one there is
    pointer = "latest" if which == "best" and not (ckpt_dir / "best.json").exists() else which
    path = ckpt.resolve(ckpt_dir, pointer)
    tensors, state = ckpt.load(path)
    if state.get("family") != cfg.family_name:
        raise CheckpointError(f"checkpoint {str(path)!r} is from family {state.get('family')!r}, "
                              f"but the run is {cfg.family_name!r}")
    family = make_family(cfg.family_name)
    seed_everything(cfg.train.seed)
    splits = family.build_data(cfg)
    model = family.build_model(cfg)
    load_model_tensors(model, tensors)
    model.to(resolve_device(cfg.train.device)).eval()
    return Run(family=family, cfg=cfg, model=model, splits=splits, checkpoint=path)


def _keep_split(cfg: Config, saved: Config, overrides: dict[str, Any]) -> None:
    """Refuse overrides that would change which datasets are in the run's test split."""
    keys = ("seed", *family_class(cfg.family_name).data_keys)
    changed = [k for k in keys if k in overrides and getattr(cfg, k) != getattr(saved, k)]
    if changed:
        now = ", ".join(f"{k}={getattr(saved, k)!r}" for k in changed)
        raise ConfigError(f"{', '.join(map(repr, changed))} decide{'s' if len(changed) == 1 else ''} the run's "
                          f"train/test split (it was trained with {now}); changing "
                          f"{'it' if len(changed) == 1 else 'them'} at evaluation could score the model on its own "
                          f"training data. Leave {'it' if len(changed) == 1 else 'them'} out of --set, or fit a new "
                          "run with the new value")


def _as_typed(value: Any) -> str:
    """A --set value as one would type it: strings bare, the rest as JSON (true, null, [1.0,0.01])."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def evaluate_run(run_dir: str | Path, which: str = "best", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a run on its test split and write ``metrics.json`` into it.

    With ``overrides`` the result goes to ``metrics-key=value[,...].json`` instead and the
    family's other outputs (figures, topic lists) to the folder ``eval-key=value[,...]/``, so
    the run's own metrics and outputs are never replaced by those of a variant.
    """
    run_dir = Path(run_dir)
    run = open_run(run_dir, which, overrides=overrides)
    out_dir, name = run_dir, "metrics.json"
    if overrides:
        tag = ",".join(f"{k}={_as_typed(v)}" for k, v in sorted(overrides.items()))
        tag = "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in tag)
        out_dir, name = run_dir / f"eval-{tag}", f"metrics-{tag}.json"
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        metrics = run.family.evaluate(run.model, run.splits, run.cfg, out_dir)
        try:
            metrics = ckpt.plain(metrics)
        except TypeError as exc:
            raise PluginError(f"family {run.cfg.family_name!r}: evaluate() returned a value that is not JSON: {exc}; "
                              "nothing was written") from exc
    except BaseException:
        if made and not any(out_dir.iterdir()):  # a failed variant evaluation leaves no empty folder behind
            out_dir.rmdir()
        raise
    metrics = {"family": run.cfg.family_name, "checkpoint": run.checkpoint.name, **metrics}
    if overrides:
        metrics["overrides"] = dict(overrides)
    ckpt.atomic_write_json(run_dir / name, metrics)
    print(f"mpmkit: metrics written to {run_dir / name}" + (f", outputs to {out_dir}/" if overrides else ""),
          file=sys.stderr)
    return metrics
