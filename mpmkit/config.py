"""Run configuration: core training options plus a family's options, validated.

Keys live in one flat namespace (``--set lr=1e-3 --set solver=coordinate-ascent``); a family's
options are a dataclass whose fields become keys. Files may be YAML or TOML.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError


@dataclass
class TrainConfig:
    """Options of Algorithm 1 common to every family."""

    seed: int = 0
    epochs: int = 10
    max_steps: int = 0  #: stop after this many outer steps (0: run all epochs)
    batch_size: int = 32
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=list)  #: epochs at which lr *= lr_gamma
    lr_gamma: float = 0.5
    grad_clip: float = 0.0  #: max gradient norm (0: off)
    solver: str = "coordinate-ascent"
    solver_options: dict[str, Any] = field(default_factory=dict)  #: keyword options of the solver, e.g. {num_steps: 50}
    backward: Literal["full", "truncated", "implicit"] = "full"
    inner_steps: int = 3
    beta: float = 1.0  #: β of Sec. 5.1, scaling −KL(q ‖ p(z | λ)) (= the entropy up to a constant for uniform p(z))
    device: str = "auto"
    log_every: int = 10  #: outer steps between metric rows
    checkpoint_every: int = 0  #: outer steps between checkpoints (0: once per epoch)
    keep_checkpoints: int = 2
    progress: bool = True
    tensorboard: bool = True
    amp: bool = False  #: bf16 autocast for g_φ and p_θ (the inner loop stays fp32); CUDA mainly, allowed on CPU
    compile: bool = False  #: torch.compile the recognition network and the likelihood
    check_data: bool = True  #: scan the data for NaN/Inf and empty datasets before training

    def validate(self) -> None:
        """Reject values that would crash or silently misbehave later (e.g. keep no checkpoint)."""
        at_least = {"epochs": 1, "batch_size": 1, "log_every": 1, "keep_checkpoints": 1, "inner_steps": 1,
                    "max_steps": 0, "checkpoint_every": 0, "seed": 0}
        for key, low in at_least.items():
            if getattr(self, key) < low:
                raise ConfigError(f"config key {key!r} must be >= {low}, got {getattr(self, key)}")
        for key in ("lr", "lr_gamma"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"config key {key!r} must be > 0, got {getattr(self, key)}")
        for key in ("grad_clip", "beta"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"config key {key!r} must be >= 0, got {getattr(self, key)}")
        if any(m < 0 for m in self.lr_milestones):
            raise ConfigError(f"config key 'lr_milestones' must hold epochs >= 0, got {self.lr_milestones}")


@dataclass
class Config:
    """A validated run configuration: ``train`` options and ``family`` options."""

    family_name: str
    train: TrainConfig
    family: Any

    def __getattr__(self, key: str) -> Any:  # flat read access: cfg.lr, cfg.num_datasets
        for section in ("train", "family"):
            obj = self.__dict__.get(section)
            if obj is not None and key in {f.name for f in fields(obj)}:
                return getattr(obj, key)
        raise AttributeError(key)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family_name, "train": dataclasses.asdict(self.train),
                "options": dataclasses.asdict(self.family)}

    def flat(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.train), **dataclasses.asdict(self.family)}


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml), TOML (.toml) or JSON config into a flat dict."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        text = path.read_bytes().decode("utf-8")
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10: the same parser, packaged as tomli
                import tomli as tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {str(path)!r}: unknown format {suffix!r}; use .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser errors differ per format
        raise ConfigError(f"config file {str(path)!r} could not be parsed: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of key: value, got {type(data).__name__}")
    # Accept either flat keys or the sectioned form written by Config.to_dict().
    flat: dict[str, Any] = {}
    for k, v in data.items():
        if not isinstance(k, str):
            raise ConfigError(f"config file {str(path)!r}: key {k!r} is not a string; write `name: value` lines")
        if k in ("train", "options") and isinstance(v, dict) and not all(isinstance(x, str) for x in v):
            raise ConfigError(f"config file {str(path)!r}: section {k!r} has a key that is not a string")
        if k in ("train", "options") and isinstance(v, dict):
            flat.update(v)
        elif k == "family":
            continue
        else:
            flat[k] = v
    return flat


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "lr_milestones=[5, 10]"]`` → dict; values parsed as YAML scalars/lists."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except Exception:  # noqa: BLE001
            value = raw
        out[key] = _number(value) if isinstance(value, str) else value
    return out


def _number(text: str):
    """YAML 1.1 reads ``1e-3`` as a string; accept it as a number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def build_config(family_name: str, family_options: type, values: dict[str, Any],
                 family_defaults: dict[str, Any] | None = None) -> Config:
    """Validate ``values`` against TrainConfig and the family's option dataclass."""
    train_names = {f.name for f in fields(TrainConfig)}
    fam_names = {f.name for f in fields(family_options)}
    clash = train_names & fam_names
    if clash:
        raise ConfigError(f"family {family_name!r} option(s) {sorted(clash)} clash with core training options")
    merged = {**(family_defaults or {}), **values}
    unknown = [k for k in merged if k not in train_names | fam_names]
    if unknown:
        k = unknown[0]
        allowed = sorted(train_names | fam_names)
        close = difflib.get_close_matches(k, allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown config key {k!r} for family {family_name!r}.{hint} Allowed keys: {', '.join(allowed)}")
    train = _instantiate(TrainConfig, {k: v for k, v in merged.items() if k in train_names})
    fam = _instantiate(family_options, {k: v for k, v in merged.items() if k in fam_names})
    return Config(family_name=family_name, train=train, family=fam)


def _instantiate(cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {name: coerce(name, hints[name], value) for name, value in values.items()}
    required = [f.name for f in fields(cls) if f.init and f.name not in kwargs
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise ConfigError(f"config key(s) {', '.join(map(repr, required))} have no default and must be given, "
                          f"e.g. --set {required[0]}=...")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def coerce(key: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against annotation ``tp`` (int, float, bool, str, Literal, list, Optional)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(key, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[float, float]: fixed length, per-slot types
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key {key!r} must be a list of {len(args)} values, e.g. --set "
                              f"'{key}=[{', '.join('...' for _ in args)}]', got {value!r}")
        return tuple(coerce(f"{key}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
    if origin in (list, tuple):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and args:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        inner = args[0] if args else Any
        return [coerce(f"{key}[{i}]", inner, v) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"config key {key!r} must be a mapping of name: value, e.g. "
                              f"--set '{key}={{num_steps: 50}}', got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {k: coerce(f"{key}.{k}", inner, v) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
            return value.lower() in {"true", "yes", "1"}
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        if not isinstance(value, (int, float)):
            try:
                return float(value)
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(f"config key {key!r} must be a number, got {value!r}") from None
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"config key {key!r} is too large for a float: {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    return value
