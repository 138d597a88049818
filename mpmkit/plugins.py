"""Plugin discovery with pluggy: entry points in group ``mpmkit``, each loaded on its own.

* A plugin that fails to import or register is recorded in :data:`load_errors` and the
  others still load; ``strict=True`` (or ``MPMKIT_STRICT_PLUGINS=1``) re-raises instead.
* ``MPMKIT_LOAD_PLUGINS=a,b`` loads only the named entry points; ``MPMKIT_DISABLE_PLUGIN_AUTOLOAD=1``
  loads none (the core's built-ins are always there).
* ``MPMKIT_TRACE_PLUGINS=1`` prints each hook call.
"""
from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import sys
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import Registry

GROUP = "mpmkit"


@dataclass
class PluginInfo:
    name: str
    version: str | None
    source: str  # "builtin", "entry-point", "manual"
    registers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class LoadError:
    name: str
    error: str
    traceback: str


class PluginHost:
    """The plugin manager plus the registries it fills."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("mpmkit")
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry] = {kind: Registry(kind) for kind in hookspecs.KINDS.values()}
        self.plugins: dict[str, PluginInfo] = {}
        self.load_errors: list[LoadError] = []
        self._loaded = False
        self._trace = _env_flag("MPMKIT_TRACE_PLUGINS")
        if self._trace:
            self.pm.trace.root.setwriter(lambda s: print(s, end="", file=sys.stderr))
            self.pm.enable_tracing()

    # -- loading ---------------------------------------------------------------------------
    def load(self, strict: bool | None = None) -> "PluginHost":
        """Load built-ins and entry-point plugins once."""
        if self._loaded:
            return self
        self._loaded = True
        strict = _env_flag("MPMKIT_STRICT_PLUGINS") if strict is None else strict
        from . import builtins

        self.register(builtins, name="mpmkit", source="builtin", strict=True)
        if _env_flag("MPMKIT_DISABLE_PLUGIN_AUTOLOAD"):
            return self
        only = {s.strip() for s in os.environ.get("MPMKIT_LOAD_PLUGINS", "").split(",") if s.strip()}
        for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
            if only and ep.name not in only:
                continue
            if ep.name in self.plugins:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is reported, not fatal
                self._fail(ep.name, exc, strict, what="import")
                continue
            version = ep.dist.version if ep.dist is not None else None
            self.register(module, name=ep.name, version=version, source="entry-point", strict=strict)
        installed = {ep.name for ep in md.entry_points(group=GROUP)}
        for missing in sorted(only - installed):  # a typo in the variable would otherwise load nothing, silently
            self._fail(missing, PluginError(f"MPMKIT_LOAD_PLUGINS names {missing!r}, which is not an installed "
                                            f"mpmkit plugin; installed: {', '.join(sorted(installed)) or 'none'}"),
                       strict, what="lookup")
        return self

    def register(self, plugin: ModuleType | Any, name: str | None = None, version: str | None = None,
                 source: str = "manual", strict: bool = True) -> PluginInfo | None:
        """Register a plugin object and run its ``register_*`` hooks into the registries.

        Either everything it registers lands, or (on error) nothing does.
        """
        name = name or getattr(plugin, "__name__", repr(plugin))
        if name in self.plugins:
            raise PluginError(f"a plugin named {name!r} is already registered")
        info = PluginInfo(name=name, version=version, source=source)
        added: list[tuple[str, str]] = []
        in_pm = False
        try:
            _check_hook_names(self.pm, plugin)
            self.pm.register(plugin, name=name)
            in_pm = True
            for hook_name, kind in hookspecs.KINDS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin is not plugin:
                        continue
                    registry = self.registries[kind]

                    def add(comp_name: str, obj: object, _r=registry, _k=kind) -> None:
                        _r.add(comp_name, obj, plugin=name)
                        added.append((_k, comp_name))
                        info.registers.setdefault(_k, []).append(comp_name)

                    if self._trace:  # hooks are called one plugin at a time, outside pluggy's own tracing
                        print(f"mpmkit: {name}.{hook_name}(register)", file=sys.stderr)
                    impl.function(register=add)
        except Exception as exc:  # noqa: BLE001
            for kind, comp in added:
                self.registries[kind].remove(comp)
            if in_pm:  # never unregister the same object registered earlier under another name
                self.pm.unregister(plugin)
            self._fail(name, exc, strict, what="registration")
            return None
        self.plugins[name] = info
        return info

    def unregister(self, name: str) -> None:
        info = self.plugins.pop(name, None)
        if info is None:
            return
        for kind, names in info.registers.items():
            for n in names:
                self.registries[kind].remove(n)
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)

    def _fail(self, name: str, exc: BaseException, strict: bool, what: str) -> None:
        msg = f"Error loading plugin {name!r} ({what}): {type(exc).__name__}: {exc}"
        if strict:
            raise PluginError(msg) from exc
        self.load_errors.append(LoadError(name, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        print(f"mpmkit: warning: {msg} (other plugins still loaded)", file=sys.stderr)

    # -- lookup ----------------------------------------------------------------------------
    def __getitem__(self, kind: str) -> Registry:
        return self.registries[kind]


def _check_hook_names(pm: pluggy.PluginManager, plugin: object) -> None:
    """Refuse a function marked ``@hookimpl`` whose name is not one of mpmkit's hooks (pluggy would
    keep it, never call it, and the plugin would register nothing without a word)."""
    for attr in dir(plugin):
        if attr not in hookspecs.KINDS and pm.parse_hookimpl_opts(plugin, attr) is not None:
            close = difflib.get_close_matches(attr, list(hookspecs.KINDS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise PluginError(f"{attr!r} is marked @hookimpl but is not an mpmkit hook.{hint} "
                              f"Hooks: {', '.join(hookspecs.KINDS)}")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


_host: PluginHost | None = None


def host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
        try:
            _host.load()
        except BaseException:
            _host = None  # a strict failure must raise again next time, not leave a half-loaded host
            raise
    return _host.load()


def reset() -> None:
    """Forget loaded plugins (tests)."""
    global _host
    _host = None


def registry(kind: str) -> Registry:
    """The registry of one kind: prior, likelihood, potential, solver, family, dataset, metric."""
    return host()[kind]
