"""Hostile or careless programs: every one is a clear one-line problem, nothing crashes, nothing huge is echoed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from banana.agent.program import MAX_NODES, MAX_PROGRAM_BYTES, ProgramError, validate


def problems(program, registry) -> list[str]:
    with pytest.raises(ProgramError) as info:
        validate(program, registry)
    return [str(p) for p in info.value.problems]


def blur(**args):
    return {"version": 1, "nodes": [{"id": "b", "tool": "blur", "args": {"image": "$input", **args}}], "output": "$b"}


def test_a_trailing_newline_is_not_an_id(registry):
    program = {"version": 1, "nodes": [{"id": "a\n", "tool": "blur", "args": {"image": "$input"}}], "output": "$a\n"}
    assert problems(program, registry) == [
        "node 'a\\n', id: id must match ^[a-z_][a-z0-9_]{0,31}$ (lowercase, digits, _)",
        "program, output: output must be a reference like \"$node_id\", got '$a\\n'",
    ]


def test_a_reference_with_a_trailing_newline_is_refused(registry):
    assert problems(blur(image="$input\n"), registry) == [
        "node 'b', args.image: '$input\\n' is not a valid reference (\"$\" then an id)"]


@pytest.mark.parametrize("value", [True, False])
def test_true_is_not_a_number(registry, value):
    assert problems(blur(amount=value), registry) == [
        f"node 'b', args.amount: amount={json.dumps(value)}: expected a number, not true/false"]


def test_true_stays_fine_where_a_flag_is_expected(registry):
    program = {"version": 1, "nodes": [{"id": "r", "tool": "rotate", "args": {"image": "$input", "degrees": 90, "expand": False}}],
               "output": "$r"}
    if "rotate" in registry:
        validate(program, registry)


def test_infinite_numbers_are_refused(registry):
    program = '{"version":1,"nodes":[{"id":"c","tool":"crop","args":{"image":"$input","box":[0,0,1e400,10]}}],"output":"$c"}'
    assert problems(program, registry) == ["node 'c', args.box.2: box.2=inf: Input should be a finite number"]


def test_huge_values_are_cut_in_messages(registry):
    junk = "x" * 1_000_000
    for program in (blur(**{junk: 1}), blur(image=junk), {"version": 1, "nodes": [{"id": "b", "tool": junk, "args": {}}], "output": "$b"},
                    {**blur(), "output": junk}):
        messages = problems(program, registry)
        assert messages and all(len(m) < 400 for m in messages), [m[:100] for m in messages]
        assert any("1000002 characters" in m or "1000000 characters" in m for m in messages)


def test_over_the_node_limit_stops_at_once(registry):
    program = {"version": 1, "nodes": [{"id": f"n{i}", "tool": "blurr", "args": {}} for i in range(10_000)], "output": "$n0"}
    assert problems(program, registry) == [f"program: the program has 10000 nodes; at most {MAX_NODES} are allowed"]


def test_deep_json_and_bad_bytes(registry):
    assert problems("[" * 100_000 + "]" * 100_000, registry) == [
        "program: the JSON is nested too deeply; a program is at most a few levels deep"]
    assert problems(b'\xff\xfe{"version": 1}', registry) == ["program: not UTF-8 text: byte 0xff at offset 0"]
    assert problems(" " * (MAX_PROGRAM_BYTES + 1), registry) == [
        f"program: the program is {MAX_PROGRAM_BYTES + 1} characters; at most {MAX_PROGRAM_BYTES} are allowed"]


def banana(*args):
    return subprocess.run([sys.executable, "-m", "banana.agent.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("content", "expected"), [
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
])
def test_cli_validate_says_what_is_wrong_in_one_line(tmp_path, content, expected):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    proc = banana("validate", str(path))
    assert proc.returncode == 1 and expected in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 2


def test_rich_markup_in_a_path_prints_as_written(tmp_path):
    folder = tmp_path / "[" / "x]"  # the path reads .../[/x]/p.json
    folder.mkdir(parents=True)
    proc = banana("validate", str(folder / "p.json"))
    assert proc.returncode == 2 and f"no program file at {folder / 'p.json'}" in proc.stderr and "Traceback" not in proc.stderr
