"""Helpers for testing plugins: register one for a single test, or fake an installed entry point.

::

    from mpmkit.testing import registered

    def test_my_family():
        with registered(my_plugin) as info:
            assert "my-family" in info.registers["family"]
            family = mpmkit.registry("family").get("my-family")()

    def test_loader(monkeypatch):
        fake_entry_point(monkeypatch, "mine", my_plugin, version="1.2.3")
        host = PluginHost().load()            # finds "mine" as if it were pip-installed
"""
from __future__ import annotations

import importlib.metadata as md
import itertools
import sys
import types
from contextlib import contextmanager
from typing import Any, Iterator

from .plugins import GROUP, PluginHost, PluginInfo
from .plugins import host as process_host

__all__ = ["fake_entry_point", "registered"]

_counter = itertools.count()


@contextmanager
def registered(plugin: Any, name: str | None = None, *, version: str | None = None,
               host: PluginHost | None = None) -> Iterator[PluginInfo]:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions) for the ``with`` block.

    Uses the process host (what ``mpmkit.registry`` and the CLI read) unless ``host`` is given.
    Registration is strict: a duplicate name raises :class:`~mpmkit.errors.PluginError` at once.
    Everything the plugin registered is removed on exit, even if the block raises.
    """
    h = host if host is not None else process_host()
    info = h.register(plugin, name=name, version=version, source="manual", strict=True)
    try:
        yield info
    finally:
        h.unregister(info.name)


class _FakeDistribution:
    """Just enough of :class:`importlib.metadata.Distribution` for the loader (name, version)."""

    def __init__(self, name: str, version: str):
        self.name, self.version = name, version
        self.metadata = {"Name": name, "Version": version}

    def __repr__(self) -> str:
        return f"<fake distribution {self.name} {self.version}>"


def fake_entry_point(monkeypatch: Any, name: str, value: Any, *, version: str | None = "0.0.0",
                     group: str = GROUP, replace: bool = False) -> md.EntryPoint:
    """Make ``importlib.metadata.entry_points(group=...)`` also return an entry point ``name``.

    ``value`` is an entry-point string (``"pkg.module"`` or ``"pkg.module:attr"``) or any object
    (a module, a class with ``@hookimpl`` methods ...), which is put in ``sys.modules`` under a
    throw-away name so that ``EntryPoint.load()`` returns it. ``version`` is what the loader
    reports for the plugin (``None``: no distribution). ``replace=True`` hides the entry points
    that are really installed in ``group`` (call it first; later calls add to the fakes).
    ``monkeypatch`` is pytest's fixture; everything is undone when the test ends.
    """
    if not isinstance(value, str):
        module_name = f"_mpmkit_fake_entry_point_{next(_counter)}"
        module = types.ModuleType(module_name)
        module.plugin = value  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module_name, module)
        value = f"{module_name}:plugin"
    ep = md.EntryPoint(name=name, value=value, group=group)
    if version is not None:
        vars(ep).update(dist=_FakeDistribution(f"fake-{name}", version))  # how the stdlib attaches dist
    original = md.entry_points

    def entry_points(**params: Any):
        found = original(**params)
        if not params:  # the unfiltered form: leave it alone
            return found
        extra = md.EntryPoints((ep,)).select(**params)
        if replace and params.get("group") == group:
            found = ()
        return md.EntryPoints((*found, *extra))

    monkeypatch.setattr(md, "entry_points", entry_points)
    return ep
