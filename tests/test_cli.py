"""The banana command, run as a real process on a real photo."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from banana.tools.values import Image


def banana(*args, check=False, env=None):
    proc = subprocess.run([sys.executable, "-m", "banana.agent.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def write(tmp_path, program, name="p.json"):
    path = tmp_path / name
    path.write_text(json.dumps(program))
    return path


def test_tools_json_lists_typed_ports():
    tools = {t["name"]: t for t in json.loads(banana("tools", "--json", check=True).stdout)}
    assert tools["blur"]["inputs"] == {"image": {"type": "Image", "required": True}, "mask": {"type": "Mask", "required": False}}
    assert tools["blur"]["output"] == "Image"
    assert tools["invert"]["role"] == "mask"


def test_tools_table_lists_every_registered_tool_once(registry):
    out = banana("tools", check=True, env={"COLUMNS": "400"}).stdout  # wide enough that no name folds
    first_cells = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") >= 5]
    names = [c for c in first_cells if c and c != "tool"]
    assert sorted(names) == sorted(spec.name for spec in registry)
    assert f"{len(registry)} tools" in out


def test_schema_is_json_with_every_tool():
    schema = json.loads(banana("schema", check=True).stdout)
    consts = {v["properties"]["tool"]["const"] for v in schema["properties"]["nodes"]["items"]["anyOf"]}
    assert {"blur", "adjust", "crop"} <= consts


def test_validate_cycle_exits_1_and_names_nodes(tmp_path):
    path = write(tmp_path, {"version": 1, "nodes": [
        {"id": "left", "tool": "blur", "args": {"image": "$right"}},
        {"id": "right", "tool": "blur", "args": {"image": "$left"}}], "output": "$right"})
    proc = banana("validate", str(path))
    assert proc.returncode == 1
    assert "cycle left -> right -> left" in proc.stderr


def test_validate_ok(tmp_path):
    proc = banana("validate", "examples/vignette.json")
    assert proc.returncode == 0 and "ok" in proc.stdout


def test_validate_missing_file(tmp_path):
    proc = banana("validate", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "no program file" in proc.stderr


def test_run_end_to_end_on_astronaut(tmp_path, astronaut):
    src = tmp_path / "astronaut.png"
    astronaut.save(src)
    path = write(tmp_path, {"version": 1, "nodes": [
        {"id": "grey", "tool": "adjust", "args": {"image": "$input", "saturation": -1}},
        {"id": "square", "tool": "crop", "args": {"image": "$grey", "box": [100, 20, 300, 220]}},
        {"id": "unused", "tool": "blur", "args": {"image": "$input"}}], "output": "$square"})
    out = tmp_path / "out.png"
    proc = banana("run", str(path), "--input", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "grey" in proc.stderr and "square" in proc.stderr and "unused" not in proc.stderr  # timing table
    result = Image.load(out).pixels.astype(int)
    assert result.shape == (200, 200, 3)
    assert np.array_equal(result[..., 0], result[..., 1]) and np.array_equal(result[..., 1], result[..., 2])
    region = astronaut.pixels[20:220, 100:300].astype(np.float32) / 255
    luma = region @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(result[..., 0] - np.round(luma * 255)).max() <= 1


def test_run_sample_input_and_failure_exit(tmp_path):
    path = write(tmp_path, {"version": 1, "nodes": [
        {"id": "c", "tool": "crop", "args": {"image": "$input", "box": [5000, 5000, 6000, 6000]}}], "output": "$c"})
    proc = banana("run", str(path), "--input", "sample:coffee", "-o", str(tmp_path / "o.png"))
    assert proc.returncode == 1
    assert "node 'c' (crop) failed: ValueError: crop box" in proc.stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("bad", ["missing.png", "sample:nothing"])
def test_run_bad_input(tmp_path, bad):
    proc = banana("run", "examples/vignette.json", "--input", bad, "-o", str(tmp_path / "o.png"))
    assert proc.returncode == 2 and "--input" in proc.stderr


def test_empty_instruction_is_refused_before_any_model_loads():
    proc = banana("plan", "")
    assert proc.returncode == 2 and "instruction: String should have at least 1 character" in proc.stderr
    assert "loading" not in proc.stderr


def test_unwritable_output_is_a_clear_error(tmp_path):
    proc = banana("run", "examples/vignette.json", "-i", "sample:coffee", "-o", str(tmp_path / "out.unknownext"))
    assert proc.returncode == 2 and "unknown file kind '.unknownext'; use one of .png" in proc.stderr
