"""Batch jobs: manifests, the journal (kill -9 and resume), local worker processes, Ray actors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from banana.agent.batch import JOURNAL, Item, Journal, ManifestError, read_manifest, run_batch
from banana.agent.cli import app
from banana.agent.samples import sample
from banana.tools.values import Image

WARM = {"version": 1, "nodes": [{"id": "w", "tool": "adjust", "args": {"image": "$input", "warmth": 0.5}}], "output": "$w"}


def small(name: str, side: int = 96) -> Image:
    return Image(np.ascontiguousarray(sample(name).pixels[:side, :side]))


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """A folder with pictures, a program and a manifest: 1 single input, a glob of 2, one missing file."""
    (tmp_path / "shots").mkdir()
    for name in ("coffee", "chelsea"):
        small(name).save(tmp_path / "shots" / f"{name}.png")
    (tmp_path / "warm.json").write_text(json.dumps(WARM))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(j) for j in [
        {"id": "hero", "input": "shots/coffee.png", "program": "warm.json"},
        {"input": "shots/*.png", "program": "warm.json"},
        {"id": "broken", "input": "shots/missing.png", "program": "warm.json"},
    ]) + "\n")
    return manifest


def test_manifest_items_and_outputs(job: Path, tmp_path: Path) -> None:
    items = read_manifest(job, tmp_path / "out")
    assert [(i.id, Path(i.output).relative_to(tmp_path / "out").as_posix()) for i in items] == [
        ("hero", "hero.png"), ("2/chelsea", "2/chelsea.png"), ("2/coffee", "2/coffee.png"), ("broken", "broken.png")]
    assert items[0].program == WARM and items[0].input == str(tmp_path / "shots" / "coffee.png")
    yaml_manifest = tmp_path / "m.yaml"
    yaml_manifest.write_text("jobs:\n  - input: sample:astronaut\n    instruction: make it warmer\n  - id: x\n    input: shots/*.png\n"
                             "    program: warm.json\n")
    assert [i.id for i in read_manifest(yaml_manifest, tmp_path / "out")] == ["1", "x/chelsea", "x/coffee"]


@pytest.mark.parametrize(("lines", "message"), [
    (['{"input": "a.png"'], r"m.jsonl:1: not valid JSON"),
    (['', '{"input": "a.png"}'], r"m.jsonl:2: job: Value error, give exactly one of 'instruction' or 'program'"),
    (['{"input": "a.png", "instruction": "x", "program": "p.json"}'], "give exactly one of"),
    (['{"input": "a.png", "instruction": "x", "colour": 1}'], r"m.jsonl:1: colour: Extra inputs are not permitted"),
    (['{"id": "../up", "input": "a.png", "instruction": "x"}'], r"id '../up' must be letters"),
    (['{"input": "nothing/*.png", "instruction": "x"}'], r"no file matches 'nothing/\*.png'"),
    (['{"input": "a.png", "program": "nope.json"}'], "no program file at"),
    (['{"id": "a", "input": "a.png", "instruction": "x"}', '{"id": "a", "input": "b.png", "instruction": "y"}'],
     r"m.jsonl:2: item 'a' is also made by .*m.jsonl:1"),
    (['# only a comment'], "the manifest has no jobs"),
])
def test_manifest_errors_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=message):
        read_manifest(manifest, tmp_path / "out")


def test_local_batch_runs_reports_and_resumes(job: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["batch", str(job), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 1, res.output  # one item failed, the rest went on
    assert "3 done, 1 failed of 4" in res.output
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [("hero", "done"), ("2/chelsea", "done"), ("2/coffee", "done"),
                                                     ("broken", "failed")]
    assert rows[3]["error"].startswith("FileNotFoundError: no image at") and rows[3]["output"] is None
    assert rows[0]["critique"]["passed"] is True and rows[0]["timings"]["total"] > 0
    # one worker, one agent: the same process served every item in turn
    assert len({r["pid"] for r in rows}) == 1 and sorted(r["served"] for r in rows) == [1, 2, 3, 4]
    warm = Image.load(out / "hero.png").pixels.astype(int)
    orig = small("coffee").pixels.astype(int)
    assert (warm[..., 0] - warm[..., 2]).mean() > (orig[..., 0] - orig[..., 2]).mean()
    page = (out / "index.html").read_text()
    assert page.count("<tr class=") == 4 and 'src="thumbs/2__coffee.after.jpg"' in page and "no image at" in page
    assert (out / "thumbs" / "hero.before.jpg").is_file()
    # the same command again: nothing is redone
    stamp = (out / "hero.png").stat().st_ino, (out / "hero.png").stat().st_mtime_ns
    res = CliRunner().invoke(app, ["batch", str(job), "--out", str(out)])
    assert "3 done, 1 failed of 4 (4 finished earlier, 0 recovered)" in res.output
    assert ((out / "hero.png").stat().st_ino, (out / "hero.png").stat().st_mtime_ns) == stamp


def test_a_running_item_whose_output_landed_is_recovered_not_redone(job: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    items = read_manifest(job, out)
    out.mkdir()
    journal = Journal(out / JOURNAL)
    journal.sync(items)
    journal.claim(items[0])  # the crash came after the worker's rename, before the journal's "done"
    small("coffee").save(items[0].output)
    journal.close()
    before = os.stat(items[0].output).st_ino
    report = run_batch(job, out, workers=1, critic=False)
    assert (report.recovered, report.done, report.failed) == (1, 3, 1)
    assert os.stat(items[0].output).st_ino == before


def _done(out: Path) -> int:
    try:
        with sqlite3.connect(out / JOURNAL, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM items WHERE status = 'done'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_then_the_same_command_loses_nothing_and_redoes_nothing(tmp_path: Path) -> None:
    (tmp_path / "warm.json").write_text(json.dumps(WARM))
    manifest = tmp_path / "m.jsonl"
    names = ["coffee", "chelsea", "astronaut", "china", "flower", "grace_hopper"] * 2
    manifest.write_text("".join(json.dumps({"id": f"i{k}", "input": f"sample:{n}", "program": "warm.json"}) + "\n"
                                for k, n in enumerate(names)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "banana.agent.cli", "batch", str(manifest), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while _done(out) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers, mid-way (as a power cut would)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("i*.png")}
    assert 3 <= len(finished) < len(names)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done"] * len(names)  # 0 lost
    for name, stamp in finished.items():  # 0 done twice: what was written before the kill was not written again
        p = out / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp
    assert all(r["attempts"] <= 2 for r in rows) and sum(r["attempts"] == 2 for r in rows) <= 1  # only the one in flight
    assert not list(out.glob(".tmp-*"))


def test_ray_engine_runs_the_same_job_on_actors(job: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        report = run_batch(job, tmp_path / "out", workers=2, engine="ray")
    finally:
        ray.shutdown()
    assert (report.total, report.done, report.failed) == (4, 3, 1)
    rows = [json.loads(line) for line in (tmp_path / "out" / "summary.jsonl").read_text().splitlines()]
    assert len({r["pid"] for r in rows}) <= 2 and all(r["pid"] != os.getpid() for r in rows)
    assert max(r["served"] for r in rows) >= 2  # an actor kept its agent across items
    assert Image.load(tmp_path / "out" / "2" / "chelsea.png").pixels.shape == (96, 96, 3)


def test_item_spec_hash_changes_with_the_instruction() -> None:
    a = Item(id="a", job="a", input="x.png", output="o/a.png", instruction="blur")
    assert a.spec_hash() != a.model_copy(update={"instruction": "crop"}).spec_hash()


def test_a_worker_that_dies_fails_only_the_item_in_flight(tmp_path: Path) -> None:
    import threading

    psutil = pytest.importorskip("psutil")
    (tmp_path / "warm.json").write_text(json.dumps(WARM))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"i{k}", "input": f"sample:{n}", "program": "warm.json"}) + "\n"
                                for k, n in enumerate(["coffee", "chelsea", "astronaut", "china", "flower", "grace_hopper"])))
    out = tmp_path / "out"
    reports = []
    thread = threading.Thread(target=lambda: reports.append(run_batch(manifest, out, workers=1)))
    thread.start()
    deadline = time.time() + 120
    while _done(out) < 2 and time.time() < deadline:
        time.sleep(0.05)
    workers = [p for p in psutil.Process().children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())]
    assert workers
    for p in workers:
        p.kill()  # as a segfault in a native library would
    thread.join(timeout=180)
    (report,) = reports
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    failed = [r for r in rows if r["status"] == "failed"]
    assert report.total == 6 and len(failed) <= 1 and report.done == 6 - len(failed)
    assert all("a worker process died" in r["error"] for r in failed)
