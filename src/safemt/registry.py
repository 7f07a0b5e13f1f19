"""One registry idiom for every pluggable kind: backends, judges, defenses, guard adapters.

A name maps to an implementation in one of three ways, tried in this order:
- registered where it is defined, with the decorator `@REGISTRY.register("name")`;
- a lazy `"module:object"` entry, imported on first use, so that an optional dependency (vllm,
  openai) is imported only when a config names it;
- a module of the registry's package with that name (`safemt/judges/<name>.py`), imported on first
  use, whose decorator registers it: adding an implementation is one new file plus the config line
  that names it.
An unknown name is one line: "unknown <kind> 'x' (defined: a, b, c)", with the config key.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import Any, Callable, Generic, TypeVar

from safemt.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one kind; `get` resolves a name, loading its module when needed."""

    def __init__(self, kind: str, package: str | None = None, lazy: dict[str, str] | None = None,
                 name_attr: str | None = None):
        self.kind = kind
        self.package = package  # where `<name>.py` is looked for when the name is not known yet
        self.name_attr = name_attr  # class attribute set to the registered name (e.g. a backend's `name`)
        self._loaded: dict[str, T] = {}
        self._lazy: dict[str, str] = dict(lazy or {})

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the class (or object) under `name`, where it is defined."""
        def add(obj: T) -> T:
            known = self._loaded.get(name)
            if known is not None and known is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({known!r} and {obj!r})")
            if self.name_attr is not None:
                setattr(obj, self.name_attr, name)
            self._loaded[name] = obj
            return obj
        return add

    def names(self) -> list[str]:
        """Every name known without importing anything new: registered and lazy entries."""
        return sorted({*self._loaded, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def get(self, name: Any, key: str | None = None) -> T:
        """The implementation registered as `name`; an unknown name is a ConfigError naming `key`."""
        found = self._find(name) if isinstance(name, str) else None
        if found is None:
            raise self.unknown(name, key)
        return found

    def unknown(self, name: Any, key: str | None = None, file: str | None = None,
                also: tuple[str, ...] = (), hint: str = "") -> ConfigError:
        """The one error style: unknown <kind> 'x' (defined: a, b, c[; hint])."""
        defined = ", ".join([*self.names(), *also]) or "none"
        return ConfigError(f"unknown {self.kind} {name!r} (defined: {defined}{'; ' + hint if hint else ''})",
                           key=key, file=file)

    def __iter__(self):
        return iter(self.names())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def _find(self, name: str) -> T | None:
        if name in self._loaded:
            return self._loaded[name]
        if name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            obj = getattr(import_module(module), attr)
            return self._loaded.setdefault(name, obj)
        if self.package and name.isidentifier() and find_spec(f"{self.package}.{name}") is not None:
            import_module(f"{self.package}.{name}")  # its decorator registers it
            return self._loaded.get(name)
        return None
