"""The one tool registry: built-ins and plug-ins both arrive through entry points.

Banana's own catalogue is registered the same way a user's plug-in is: an entry
point in the group ``banana.tools`` naming a module (every ToolSpec in it is
registered), a ToolSpec, or a list of them.
"""

from __future__ import annotations

import difflib
import logging
import types
from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from banana.tools.spec import ToolSpec

ENTRY_POINT_GROUP = "banana.tools"
log = logging.getLogger(__name__)


class RegistryError(Exception):
    pass


class Registry:
    """Name -> ToolSpec, with the plug-in loading and lookup errors in one place."""

    def __init__(self, specs: Iterable[ToolSpec] = ()) -> None:
        self._specs: dict[str, ToolSpec] = {}
        self.sources: dict[str, str] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ToolSpec, source: str = "code", replace: bool = False) -> ToolSpec:
        if not isinstance(spec, ToolSpec):
            raise RegistryError(f"{source}: expected a ToolSpec (use the @tool decorator), got {type(spec).__name__}")
        if spec.name in self._specs and not replace:
            raise RegistryError(
                f"tool {spec.name!r} from {source} is already registered by {self.sources[spec.name]}; "
                "pick another name or pass replace=True"
            )
        self._specs[spec.name] = spec
        self.sources[spec.name] = source
        return spec

    def register_object(self, obj: Any, source: str) -> list[ToolSpec]:
        """Register a ToolSpec, every ToolSpec in a module, or each of a list of them."""
        if isinstance(obj, ToolSpec):
            found = [obj]
        elif isinstance(obj, types.ModuleType):
            names = getattr(obj, "__all__", None)  # a module that imports other tools lists its own in __all__
            found = [v for k, v in vars(obj).items() if isinstance(v, ToolSpec) and (names is None or k in names)]
        elif isinstance(obj, (list, tuple)):
            found = list(obj)
        else:
            raise RegistryError(f"{source}: entry point must name a module, a ToolSpec or a list, got {type(obj).__name__}")
        return [self.register(spec, source) for spec in found]

    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> list[str]:
        """Load every ``banana.tools`` entry point; a broken plug-in raises naming the plug-in."""
        loaded: list[str] = []
        for ep in eps if eps is not None else entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point {ep.name!r} ({ep.value})"
            try:
                obj = ep.load()
            except Exception as exc:
                raise RegistryError(f"{source} failed to import: {exc}") from exc
            loaded += [s.name for s in self.register_object(obj, source)]
        return loaded

    def get(self, name: str) -> ToolSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise RegistryError(f"unknown tool {name!r}{self.suggest(name)}") from None

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._specs, n=3, cutoff=0.5)
        return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return sorted(self._specs)


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry: everything installed under ``banana.tools``."""
    global _default
    if _default is None:
        reg = Registry()
        reg.load_entry_points()
        _default = reg
    return _default
