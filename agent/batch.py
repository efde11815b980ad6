"""``banana batch``: a manifest of edits run by worker processes or Ray actors, resumable after a crash.

Manifest: JSONL (one job a line) or YAML (a list of jobs, or ``{jobs: [...]}``)::

    {"id": "hero", "input": "shots/hero.jpg", "instruction": "blur the background"}
    {"input": "shots/*.jpg", "program": "programs/warm.json"}

``id`` defaults to the line number (YAML: the position, from 1); paths are relative to
the manifest's folder (``sample:NAME`` works too). Outputs: ``DIR/<id>.png``, or for a glob
``DIR/<id>/<file stem>.png``.

Exactly once: the journal (SQLite in DIR, one writer: this process) marks an item
``running`` before it is sent out; a worker writes the output to a temporary file, fsyncs
and renames it into place; then the journal marks it ``done``. On a re-run of the same
command, ``done`` items are skipped, a ``running`` item whose output file exists is
marked done (the rename is atomic, and a stale file is removed when the item is
claimed), the rest run. Workers die with this process (PR_SET_PDEATHSIG), and never
rename an output once it is gone, so an orphan cannot write after a restart.

Each worker (a spawned process with one thread, or a Ray actor) loads the agent once;
a failing item is recorded with its error and the rest go on. At the end: DIR/summary.jsonl
(every item: status, timings, critique) and DIR/index.html (before/after thumbnails).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import html
import json
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from banana.agent.sessions import connect, write_transaction

Engine = Literal["local", "ray"]
ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
JOURNAL = ".banana-batch.db"
THUMB = 160


class ManifestError(ValueError):
    """A manifest that cannot be run; the message names the file and line."""


class Job(BaseModel):
    """One manifest entry."""

    model_config = ConfigDict(extra="forbid")
    id: str | int | None = None
    input: str = Field(min_length=1)
    instruction: str | None = Field(default=None, min_length=1, max_length=1000)
    program: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> Job:
        if (self.instruction is None) == (self.program is None):
            raise ValueError("give exactly one of 'instruction' or 'program'")
        return self


class Item(BaseModel):
    """One picture to make: a job on one input file."""

    id: str
    job: str
    input: str
    output: str
    instruction: str | None = None
    program: dict[str, Any] | None = None

    def spec_hash(self) -> str:
        return hashlib.blake2b(self.model_dump_json().encode(), digest_size=12).hexdigest()


# ---------------------------------------------------------------- manifest


def _raw_jobs(path: Path) -> Iterator[tuple[int, Any]]:
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from None
        if isinstance(data, dict) and "jobs" in data:
            data = data["jobs"]
        if not isinstance(data, list):
            raise ManifestError(f"{path}: a YAML manifest is a list of jobs (or {{jobs: [...]}})")
        yield from enumerate(data, 1)
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{lineno}: not valid JSON: {exc.msg} at column {exc.colno}") from None


def read_manifest(path: str | Path, out: str | Path) -> list[Item]:
    """The manifest's items (globs expanded), checked before anything runs."""
    from banana.agent.program import ProgramError, parse_program

    path, out = Path(path), Path(out)
    base = path.parent
    items: list[Item] = []
    seen: dict[str, str] = {}
    for where, raw in _raw_jobs(path):
        at = f"{path}:{where}"
        if not isinstance(raw, dict):
            raise ManifestError(f"{at}: a job is an object with 'input' and 'instruction' or 'program'")
        try:
            job = Job.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "job"
            raise ManifestError(f"{at}: {field}: {err['msg']}") from None
        job_id = str(job.id) if job.id is not None else str(where)
        if not ID_RE.match(job_id):
            raise ManifestError(f"{at}: id {job_id!r} must be letters, digits, '_', '.', '-' (at most 100, not starting with '.')")
        program = None
        if job.program is not None:
            ppath = (base / job.program) if not Path(job.program).is_absolute() else Path(job.program)
            if not ppath.is_file():
                raise ManifestError(f"{at}: no program file at {ppath}")
            try:
                program = parse_program(ppath.read_text()).model_dump()
            except ProgramError as exc:
                raise ManifestError(f"{at}: program {ppath}: {exc}") from None
        if any(c in job.input for c in "*?["):
            pattern = job.input if Path(job.input).is_absolute() else str(base / job.input)
            files = sorted(globlib.glob(pattern, recursive=True))
            files = [f for f in files if Path(f).is_file()]
            if not files:
                raise ManifestError(f"{at}: no file matches {job.input!r}")
            pairs = [(f"{job_id}/{Path(f).stem}", f, out / job_id / f"{Path(f).stem}.png") for f in files]
        else:
            src = job.input if job.input.startswith("sample:") or Path(job.input).is_absolute() else str(base / job.input)
            pairs = [(job_id, src, out / f"{job_id}.png")]
        for item_id, src, dst in pairs:
            if item_id in seen:
                raise ManifestError(f"{at}: item {item_id!r} is also made by {seen[item_id]}; give the jobs different ids")
            seen[item_id] = at
            items.append(Item(id=item_id, job=job_id, input=src, output=str(dst), instruction=job.instruction, program=program))
    if not items:
        raise ManifestError(f"{path}: the manifest has no jobs")
    return items


