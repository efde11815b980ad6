"""A tool's code version, derived from its source, so editing a tool (or a helper it uses) invalidates cached results.

The hash covers the tool function's module and, transitively, every module of the same top-level
package it imports from (``banana.experts.background`` pulls in ``banana.experts.imaging``,
``banana.tools.values``, ...). Third-party libraries are not walked; their versions are part of
the executor's runtime salt instead. Computed once per module per process: the code that runs is
the code that was imported, so a later edit on disk only counts in a new process.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import types
from pathlib import Path


def _module_bytes(module: types.ModuleType) -> bytes:
    """The module's source, or its file's bytes (an extension), or only its name (built in)."""
    try:
        return inspect.getsource(module).encode()
    except (OSError, TypeError):
        pass
    file = getattr(module, "__file__", None)
    if file and Path(file).is_file():
        return Path(file).read_bytes()
    return module.__name__.encode()


def _imports(module: types.ModuleType, package: str) -> set[str]:
    """Names of the modules under ``package`` that ``module`` refers to (imported modules and imported names)."""
    found: set[str] = set()
    for value in list(vars(module).values()):
        try:
            name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        except Exception:  # a lazy object may raise on attribute access; it names no module
            continue
        if isinstance(name, str) and (name == package or name.startswith(package + ".")) and name in sys.modules:
            found.add(name)
    return found


@functools.cache
def source_hash(module_name: str) -> str:
    """A short hash of ``module_name``'s source and of the same-package modules it imports, transitively."""
    package = module_name.split(".")[0]
    seen: set[str] = set()
    todo = [module_name]
    while todo:
        name = todo.pop()
        if name in seen or name not in sys.modules:
            continue
        seen.add(name)
        todo.extend(_imports(sys.modules[name], package) - seen)
    h = hashlib.blake2b(digest_size=12)
    for name in sorted(seen):
        h.update(f"|{name}|".encode())
        h.update(_module_bytes(sys.modules[name]))
    if not seen:  # not imported as a module (e.g. defined in __main__ under another name): its name only
        h.update(module_name.encode())
    return h.hexdigest()
