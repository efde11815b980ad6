"""The session store: turns, undo/redo/branch, kill -9 and two writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from banana.agent.sessions import SCHEMA_VERSION, Store, StoreError, default_home
from banana.tools.values import Image


def picture(i: int) -> Image:
    px = np.zeros((8, 8, 3), np.uint8)
    px[..., 0] = i % 256
    px[..., 1] = i // 256
    return Image(px)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store") as s:
        yield s


def test_turns_undo_redo_branch(store: Store) -> None:
    store.add_turn("s", instruction="", picture=picture(0), kind="open")
    t1 = store.add_turn("s", instruction="blur the background", picture=picture(1), program={"nodes": 1})
    t2 = store.add_turn("s", instruction="stronger", picture=picture(2), critique={"ok": True})
    assert (t1.n, t1.parent, t2.n, t2.parent) == (1, 0, 2, 1)
    assert t2.base == picture(0).content_hash and t2.critique == {"ok": True}
    assert store.undo("s").n == 1
    assert store.undo("s").n == 0
    with pytest.raises(StoreError, match="nothing to undo"):
        store.undo("s")
    assert store.redo("s").n == 1 and store.redo("s").n == 2
    with pytest.raises(StoreError, match="nothing to redo"):
        store.redo("s")
    # branch from turn 1: the new turn is a sibling of turn 2, redo from 1 now follows the new branch
    store.branch("s", 1)
    t3 = store.add_turn("s", instruction="make it warmer", picture=picture(3))
    assert (t3.n, t3.parent) == (3, 1)
    assert [t.n for t in store.path("s")] == [0, 1, 3]
    store.undo("s")
    assert store.redo("s").n == 3
    store.branch("s", 2)  # the old branch is still there
    assert [t.n for t in store.path("s")] == [0, 1, 2]
    assert np.array_equal(store.picture(store.current("s").picture).pixels, picture(2).pixels)
    with pytest.raises(StoreError, match=r"session 's' has no turn 9 \(it has turns 0 to 3\)"):
        store.turn("s", 9)
    with pytest.raises(StoreError, match="no session named 'nope'"):
        store.turns("nope")


def test_edit_needs_a_picture_first_and_open_starts_a_new_base(store: Store) -> None:
    with pytest.raises(StoreError, match="has no picture yet; open one first"):
        store.add_turn("s", instruction="blur", picture=picture(1))
    store.add_turn("s", instruction="", picture=picture(0), kind="open")
    store.add_turn("s", instruction="blur", picture=picture(1))
    opened = store.add_turn("s", instruction="/open other.png", picture=picture(7), kind="open")
    assert opened.base == picture(7).content_hash
    after = store.add_turn("s", instruction="crop", picture=picture(8))
    assert after.base == picture(7).content_hash


def test_survives_reopening_and_checks_the_schema_version(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_turn("s", instruction="", picture=picture(0), kind="open")
        s.add_turn("s", instruction="blur", picture=picture(1), program={"a": [1, 2]})
    with Store(tmp_path) as s:
        assert [t.instruction for t in s.turns("s")] == ["", "blur"] and s.current("s").program == {"a": [1, 2]}
        s.db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match=f"schema version 99; this banana reads version {SCHEMA_VERSION}"):
        Store(tmp_path)


def test_default_home_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BANANA_HOME", str(tmp_path / "bh"))
    assert default_home() == tmp_path / "bh"
    monkeypatch.delenv("BANANA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "banana"


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from banana.agent.sessions import Store
    from banana.tools.values import Image
    root, session, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = Store(root)
    i = 0
    while count < 0 or i < count:
        px = np.random.default_rng().integers(0, 255, (16, 16, 3), dtype=np.uint8)
        turn = store.add_turn(session, instruction=f"{tag}-{i}", picture=Image(px), program={"i": i})
        print(turn.n, turn.instruction, turn.picture, flush=True)
        i += 1
""")


def _writer(root: Path, tag: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(root), "s", tag, str(count)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_kill_9_loses_nothing_that_was_saved(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_turn("s", instruction="", picture=picture(0), kind="open")
    proc = _writer(tmp_path, "w", -1)
    saved = []
    for line in proc.stdout:  # type: ignore[union-attr]
        saved.append(line.split())
        if len(saved) == 25:
            break
    proc.send_signal(signal.SIGKILL)  # mid-way: it is writing more turns right now
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Store(tmp_path) as s:
        assert s.integrity() == "ok"
        stored = {t.n: t for t in s.turns("s")}
        for n, instruction, digest in saved:
            assert stored[int(n)].instruction == instruction and stored[int(n)].picture == digest
            assert s.picture(digest).content_hash == digest
        assert sorted(stored) == list(range(len(stored)))  # dense: no half-written turn
        s.add_turn("s", instruction="after the crash", picture=picture(5))
        assert s.current("s").instruction == "after the crash"


def test_two_processes_append_to_one_session(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_turn("s", instruction="", picture=picture(0), kind="open")
    procs = [_writer(tmp_path, tag, 15) for tag in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    reported = [line.split() for out, _ in outs for line in out.splitlines()]
    assert len(reported) == 30 and len({int(r[0]) for r in reported}) == 30
    with Store(tmp_path) as s:
        assert s.integrity() == "ok"
        turns = s.turns("s")
        assert [t.n for t in turns] == list(range(31))
        assert sorted(t.instruction for t in turns[1:]) == sorted([f"a-{i}" for i in range(15)] + [f"b-{i}" for i in range(15)])
        # each append took the cursor as its parent under the write lock: one unbroken chain
        assert [t.n for t in s.path("s")] == list(range(31))