# ---------------------------------------------------------------- journal


class Journal:
    """Item states in SQLite (WAL, synchronous=FULL): pending -> running -> done | failed."""

    def __init__(self, path: Path) -> None:
        self.db: sqlite3.Connection = connect(path)
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS items (
                id TEXT PRIMARY KEY, pos INTEGER NOT NULL, spec TEXT NOT NULL, hash TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                error TEXT, result TEXT, started REAL, finished REAL);
        """)

    def close(self) -> None:
        self.db.close()

    def sync(self, items: list[Item]) -> None:
        """Add new items; an item whose spec changed and is not done yet takes the new spec."""
        with write_transaction(self.db) as c:
            for pos, it in enumerate(items):
                c.execute("INSERT INTO items (id, pos, spec, hash) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                          "pos = excluded.pos, spec = CASE WHEN status = 'done' THEN spec ELSE excluded.spec END, "
                          "hash = CASE WHEN status = 'done' THEN hash ELSE excluded.hash END",
                          (it.id, pos, it.model_dump_json(), it.spec_hash()))

    def recover(self, ids: list[str], retry_failed: bool) -> int:
        """After a crash: a running item whose output is in place is done; other running items run again."""
        recovered = 0
        with write_transaction(self.db) as c:
            wanted = set(ids)
            for item_id, spec in c.execute("SELECT id, spec FROM items WHERE status = 'running'").fetchall():
                if item_id not in wanted:
                    continue
                item = Item.model_validate_json(spec)
                if Path(item.output).is_file():
                    c.execute("UPDATE items SET status = 'done', finished = ?, result = ? WHERE id = ?",
                              (time.time(), json.dumps({"recovered": True}), item_id))
                    recovered += 1
                else:
                    c.execute("UPDATE items SET status = 'pending' WHERE id = ?", (item_id,))
            if retry_failed:
                c.execute("UPDATE items SET status = 'pending', error = NULL WHERE status = 'failed'")
        return recovered

    def pending(self, ids: list[str]) -> list[Item]:
        wanted = set(ids)
        rows = self.db.execute("SELECT id, spec FROM items WHERE status = 'pending' ORDER BY pos").fetchall()
        return [Item.model_validate_json(spec) for item_id, spec in rows if item_id in wanted]

    def claim(self, item: Item) -> None:
        """Mark running; a stale output file (not made under this journal) is removed first."""
        Path(item.output).unlink(missing_ok=True)
        with write_transaction(self.db) as c:
            c.execute("UPDATE items SET status = 'running', attempts = attempts + 1, started = ? WHERE id = ?", (time.time(), item.id))

    def finish(self, item_id: str, result: dict[str, Any]) -> None:
        status = "done" if result.get("status") == "done" else "failed"
        with write_transaction(self.db) as c:
            c.execute("UPDATE items SET status = ?, error = ?, result = ?, finished = ? WHERE id = ?",
                      (status, result.get("error"), json.dumps(result), time.time(), item_id))

    def rows(self, ids: list[str]) -> list[dict[str, Any]]:
        wanted = set(ids)
        out = []
        for item_id, spec, status, attempts, error, result in self.db.execute(
                "SELECT id, spec, status, attempts, error, result FROM items ORDER BY pos").fetchall():
            if item_id not in wanted:
                continue
            item = Item.model_validate_json(spec)
            res = json.loads(result) if result else {}
            out.append({"id": item_id, "status": status, "input": item.input, "output": item.output if status == "done" else None,
                        "instruction": item.instruction, "attempts": attempts, "error": error,
                        **{k: res.get(k) for k in ("timings", "critique", "program", "thumbs", "recovered", "pid", "served") if k in res}})
        return out

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())


# ---------------------------------------------------------------- workers


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (no orphan writes after a crash)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _one_thread() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _atomic_save(image: Any, dst: Path, parent_pid: int | None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=dst.suffix, dir=dst.parent)
    os.close(fd)
    try:
        image.save(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if parent_pid is not None and os.getppid() != parent_pid:
            raise RuntimeError("the batch process is gone; not writing")
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dirfd = os.open(dst.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def _thumb(image: Any, path: Path) -> None:
    from PIL import Image as PILImage

    im = PILImage.fromarray(image.pixels)
    im.thumbnail((THUMB, THUMB))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=85)


class Worker:
    """Loads the agent once; processes items. The same class runs in a process pool and as a Ray actor."""

    def __init__(self, out: str, critic: bool = True, parent_pid: int | None = None) -> None:
        _one_thread()
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
        from banana.agent.turns import Agent

        t = time.perf_counter()
        self.agent = Agent(critic=critic)
        self.load_seconds = time.perf_counter() - t
        self.out = Path(out)
        self.parent_pid = parent_pid
        self.pid = os.getpid()
        self.served = 0  # items this worker (and its one agent) has processed

    def process(self, spec: str) -> dict[str, Any]:
        """One item -> a result dict; never raises (a failure is a result with its error)."""
        from banana.agent.program import parse_program
        from banana.agent.samples import load_image
        from banana.agent.turns import TurnError, execute_program, run_turn

        item = Item.model_validate_json(spec)
        self.served += 1
        t0 = time.perf_counter()
        try:
            image = load_image(item.input)
            t1 = time.perf_counter()
            if item.program is not None:
                outcome = execute_program(self.agent, image, parse_program(item.program), text=item.instruction or "")
            else:
                outcome = run_turn(self.agent, image, None, item.instruction or "")
            t2 = time.perf_counter()
            _atomic_save(outcome.picture, Path(item.output), self.parent_pid)
            thumbs = self._thumbs(item, image, outcome.picture)
            who = {"pid": self.pid, "served": self.served}
            return {"status": "done", **who, "program": outcome.program.model_dump() if outcome.program else None,
                    "critique": _critique_summary(outcome.critique), "thumbs": thumbs,
                    "timings": {"load": round(t1 - t0, 4), "plan": round(outcome.plan_seconds, 4),
                                "run": round(t2 - t1 - outcome.plan_seconds, 4), "total": round(time.perf_counter() - t0, 4)}}
        except Exception as exc:  # one item's failure, whatever it is, must not stop the batch
            error = str(exc) if isinstance(exc, TurnError) else f"{type(exc).__name__}: {exc}"
            return {"status": "failed", "pid": self.pid, "served": self.served, "error": error,
                    "timings": {"total": round(time.perf_counter() - t0, 4)}}

    def _thumbs(self, item: Item, before: Any, after: Any) -> dict[str, str]:
        name = item.id.replace("/", "__")
        paths = {"before": self.out / "thumbs" / f"{name}.before.jpg", "after": self.out / "thumbs" / f"{name}.after.jpg"}
        try:
            _thumb(before, paths["before"])
            _thumb(after, paths["after"])
        except (OSError, ValueError):
            return {}
        return {k: str(p.relative_to(self.out)) for k, p in paths.items()}


def _critique_summary(crit: dict[str, Any] | None) -> dict[str, Any] | None:
    if crit is None:
        return None
    from banana.agent.critic import Critique

    c = Critique.model_validate(crit)
    return {"passed": c.passed, "summary": c.summary(), "hard_failures": len(c.hard_failures), "soft_failures": len(c.soft_failures)}


_WORKER: Worker | None = None


def _init_local(out: str, critic: bool, parent_pid: int) -> None:
    global _WORKER
    _die_with_parent()
    _WORKER = Worker(out, critic, parent_pid)


def _run_local(spec: str) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER.process(spec)


# ---------------------------------------------------------------- engines


@dataclass
class Report:
    total: int
    done: int
    failed: int
    skipped: int  # finished before this run (done, or failed and not retried)
    recovered: int
    seconds: float
    summary: Path
    sheet: Path


OnResult = Callable[[Item, dict[str, Any]], None]


def _dispatch_local(items: list[Item], out: Path, workers: int, critic: bool, claim: Callable[[Item], None],
                    on_result: OnResult) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    _one_thread()  # inherited by the spawned workers before they import numpy/torch
    queue = list(items)
    while queue:  # a new pool after a worker crashed (a segfault in a native library): the rest go on
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_local,
                                 initargs=(str(out), critic, os.getpid())) as pool:
            running: dict[Future[dict[str, Any]], Item] = {}
            broken = False
            while (queue and not broken) or running:
                while queue and not broken and len(running) < workers:
                    item = queue.pop(0)
                    claim(item)
                    try:
                        running[pool.submit(_run_local, item.model_dump_json())] = item
                    except BrokenProcessPool:  # a worker died between items: this one goes to the next pool
                        queue.insert(0, item)
                        broken = True
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        result = {"status": "failed", "error": "a worker process died while this item was running "
                                                               "(this item or another one in flight crashed it)"}
                    except Exception as exc:  # e.g. a result that cannot be pickled back
                        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    on_result(item, result)


def _dispatch_ray(items: list[Item], out: Path, workers: int, critic: bool, claim: Callable[[Item], None],
                  on_result: OnResult, address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": workers}))
    actor_cls = ray.remote(num_cpus=1)(Worker)
    actors = [actor_cls.remote(str(out), critic, None) for _ in range(workers)]
    try:
        queue = list(items)
        idle = list(actors)
        running: dict[Any, tuple[Item, Any]] = {}
        while queue or running:
            while queue and idle:
                item, actor = queue.pop(0), idle.pop()
                claim(item)
                running[actor.process.remote(item.model_dump_json())] = (item, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                item, actor = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    result = {"status": "failed", "error": f"the Ray worker failed: {type(exc).__name__}: {exc}"}
                on_result(item, result)
                idle.append(actor)
    finally:
        for a in actors:
            ray.kill(a)


def run_batch(manifest: str | Path, out: str | Path, workers: int = 1, engine: Engine = "local", address: str | None = None,
              critic: bool = True, retry_failed: bool = False, on_progress: Callable[[int, int, Item | None], None] | None = None,
              ) -> Report:
    """Run (or resume) a batch; see the module docstring. ``on_progress(done, total, item)`` after each item."""
    t0 = time.perf_counter()
    out = Path(out)
    items = read_manifest(manifest, out)
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out / JOURNAL)
    try:
        ids = [it.id for it in items]
        journal.sync(items)
        recovered = journal.recover(ids, retry_failed)
        todo = journal.pending(ids)
        already = len(items) - len(todo)
        progress = {"n": already}
        if on_progress:
            on_progress(already, len(items), None)

        def on_result(item: Item, result: dict[str, Any]) -> None:
            journal.finish(item.id, result)
            progress["n"] += 1
            if on_progress:
                on_progress(progress["n"], len(items), item)

        if todo:
            workers = max(1, min(workers, len(todo)))
            if engine == "ray":
                _dispatch_ray(todo, out, workers, critic, journal.claim, on_result, address)
            elif engine == "local":
                _dispatch_local(todo, out, workers, critic, journal.claim, on_result)
            else:
                raise ValueError(f"unknown engine {engine!r}; use 'local' or 'ray'")
        rows = journal.rows(ids)
        summary = write_summary(rows, out)
        sheet = write_sheet(rows, out)
        return Report(total=len(items), done=sum(r["status"] == "done" for r in rows),
                      failed=sum(r["status"] == "failed" for r in rows), skipped=already - recovered,
                      recovered=recovered, seconds=time.perf_counter() - t0, summary=summary, sheet=sheet)
    finally:
        journal.close()


# ---------------------------------------------------------------- reports


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_summary(rows: list[dict[str, Any]], out: Path) -> Path:
    return _write_atomic(out / "summary.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def write_sheet(rows: list[dict[str, Any]], out: Path) -> Path:
    """A contact sheet: one row per item, before / after thumbnails, status, critique or error."""
    cells = []
    for r in rows:
        th = r.get("thumbs") or {}
        img = "".join(f'<img src="{html.escape(th[k])}" alt="{k}">' if k in th else "<span>-</span>" for k in ("before", "after"))
        crit = r.get("critique") or {}
        note = r.get("error") or crit.get("summary") or ""
        t = (r.get("timings") or {}).get("total")
        cells.append(f'<tr class="{r["status"]}"><td>{html.escape(r["id"])}</td><td>{img}</td><td>{r["status"]}</td>'
                     f'<td>{"" if t is None else f"{t:.2f} s"}</td><td>{html.escape(r.get("instruction") or "")}</td>'
                     f"<td>{html.escape(note)}</td></tr>")
    page = ("<!doctype html><meta charset=utf-8><title>banana batch</title><style>body{font-family:sans-serif}"
            "img{margin:2px;vertical-align:middle}td{padding:4px;border-bottom:1px solid #ddd}.failed{background:#fee}</style>"
            f"<h1>banana batch: {sum(r['status'] == 'done' for r in rows)} done, {sum(r['status'] == 'failed' for r in rows)} failed"
            "</h1><table><tr><th>id</th><th>before / after</th><th>status</th><th>time</th><th>instruction</th>"
            "<th>critique / error</th></tr>"
            + "".join(cells) + "</table>\n")
    return _write_atomic(out / "index.html", page)


# ---------------------------------------------------------------- command


def batch_cmd(
    manifest: Annotated[Path, typer.Argument(help="JSONL or YAML: {id?, input: PATH or glob, instruction | program: PATH}")],
    out: Annotated[Path, typer.Option("--out", help="output folder (DIR/<id>.png; the journal, summary.jsonl and index.html)")],
    workers: Annotated[int, typer.Option("--workers", min=1, max=256, help="worker processes / Ray actors")] = 1,
    engine: Annotated[str, typer.Option("--engine", help="local (processes) or ray")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: start a local Ray)")] = None,
    no_critic: Annotated[bool, typer.Option("--no-critic", help="run each program once, without the critique loop")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="run failed items again")] = False,
) -> None:
    """Run a manifest of edits; re-running the same command resumes after a crash (nothing lost, nothing done twice)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if engine not in ("local", "ray"):
        console.print(f"[red]error:[/red] --engine must be local or ray, not {escape(repr(engine))}")
        raise typer.Exit(2)
    try:
        read_manifest(manifest, out)
    except ManifestError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("batch", total=None)

        def on_progress(done: int, total: int, item: Item | None) -> None:
            bar.update(task, completed=done, total=total, description=item.id if item else "batch")

        report = run_batch(manifest, out, workers, engine, address, critic=not no_critic,  # type: ignore[arg-type]
                           retry_failed=retry_failed, on_progress=on_progress)
    console.print(f"{report.done} done, {report.failed} failed of {report.total} ({report.skipped} finished earlier, "
                  f"{report.recovered} recovered) in {report.seconds:.1f} s; summary {report.summary}, contact sheet {report.sheet}",
                  highlight=False)
    if report.failed:
        raise typer.Exit(1)
