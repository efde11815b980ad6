"""Execution traces: every node attempt (tool, implementation, context, args, checks, latency, outcome) in SQLite.

Why: a router can only learn which implementation suits which context from what
really happened, and self-play needs a record it can mine for training data. One
file, safe for several processes at once (WAL journal, a busy timeout, short write
transactions); a ``schema`` table holds the version so a later layout can migrate.

Default place: ``$BANANA_TRACES`` or ``~/.cache/banana/traces.sqlite`` (``$XDG_CACHE_HOME``
respected). Rows are made from an executed program and its critique
(:func:`node_rows`); the executor itself stays generic.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from banana.agent.critic import Critique
from banana.agent.executor import RunResult
from banana.agent.program import ValidProgram
from banana.tools.registry import Registry
from banana.tools.values import Image, Mask, Value

SCHEMA_VERSION = 1
BUSY_MS = 30_000

_TABLES = """
CREATE TABLE IF NOT EXISTS schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    time REAL NOT NULL,
    source TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '',
    node TEXT NOT NULL,
    tool TEXT NOT NULL,
    impl TEXT NOT NULL,
    version TEXT NOT NULL,
    bucket TEXT NOT NULL,
    features TEXT NOT NULL,
    args TEXT NOT NULL,
    checks TEXT NOT NULL,
    passed INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    latency REAL,
    distance REAL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS attempts_route ON attempts (tool, impl, version, bucket);
"""


def default_path() -> Path:
    """``$BANANA_TRACES``, else the user's cache folder."""
    env = os.environ.get("BANANA_TRACES")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "banana" / "traces.sqlite"


class TraceRow(BaseModel):
    """One node attempt."""

    run_id: str
    source: str = "cli"
    request: str = ""
    node: str
    tool: str
    impl: str = "default"  # the routed implementation, or "default" for a tool with one
    version: str = "1"
    bucket: str = ""
    features: dict[str, float] = Field(default_factory=dict)
    args: dict[str, Any] = Field(default_factory=dict)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    passed: bool
    outcome: str  # "ok" | "failed"
    latency: float | None = None
    distance: float | None = None  # closeness of the program's result to a reference (self-play), when known
    error: str = ""
    time: float = Field(default_factory=time.time)


