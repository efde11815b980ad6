"""A bounded work queue: every request that runs models or tools is a job on a few worker threads.

Jobs hold a cancel Event (the executor stops between nodes, and inside tools that report progress),
the node events so far (for server-sent events), and their result or error. When as many jobs wait as
the queue allows, :meth:`JobQueue.submit` raises :class:`QueueFull` (the API answers 429 with
Retry-After). Shutdown stops taking jobs, lets running ones finish for a grace period, then cancels the rest.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

log = logging.getLogger(__name__)
JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class ApiError(Exception):
    """An answer for the client: an HTTP status and a plain message (no traceback, no server path)."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


class QueueFull(ApiError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(429, f"the server is busy (its work queue is full); retry in about {retry_after} s", "rate_limit_error",
                         {"Retry-After": str(retry_after)})


class JobCancelled(Exception):
    """The job's cancel Event was set (client gone, DELETE, or shutdown)."""


class Job:
    """One unit of work and what the client may see of it."""

    def __init__(self, kind: str) -> None:
        self.id = uuid.uuid4().hex
        self.kind = kind
        self.state: JobState = "queued"
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.result: Any = None
        self.error: ApiError | None = None
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def events_since(self, index: int) -> list[dict[str, Any]]:
        with self._lock:
            return self.events[index:]

    def check(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled


class JobQueue:
    """``workers`` threads; at most ``workers + capacity`` jobs admitted at once; finished jobs kept for a while."""

    def __init__(self, workers: int = 1, capacity: int = 8, keep: int = 256,
                 around: Callable[[Job], Any] | None = None) -> None:
        self.workers, self.capacity, self.keep = workers, capacity, keep
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="banana-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._active = 0
        self._lock = threading.Lock()
        self._closing = False
        self._seconds = 1.0  # moving average of a job's run time, for Retry-After
        self._around = around  # sets per-thread context (cancel Event) around a job; a context manager factory

    def submit(self, kind: str, fn: Callable[[Job], Any]) -> Job:
        job = Job(kind)
        with self._lock:
            if self._closing:
                raise ApiError(503, "the server is shutting down", "server_error", {"Retry-After": "5"})
            if self._active >= self.workers + self.capacity:
                waiting = self._active - self.workers + 1
                raise QueueFull(max(1, min(60, math.ceil(self._seconds * waiting / self.workers))))
            self._active += 1
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:
                old_id, old = next(iter(self._jobs.items()))
                if not old.done.is_set():
                    break
                self._jobs.pop(old_id)
        self._pool.submit(self._run, job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[Job], Any]) -> None:
        job.started = time.time()
        try:
            if job.cancel.is_set():
                raise JobCancelled
            job.state = "running"
            if self._around is not None:
                with self._around(job):
                    job.result = fn(job)
            else:
                job.result = fn(job)
            job.check()  # cancelled while running: its result is not delivered
            job.state = "done"
        except JobCancelled:
            job.state, job.error = "cancelled", ApiError(499, "the job was cancelled", "cancelled")
        except ApiError as exc:  # a run cut short by its cancel Event fails its nodes: it was cancelled, not failed
            cut = job.cancel.is_set()
            job.state, job.error = ("cancelled", ApiError(499, "the job was cancelled", "cancelled")) if cut else ("failed", exc)
        except Exception:  # a bug: logged here with its traceback, never sent to the client
            log.exception("job %s (%s) crashed", job.id, job.kind)
            message = f"internal error in job {job.id}; the server's log has the details"
            job.state, job.error = "failed", ApiError(500, message, "server_error")
        finally:
            job.finished = time.time()
            with self._lock:
                self._active -= 1
                self._seconds = 0.8 * self._seconds + 0.2 * (job.finished - job.started)
            job.emit({"event": "end", "state": job.state})
            job.done.set()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id[:64]!r} (finished jobs are kept for a while, then forgotten)", "not_found")
        return job

    @property
    def active(self) -> int:
        return self._active

    def shutdown(self, grace: float = 30.0) -> None:
        """Take no more jobs; wait up to ``grace`` seconds for the admitted ones, then cancel what is left and wait for it."""
        with self._lock:
            self._closing = True
            jobs = list(self._jobs.values())
        deadline = time.monotonic() + grace
        for job in jobs:
            job.done.wait(max(0.0, deadline - time.monotonic()))
        for job in jobs:
            if not job.done.is_set():
                job.cancel.set()
        self._pool.shutdown(wait=True)
