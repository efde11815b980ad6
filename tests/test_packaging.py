"""The installed package: `banana` is the only top-level import name (the folders map onto it)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_only_banana(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("banana_edit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"banana"}
    for expected in ("banana/agent/cli.py", "banana/tools/spec.py", "banana/experts/catalogue.py", "banana/backbone/tools.py",
                     "banana/prompts/steps_planner.j2", "banana/agent/planner/adapter/adapter_model.safetensors"):
        assert expected in names, expected
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "banana.agent.cli:main" in entry_points and "core = banana.experts.catalogue" in entry_points


def test_old_top_level_names_do_not_import_outside_the_checkout(tmp_path):
    code = "import banana.agent.cli, banana.experts.catalogue\nimport importlib.util as u\n" \
           "print([n for n in ('agent', 'tools', 'experts', 'backbone', 'prompts') if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"
