"""What the server keeps loaded for its whole life: the registry, one agent (planner + experts + the
executor's cache), the session store, and the work queue.

The store is the same :class:`banana.agent.sessions.Store` as ``banana chat`` (one folder, one SQLite file);
each thread gets its own connection to it (SQLite serialises writers; a connection must not be shared by
threads inside transactions). The executor reads the running job's cancel Event and read policy from the
job's thread, so one loaded agent serves every request, and a client's program reads only its own uploads.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from banana.agent.executor import Executor, NodeEvent, ResultCache, RunResult
from banana.agent.program import ValidProgram
from banana.agent.server.jobs import Job, JobQueue
from banana.agent.sessions import Store
from banana.agent.turns import Agent
from banana.tools.files import ReadPolicy
from banana.tools.registry import Registry, default_registry
from banana.tools.values import Value


class ServerConfig(BaseModel):
    """How a server runs (``banana serve`` options)."""

    store: Path | None = Field(default=None, description="session store folder; default $BANANA_HOME or ~/.local/share/banana")
    workers: int = Field(default=1, ge=1, le=16, description="jobs run at once")
    queue: int = Field(default=8, ge=0, le=1000, description="jobs that may wait beyond those running (then 429)")
    max_upload_bytes: int = Field(default=20 << 20, ge=1, description="per uploaded file")
    max_request_bytes: int = Field(default=64 << 20, ge=1, description="a whole request body")
    max_files: int = Field(default=8, ge=1, le=64, description="uploaded files per request")
    max_pixels: int = Field(default=25_000_000, ge=1, description="per uploaded picture (checked from its header)")
    max_side: int = Field(default=8192, ge=1)
    critic: bool = True
    cache_mb: float = Field(default=1024, ge=0, description="the executor's in-memory result cache (LRU), MB; 0 = none")
    preload: bool = Field(default=False, description="load the planner at start, not on the first instruction")
    web: bool = Field(default=True, description="mount the Gradio page at /")
    grace: float = Field(default=30.0, ge=0, description="seconds running jobs get to finish at shutdown before they are cancelled")
    api_key: str | None = Field(default=None, repr=False, description="BANANA_API_KEY; every request must carry it when set")


class _Context(threading.local):
    cancel: threading.Event | None = None
    files: ReadPolicy | None = None


class JobExecutor(Executor):
    """The one executor (one cache, one thread pool), run with the current job's cancel Event and read policy.

    Tools run on the pool's threads, so the policy travels with the run: each run is a shallow copy that
    shares the pool, the device locks and the cache, and has its own ``files``.
    """

    def __init__(self, *args: Any, context: _Context, **kwargs: Any) -> None:
        self._context = context
        super().__init__(*args, **kwargs)

    def run(self, valid: ValidProgram, inputs: dict[str, Value], on_event: Callable[[NodeEvent], None] | None = None,
            cancel: threading.Event | None = None, exclude: dict[str, list[str]] | None = None) -> RunResult:
        view = copy.copy(self)
        view.files = self._context.files or self.files
        return Executor.run(view, valid, inputs, on_event=on_event, cancel=cancel or self._context.cancel, exclude=exclude)


class LockedPlanner:
    """The planner behind a lock: one model, called from several job threads."""

    def __init__(self, planner: Any) -> None:
        self._planner, self._lock = planner, threading.Lock()
        self.backend = _LockedBackend(getattr(planner, "backend", None), self._lock)

    def plan(self, request: Any) -> Any:
        with self._lock:
            return self._planner.plan(request)


class _LockedBackend:
    def __init__(self, backend: Any, lock: threading.Lock) -> None:
        self._backend, self._lock = backend, lock
        self.surface, self.name = getattr(backend, "surface", "json"), getattr(backend, "name", "none")

    def generate(self, *args: Any, **kwargs: Any) -> str:
        if self._backend is None:
            raise RuntimeError("this planner cannot re-plan")
        with self._lock:
            return self._backend.generate(*args, **kwargs)


_PATHLIKE = re.compile(r"(?<![\w.>])(?:[A-Za-z]:)?(?:/[\w.@+-]+){2,}/?")


class Engine:
    """Loaded once per process; every route and the web page go through it."""

    def __init__(self, config: ServerConfig, registry: Registry | None = None,
                 planner_factory: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.registry = registry or default_registry()
        self._context = _Context()
        self._factory = planner_factory or self._default_planner
        self._planner: LockedPlanner | None = None
        self._planner_lock = threading.Lock()
        cache = ResultCache(max_bytes=int(config.cache_mb * 2**20))
        self.agent = Agent(self.registry, planner_factory=self._make_planner, critic=config.critic, cache=cache)
        self.agent.executor.close()
        self.agent.executor = JobExecutor(self.registry, cache=cache, context=self._context)
        self.store_root = Store(config.store).root  # creates the folder and schema once, in this thread
        self._stores: list[Store] = []
        self._local = threading.local()
        self._stores_lock = threading.Lock()
        self._session_locks: dict[str, threading.Lock] = {}
        self.uploads = Path(tempfile.mkdtemp(prefix="banana-serve-"))
        self.jobs = JobQueue(config.workers, config.queue, around=self._job_context)
        self._scrub = [p for p in {str(self.store_root), str(self.uploads), tempfile.gettempdir(), str(Path.home()), os.getcwd()}
                       if len(p) > 1]

    def _make_planner(self) -> LockedPlanner:
        """The one planner of the process (two first requests at once must not load it twice)."""
        with self._planner_lock:
            if self._planner is None:
                self._planner = LockedPlanner(self._factory())
            return self._planner

    def _default_planner(self) -> Any:
        from banana.agent.planner import make_planner

        return make_planner(self.registry)

    # ------------------------------------------------------------ per-thread things

    def store(self) -> Store:
        """This thread's connection to the session store."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.store_root)
            self._local.store = store
            with self._stores_lock:
                self._stores.append(store)
        return store

    def session_lock(self, name: str) -> threading.Lock:
        with self._stores_lock:
            return self._session_locks.setdefault(name, threading.Lock())

    @contextmanager
    def _job_context(self, job: Job) -> Iterator[None]:
        self._context.cancel = job.cancel
        try:
            yield
        finally:
            self._context.cancel = None
            self._context.files = None

    @contextmanager
    def reading(self, files: list[Path]) -> Iterator[None]:
        """Programs run inside may read these files and nothing else (no folders)."""
        self._context.files = ReadPolicy(files=files)
        try:
            yield
        finally:
            self._context.files = None

    # ------------------------------------------------------------ messages

    def clean(self, message: str) -> str:
        """A message fit for a client: no server paths, bounded length."""
        for p in sorted(self._scrub, key=len, reverse=True):
            message = message.replace(p, "<server>")
        message = _PATHLIKE.sub(lambda m: m.group(0) if m.group(0).startswith("<server>") else "<path>", message)
        return message[:2000]

    def load(self) -> None:
        """Load the planner now (``--preload``), so the first instruction does not wait for it."""
        _ = self.agent.planner

    def close(self) -> None:
        self.jobs.shutdown(self.config.grace)
        self.agent.close()
        with self._stores_lock:
            for store in self._stores:
                try:
                    store.close()
                except Exception:  # a connection owned by a thread that is gone: closing it is best effort
                    pass
            self._stores.clear()
        for f in sorted(self.uploads.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        self.uploads.rmdir()
