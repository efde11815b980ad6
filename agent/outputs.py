"""Where results go: output paths checked before any work, and files written atomically.

A result is written to a temporary file beside its destination and renamed into place, so an
interrupted or failed write never leaves a half-written picture or program behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from banana.tools.values import Image

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def check_output(path: Path, what: str = "-o", suffixes: tuple[str, ...] = PICTURE_SUFFIXES) -> Path:
    """Refuse, before any work, an output path that cannot be written (a folder, an unknown kind, no such place)."""
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; name a file in it, e.g. {path / ('out' + suffixes[0])}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {path}: unknown file kind {path.suffix or '(no extension)'!r}; use one of {', '.join(suffixes)}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: no permission to write in {parent}")
    return path


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder (same suffix, so formats follow it), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a result gets the mode any new file would
        os.replace(tmp, path)
    except BaseException:  # also Ctrl-C: never leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, so never toggle it while threads write files


def write_image(image: Image, path: Path) -> None:
    """Save a picture atomically, in the format its suffix names (PNG keeps ``meta``)."""
    _atomic(path, image.save)


def write_text(text: str, path: Path) -> None:
    """Save text (a program) atomically."""
    _atomic(path, lambda tmp: tmp.write_text(text))
