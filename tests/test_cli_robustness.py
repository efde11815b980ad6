"""The CLI under a careless user: outputs checked before any work, Ctrl-C stops a run and writes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def banana(*args, **kw):
    return subprocess.run([sys.executable, "-m", "banana.agent.cli", *args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 1, "nodes": [{"id": "w", "tool": "adjust", "args": {"image": "$input", "warmth": 0.3}}],
                                "output": "$w"}))
    return path


def test_output_naming_a_folder_is_refused_before_any_work(tmp_path, program):
    proc = banana("run", str(program), "-i", "sample:coffee", "-o", str(tmp_path), "-q")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: -o {tmp_path} is a folder; name a file in it, e.g. {tmp_path / 'out.png'}"


def test_unknown_kind_and_a_file_in_the_way(tmp_path, program):
    proc = banana("run", str(program), "-i", "sample:coffee", "-o", str(tmp_path / "x.gif2"), "-q")
    assert proc.returncode == 2 and "unknown file kind '.gif2'" in proc.stderr
    proc = banana("run", str(program), "-i", "sample:coffee", "-o", str(program / "x.png"), "-q")
    assert proc.returncode == 2 and f"{program} is a file, not a folder" in proc.stderr


def test_save_program_to_a_folder_is_refused_before_the_planner_loads(tmp_path):
    proc = banana("edit", "sample:coffee", "make it warmer", "-o", str(tmp_path / "o.png"), "--save-program", str(tmp_path))
    assert proc.returncode == 2 and "--save-program" in proc.stderr and "is a folder" in proc.stderr
    assert "loading the planner" not in proc.stderr and not (tmp_path / "o.png").exists()


def test_ctrl_c_cancels_the_running_node_and_writes_nothing(tmp_path):
    """Real-ESRGAN 4x on a 1400 px picture runs for many seconds, tile by tile; SIGINT stops it at the next tile."""
    import cv2
    import numpy as np

    from banana.agent.samples import sample
    from banana.tools.values import Image

    picture = tmp_path / "in.png"
    Image(np.ascontiguousarray(cv2.resize(sample("astronaut").pixels, (1400, 1400)))).save(picture)
    program = tmp_path / "up.json"
    program.write_text(json.dumps({"version": 1, "nodes": [{"id": "u", "tool": "upscale", "args": {"image": "$input", "factor": 4}}],
                                   "output": "$u"}))
    out = tmp_path / "big.png"
    proc = subprocess.Popen([sys.executable, "-m", "banana.agent.cli", "run", str(program), "-i", str(picture), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "120"})
    time.sleep(7)  # imports, then the first of many tiles (the whole run takes over 15 s)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted: nothing was written" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "up.json"]  # no picture, no half-written temporary file


def test_results_get_the_mode_any_new_file_gets(tmp_path, program):
    out = tmp_path / "o.png"
    proc = banana("run", str(program), "-i", "sample:coffee", "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
