"""Name -> component registries owned by the core; unknown names list what exists."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

from .errors import PluginError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Components of one kind, each with the plugin that registered it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, plugin: str = "<unknown>") -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} with an invalid name {name!r}")
        if name in self._entries:
            first = self._entries[name].plugin
            raise PluginError(
                f"{self.kind} {name!r} registered twice: by plugin {first!r} and by plugin {plugin!r}; "
                "rename one of them or uninstall one plugin"
            )
        self._entries[name] = Entry(name, obj, plugin)

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name].obj
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries,
                                   hint="Run `mpmkit plugins` to see what each plugin registers.") from None

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def by_plugin(self, plugin: str) -> list[str]:
        return sorted(n for n, e in self._entries.items() if e.plugin == plugin)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
