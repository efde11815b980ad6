"""Values derived from pictures (float pixels, Lab, gradients, a node's check results), remembered by content.

A chat turn re-runs only the nodes that changed, but the changed node and the critic still look at
the unchanged input picture: its float pixels, its Lab, its gradients, the checks of the nodes whose
inputs and outputs did not change. A :class:`Memo` remembers such values under a key made of the
pictures' content hashes, so the next turn (and the other checks of one critique) finds them.

The executor's cache owns one memo (so a fresh agent starts cold, as a fresh run would); the executor
and the critic make it current while tools and checks run (:func:`using`), and helpers ask it with
:func:`derived`. With no memo current, :func:`derived` just computes. Arrays are stored read-only:
a caller that wrote into one would change what the next caller gets, so it fails loudly instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

from banana.tools.values import Value

T = TypeVar("T")

DEFAULT_MAX_BYTES = 256 << 20


def _size(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, tuple | list):
        return 64 + sum(_size(v) for v in value)
    return 64


def _freeze(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, tuple):
        for v in value:
            _freeze(v)
    return value


class Memo:
    """A bounded LRU of derived values (bytes counted for arrays), safe to share between threads."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: str, value: Any) -> None:
        size = _size(value)
        if size > self.max_bytes:
            return
        _freeze(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, gone) = self._items.popitem(last=False)
                self._bytes -= gone

    def get_or(self, key: str, compute: Callable[[], T]) -> T:
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


_CURRENT: ContextVar[Memo | None] = ContextVar("banana_memo", default=None)


@contextmanager
def using(memo: Memo | None) -> Iterator[Memo | None]:
    """Make ``memo`` the one :func:`derived` asks, in this thread, for the ``with`` block."""
    token = _CURRENT.set(memo)
    try:
        yield memo
    finally:
        _CURRENT.reset(token)


def current() -> Memo | None:
    return _CURRENT.get()


def _key(kind: str, values: tuple[Value, ...]) -> str:
    return kind + "|" + "|".join(v.content_hash for v in values)


def recall(kind: str, values: tuple[Value, ...]) -> Any | None:
    """What :func:`derived` remembered under ``kind`` for ``values`` (None: nothing, or no memo current); computes nothing."""
    memo = _CURRENT.get()
    return None if memo is None else memo.get(_key(kind, values))


def derived(kind: str, values: tuple[Value, ...], compute: Callable[[], T]) -> T:
    """``compute()``, remembered under ``kind`` and the content of ``values`` in the current memo (if any).

    ``compute`` must depend on nothing but ``values`` (and constants of its code): that is what the key says.
    """
    memo = _CURRENT.get()
    if memo is None:
        return _freeze(compute())  # read-only with or without a memo: a caller that writes into it fails the same way
    return memo.get_or(_key(kind, values), compute)
