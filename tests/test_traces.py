"""Traces: node attempts from real runs land in a real SQLite file; concurrent writers lose nothing; bad files are named."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from banana.agent.critic import critique
from banana.agent.executor import Executor, ResultCache
from banana.agent.program import Program, validate
from banana.agent.traces import SCHEMA_VERSION, TraceRow, TraceStore, default_path, node_rows, stats
from banana.tools.values import Image

PROGRAM = {
    "version": 1,
    "nodes": [
        {"id": "clean", "tool": "denoise", "args": {"image": "$input", "amount": 0.5}},
        {"id": "crisp", "tool": "sharpen", "args": {"image": "$clean", "amount": 0.5}},
    ],
    "output": "$crisp",
}


def noisy(photo: Image, sigma: float = 20.0) -> Image:
    rng = np.random.default_rng(0)
    crop = photo.pixels[:160, :200].astype(np.float32)
    return Image(np.clip(crop + rng.normal(0, sigma, crop.shape), 0, 255).astype(np.uint8))


def test_a_run_becomes_one_row_per_node_with_route_checks_and_latency(tmp_path, registry, photos):
    picture = noisy(photos["chelsea"])
    valid = validate(Program.model_validate(PROGRAM), registry, inputs={"input": "Image"})
    with Executor(registry, cache=ResultCache()) as ex:
        run = ex.run(valid, {"input": picture})
        crit = critique(valid, run, {"input": picture}, registry)
        again = ex.run(valid, {"input": picture})  # all cache hits: nothing new to learn
    rows = node_rows(valid, run, crit, registry, source="test", request="clean it up")
    assert [(r.node, r.tool, r.impl) for r in rows] == [("clean", "denoise", "non-local-means"), ("crisp", "sharpen", "unsharp")]
    clean = rows[0]
    assert clean.bucket == "noise sigma >= 12" and clean.features["noise_sigma"] >= 12 and clean.features["width"] == 200
    assert clean.args == {"amount": 0.5} and clean.latency is not None and clean.latency > 0
    assert {c["check"] for c in clean.checks} >= {"denoise lowers noise"} and clean.passed and clean.outcome == "ok"
    assert node_rows(valid, again, None, registry) == []

    store = TraceStore(tmp_path / "t.sqlite")
    store.add(rows)
    back = store.rows()
    assert [(r.tool, r.impl, r.bucket, r.request) for r in back] == [(r.tool, r.impl, r.bucket, "clean it up") for r in rows]
    assert back[0].checks == clean.checks
    assert stats(store)[0] == {"tool": "denoise", "impl": "non-local-means", "attempts": 1, "passed": 1, "pass_rate": 1.0,
                               "median_latency_s": round(clean.latency, 4), "with_reference": 0, "reference_passed": 0}  # fmt: skip
    with sqlite3.connect(tmp_path / "t.sqlite") as db:  # a plain SQLite file, WAL journal, schema version recorded
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema").fetchone()[0] == SCHEMA_VERSION


def test_a_failed_node_is_a_failed_row_and_its_dependants_are_not_rows(tmp_path, registry):
    program = {"version": 1, "nodes": [{"id": "up", "tool": "upscale", "args": {"image": "$input", "factor": 4}},
                                       {"id": "crisp", "tool": "sharpen", "args": {"image": "$up"}}], "output": "$crisp"}  # fmt: skip
    huge = Image(np.zeros((3000, 3000, 3), np.uint8))  # 12000 x 12000 is over the upscale limit
    valid = validate(Program.model_validate(program), registry, inputs={"input": "Image"})
    with Executor(registry, cache=ResultCache()) as ex:
        run = ex.run(valid, {"input": huge})
    rows = node_rows(valid, run, critique(valid, run, {"input": huge}, registry, identity=False), registry)
    assert [(r.node, r.outcome, r.passed) for r in rows] == [("up", "failed", False)]
    assert "over the 64 MP limit" in rows[0].error


def test_two_processes_write_at_once_and_nothing_is_lost(tmp_path):
    db = tmp_path / "shared.sqlite"
    TraceStore(db).close()
    script = textwrap.dedent(f"""
        import sys
        from banana.agent.traces import TraceRow, TraceStore
        store = TraceStore({str(db)!r})
        for i in range(150):
            store.add([TraceRow(run_id=sys.argv[1], node=f"n{{i}}", tool="blur", passed=i % 2 == 0, outcome="ok", latency=0.01),
                       TraceRow(run_id=sys.argv[1], node=f"m{{i}}", tool="blur", passed=True, outcome="ok", latency=0.02)])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = TraceStore(db)
    rows = store.rows()
    assert len(rows) == 600
    assert {r.run_id for r in rows} == {"a", "b"}
    assert stats(store) == [{"tool": "blur", "impl": "default", "attempts": 600, "passed": 450, "pass_rate": 0.75,
                             "median_latency_s": 0.015, "with_reference": 0, "reference_passed": 0}]  # fmt: skip


def test_bad_files_and_versions_are_named(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match=r"junk.sqlite is not a usable SQLite database"):
        TraceStore(junk)
    with pytest.raises(ValueError, match="is a folder, not a database file"):
        TraceStore(tmp_path)
    old = tmp_path / "old.sqlite"
    TraceStore(old).close()
    with sqlite3.connect(old) as db:
        db.execute("UPDATE schema SET version = 99")
    with pytest.raises(ValueError, match="has schema version 99, this Banana reads 1"):
        TraceStore(old)


def test_default_place_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BANANA_TRACES", str(tmp_path / "x.sqlite"))
    assert default_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("BANANA_TRACES")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_path() == tmp_path / "cache" / "banana" / "traces.sqlite"
    store = TraceStore()
    store.add([TraceRow(run_id="r", node="n", tool="crop", passed=True, outcome="ok")])
    assert (tmp_path / "cache" / "banana" / "traces.sqlite").is_file() and store.count() == 1
