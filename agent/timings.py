"""Start-up and shut-down cost: light phase timers, and an exit that skips a slow teardown.

``BANANA_TIMINGS=1`` makes the CLI print the timers to stderr as one JSON line at exit.

One code path: the timers wrap the real work and cost nothing when the variable is unset.
``bench/startup.py`` reads the line from fresh processes. Phases add up (a phase entered twice
accumulates); ``since_start`` marks are seconds since the process started (interpreter start-up included).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

ENABLED = os.environ.get("BANANA_TIMINGS", "") not in ("", "0")
_phases: dict[str, float] = {}
_marks: dict[str, float] = {}
_registered = False


def since_start() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in clock ticks since boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time a block under ``name`` (accumulating) when timings are on."""
    if not ENABLED:
        yield
        return
    t = time.perf_counter()
    try:
        yield
    finally:
        _phases[name] = _phases.get(name, 0.0) + time.perf_counter() - t


def mark(name: str) -> None:
    """Record the seconds since process start at this point (e.g. "imports": the CLI module is loaded)."""
    if ENABLED:
        now = since_start()
        if now is not None:
            _marks[name] = now


def report() -> dict[str, object]:
    """The phases so far, the marks, and the perception models loaded (with their load seconds)."""
    experts: dict[str, float] = {}
    manager = sys.modules.get("banana.experts.manager")
    if manager is not None:
        experts = {name: round(m.load_seconds, 4) for name, m in manager.manager().loaded().items()}
    return {"phases": {k: round(v, 4) for k, v in _phases.items()}, "marks": {k: round(v, 4) for k, v in _marks.items()},
            "expert_loads": experts, "since_start": round(since_start() or 0.0, 4)}


def _print_report() -> None:
    print("BANANA_TIMINGS " + json.dumps(report()), file=sys.stderr, flush=True)


def exit_fast(code: object) -> None:
    """Exit now, skipping the interpreter's teardown of torch and transformers (seconds of freeing modules for nothing).

    atexit handlers still run and the streams are flushed; returns (so the caller exits normally) when torch is not
    loaded (teardown is quick then), when another non-daemon thread is alive, or for a non-numeric exit code.
    """
    if "torch" not in sys.modules or not (code is None or isinstance(code, int)):
        return
    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)


def print_at_exit() -> None:
    """Print the report once, when the process exits (also after typer.Exit), if timings are on."""
    global _registered
    if ENABLED and not _registered:
        _registered = True
        atexit.register(_print_report)