class TraceStore:
    """The traces database; safe to share between threads (one lock) and processes (WAL + busy timeout)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        if self.path.exists() and self.path.is_dir():
            raise ValueError(f"traces: {self.path} is a folder, not a database file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            for stmt in filter(str.strip, _TABLES.split(";")):
                self._db.execute(stmt)
            found = self._db.execute("SELECT version FROM schema").fetchone()
            if found is None:
                self._db.execute("INSERT INTO schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif found[0] != SCHEMA_VERSION:
                self._db.execute("ROLLBACK")
                raise ValueError(f"traces: {self.path} has schema version {found[0]}, this Banana reads {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ValueError(f"traces: {self.path} is not a usable SQLite database: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT version FROM schema").fetchone()[0])

    def add(self, rows: list[TraceRow]) -> None:
        """Append rows in one short transaction."""
        if not rows:
            return
        values = [
            (r.run_id, r.time, r.source, r.request, r.node, r.tool, r.impl, r.version, r.bucket, json.dumps(r.features),
             json.dumps(r.args, default=str), json.dumps(r.checks, default=str), int(r.passed), r.outcome, r.latency, r.distance, r.error)
            for r in rows
        ]  # fmt: skip
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO attempts (run_id, time, source, request, node, tool, impl, version, bucket, features, args, checks,"
                    " passed, outcome, latency, distance, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    values,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def rows(self, tool: str | None = None, source: str | None = None) -> list[TraceRow]:
        sql, params = "SELECT run_id, source, request, node, tool, impl, version, bucket, features, args, checks, passed, outcome," \
                      " latency, distance, error, time FROM attempts", []  # fmt: skip
        where = []
        if tool:
            where.append("tool = ?")
            params.append(tool)
        if source:
            where.append("source = ?")
            params.append(source)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            found = self._db.execute(sql + " ORDER BY id", params).fetchall()
        keys = ("run_id", "source", "request", "node", "tool", "impl", "version", "bucket", "features", "args", "checks", "passed",
                "outcome", "latency", "distance", "error", "time")  # fmt: skip
        out = []
        for row in found:
            d = dict(zip(keys, row, strict=True))
            for k in ("features", "args", "checks"):
                d[k] = json.loads(d[k])
            d["passed"] = bool(d["passed"])
            out.append(TraceRow(**d))
        return out

    def outcomes(self) -> list[tuple[str, str, str, str, bool, float | None, float | None]]:
        """(tool, impl, version, bucket, passed, latency, distance) of every attempt: what a router learns from."""
        with self._lock:
            found = self._db.execute("SELECT tool, impl, version, bucket, passed, latency, distance FROM attempts ORDER BY id").fetchall()
        return [(t, i, v, b, bool(p), lat, d) for t, i, v, b, p, lat, d in found]

    def arm_stats(self, max_distance: float, recent: int = 101) -> list[tuple[str, str, str, str, int, int, list[float]]]:
        """Per routed (tool, impl, version, bucket): attempts, successes (passed and, when a reference was known, within
        ``max_distance``) and the latest ``recent`` latencies. Aggregated in SQL, so loading a router stays fast as traces grow."""
        with self._lock:
            groups = self._db.execute(
                "SELECT tool, impl, version, bucket, COUNT(*), SUM(passed AND (distance IS NULL OR distance <= ?)) FROM attempts"
                " WHERE impl != 'default' GROUP BY tool, impl, version, bucket", (max_distance,)
            ).fetchall()
            out = []
            for tool, impl, version, bucket, n, ok in groups:
                lat = self._db.execute(
                    "SELECT latency FROM attempts WHERE tool = ? AND impl = ? AND version = ? AND bucket = ? AND latency IS NOT NULL"
                    " ORDER BY id DESC LIMIT ?", (tool, impl, version, bucket, recent)
                ).fetchall()
                out.append((tool, impl, version, bucket, int(n), int(ok or 0), [float(x) for (x,) in lat]))
        return out

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])


def stats(store: TraceStore) -> list[dict[str, Any]]:
    """Per tool x implementation: attempts, critic passes and rate, median latency (seconds), and for self-play
    attempts with a known reference, how many came within its pass line (distance <= 1)."""
    groups: dict[tuple[str, str], list[tuple[bool, float | None, float | None]]] = {}
    for tool, impl, _v, _b, passed, latency, distance in store.outcomes():
        groups.setdefault((tool, impl), []).append((passed, latency, distance))
    rows = []
    for (tool, impl), items in sorted(groups.items()):
        lat = [x for _, x, _ in items if x is not None]
        passes = sum(p for p, _, _ in items)
        refs = [d for _, _, d in items if d is not None]
        rows.append({"tool": tool, "impl": impl, "attempts": len(items), "passed": passes, "pass_rate": round(passes / len(items), 3),
                     "median_latency_s": round(statistics.median(lat), 4) if lat else None,
                     "with_reference": len(refs), "reference_passed": sum(d <= 1.0 for d in refs)})  # fmt: skip
    return rows


def _features(value: Value) -> dict[str, float]:
    if isinstance(value, Image):
        return {"width": float(value.width), "height": float(value.height)}
    if isinstance(value, Mask):
        return {"coverage": round(float(value.alpha.mean()), 4)}
    return {}


def node_rows(
    valid: ValidProgram,
    run: RunResult,
    critique: Critique | None,
    registry: Registry,
    source: str = "cli",
    request: str = "",
    distance: float | None = None,
    run_id: str | None = None,
) -> list[TraceRow]:
    """One row per node that ran or failed in this run (cache hits teach nothing and are left out).

    A node passes when it produced an output and none of its own hard checks failed.
    The routing record a routed tool leaves in ``meta["route"]`` names the implementation,
    its version, the context bucket and features.
    """
    run_id = run_id or uuid.uuid4().hex
    by_node: dict[str, list[dict[str, Any]]] = {}
    for r in critique.results if critique else []:
        if r.node:
            by_node.setdefault(r.node, []).append(
                {"check": r.check, "kind": r.kind, "value": round(r.value, 4), "threshold": round(r.threshold, 4), "hard": r.hard,
                 "passed": r.passed}
            )
    rows = []
    for nid in valid.order:
        if nid in run.cached or (nid not in run.outputs and nid not in run.failures):
            continue
        failure = run.failures.get(nid)
        if failure is not None and failure.kind != "failed":
            continue  # skipped or cancelled: the node itself was never tried
        node = valid.program.node(nid)
        spec = registry.get(node.tool)
        args = {k: v for k, v in node.args.items() if k in spec.arg_names}
        out = run.outputs.get(nid)
        route = (getattr(out, "meta", None) or {}).get("route") if out is not None else None
        checks = by_node.get(nid, [])
        features = dict(route.get("features", {})) if route else {}
        if out is not None:
            features = {**_features(out), **features}
        rows.append(
            TraceRow(
                run_id=run_id, source=source, request=request, node=nid, tool=node.tool,
                impl=str(route["expert"]) if route else "default", version=str(route.get("version", "1")) if route else "1",
                bucket=str(route.get("bucket", "")) if route else "", features=features, args=args, checks=checks,
                passed=failure is None and all(c["passed"] or not c["hard"] for c in checks),
                outcome="failed" if failure else "ok", latency=run.timings.get(nid), distance=distance,
                error=failure.error if failure else "",
            )
        )
    return rows
