"""What a program may read from the disk: the session's input files and the folders the caller granted.

Programs are untrusted (a user, a planner or a remote planner server writes them), so a
tool arg that names a file (typed :data:`FilePath`) is read only through a
:class:`ReadPolicy`. The policy resolves symlinks before it decides, never expands ``~``,
refuses ``..`` outright, and answers every refusal with the same sentence, so a program
cannot learn whether a path outside the granted places exists or is a picture.

The planner's schema and grammar leave :data:`FilePath` args out (:func:`is_file_arg`):
a planner cannot know the host's files, and must not be offered them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

FILE_ARG = "x-banana-file"  # JSON Schema marker on literal args that name a file on the host
FilePath = Annotated[str, Field(min_length=1, max_length=500, json_schema_extra={FILE_ARG: True})]
MAX_FILE_BYTES = 256 << 20  # a backdrop is a picture, not a disk image
REFUSAL = ("file {name!r} is not readable by this program: only the session's inputs and directories "
           "granted with --allow-read may be read")


class ReadRefused(ValueError):
    """A program named a file outside the places it may read (one message for every case)."""

    def __init__(self, name: str) -> None:
        super().__init__(REFUSAL.format(name=name[:200]))


def is_file_arg(prop: dict[str, Any]) -> bool:
    """Whether a literal arg's JSON Schema marks it as a host path (also inside ``X | None``)."""
    if prop.get(FILE_ARG):
        return True
    return any(isinstance(p, dict) and is_file_arg(p) for p in prop.get("anyOf", []))


def file_args(spec: Any) -> list[str]:
    """Names of a tool's literal args that name files (a ToolSpec; duck-typed to keep tools/ acyclic)."""
    return list(_file_args(spec.args_model))


@functools.cache
def _file_args(args_model: Any) -> tuple[str, ...]:
    """Per args model, once: building a JSON Schema costs ~0.5 ms, and the executor asks for every node."""
    return tuple(n for n, p in args_model.model_json_schema().get("properties", {}).items() if is_file_arg(p))


class ReadPolicy:
    """The files a program may read: whole granted folders, and single session-input files.

    ``ReadPolicy()`` grants nothing (the default everywhere); ``ReadPolicy(dirs=[...], files=[...])``
    grants folders (and everything below them) and single files. Relative names are looked up in
    each granted folder, then in the working directory; whatever they resolve to (symlinks followed)
    must lie inside a granted folder or be a granted file.
    """

    def __init__(self, dirs: Iterable[str | Path] = (), files: Iterable[str | Path] = ()) -> None:
        self.dirs: tuple[Path, ...] = tuple(Path(d).resolve() for d in dirs)
        self.files: frozenset[Path] = frozenset(Path(f).resolve() for f in files)
        for d in self.dirs:
            if not d.is_dir():
                raise ValueError(f"--allow-read {str(d)!r}: not a directory")
        self._memo: OrderedDict[tuple[Any, ...], tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReadPolicy(dirs={[str(d) for d in self.dirs]}, files={sorted(str(f) for f in self.files)})"

    def _allowed(self, path: Path) -> bool:
        return path in self.files or any(path == d or path.is_relative_to(d) for d in self.dirs)

    def resolve(self, name: str) -> Path:
        """The real path a program's file name stands for; :class:`ReadRefused` unless it is granted."""
        if not isinstance(name, str) or not name or "\x00" in name or name.startswith("~") or ".." in Path(name).parts:
            raise ReadRefused(str(name))
        given = Path(name)
        candidates = [given] if given.is_absolute() else [*(d / given for d in self.dirs), Path.cwd() / given]
        for candidate in candidates:
            real = candidate.resolve()  # follows every symlink, also a dangling one's target
            if self._allowed(real) and real.exists():
                return real
        raise ReadRefused(name)

    def read(self, name: str) -> bytes:
        """The bytes of a granted regular file (the last path component is opened without following links)."""
        return self._read(name)[0]

    def digest(self, name: str) -> str:
        """A content hash of a granted file: what a cache key must include for a node that reads it."""
        return self._read(name)[1]

    def _read(self, name: str) -> tuple[bytes, str]:
        path = self.resolve(name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            raise ReadRefused(name) from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"file {name[:200]!r} is not a regular file")
            if st.st_size > MAX_FILE_BYTES:
                raise ValueError(f"file {name[:200]!r} is {st.st_size / 2**20:.0f} MB; at most {MAX_FILE_BYTES >> 20} MB may be read")
            key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
            with self._lock:
                hit = self._memo.get(key)
            if hit is not None:
                return hit
            data = f.read(MAX_FILE_BYTES + 1)
        entry = (data, hashlib.blake2b(data, digest_size=16).hexdigest())
        with self._lock:
            self._memo[key] = entry
            while len(self._memo) > 8:
                self._memo.popitem(last=False)
        return entry


def file_digests(spec: Any, literals: dict[str, Any], policy: ReadPolicy) -> dict[str, str]:
    """``{arg: content hash}`` for each file arg a node gives: the part of its cache key that files decide.

    Raises :class:`ReadRefused` for a file the program may not read, so the node fails before it runs.
    """
    return {name: policy.digest(literals[name]) for name in file_args(spec) if literals.get(name) is not None}
