"""Honest refusals on both surfaces, junk input, the typed gold builder, the held-out split, harm rules."""

import json
import os
import subprocess
import sys

import jsonschema
import pytest
import xgrammar as xgr

from banana.agent.planner.base import JUNK_REASON, Planner, Refusal, answer_schema, read_answer
from banana.agent.planner.data import FAMILY_NAMES, Generator, heldout_ids
from banana.agent.planner.evaluate import Case, harmful, same_free_text, same_program
from banana.agent.planner.families import TABLES
from banana.agent.planner.gold import Call, GoldError, check_call, steps_text
from banana.agent.program import ProgramError, parse_program
from banana.agent.surface import parse_refusal, parse_steps, refusal_steps, steps_grammar


class Replay:
    name = "replay"

    def __init__(self, answers, surface="steps"):
        self.answers = list(answers)
        self.surface = surface
        self.calls = 0

    def generate(self, request, previous="", problems=None):
        self.calls += 1
        return self.answers.pop(0)


def banana(*args):
    return subprocess.run([sys.executable, "-m", "banana.agent.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


# ---------------------------------------------------------------- surfaces


def test_steps_refusal_parses_and_round_trips():
    line = refusal_steps("a new viewpoint cannot be made from one photo")
    assert line == 'cannot reason="a new viewpoint cannot be made from one photo"'
    assert parse_refusal(line) == "a new viewpoint cannot be made from one photo"
    assert parse_refusal('blur amount=0.5') is None


@pytest.mark.parametrize("text, message", [
    ('cannot reason="no"\nblur amount=0.5', "a refusal is the only line"),
    ("cannot", 'write a refusal as cannot reason="why no tool can do it"'),
    ('cannot reason=""', "the refusal needs a reason"),
])
def test_broken_steps_refusals_are_program_errors(text, message):
    with pytest.raises(ProgramError, match=message):
        parse_refusal(text)


def test_json_refusal_and_its_schema(registry):
    answer = read_answer('{"cannot": "puzzles are not edits"}', "json", registry)
    assert answer == Refusal(reason="puzzles are not edits")
    with pytest.raises(ProgramError, match=r'a refusal is exactly \{"cannot"'):
        read_answer('{"cannot": "x", "nodes": []}', "json", registry)
    schema = answer_schema(registry)
    jsonschema.validate({"cannot": "puzzles are not edits"}, schema)
    jsonschema.validate({"version": 1, "nodes": [{"id": "b", "tool": "blur", "args": {"image": "$input"}}], "output": "$b"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"cannot": 3}, schema)


def test_grammar_allows_one_refusal_line_only(registry):
    from transformers import AutoTokenizer

    from banana.agent.planner.model import base_model_dir, im_end_id

    tok = AutoTokenizer.from_pretrained(base_model_dir(), local_files_only=True)
    info = xgr.TokenizerInfo.from_huggingface(tok, stop_token_ids=[im_end_id(tok)])
    compiled = xgr.GrammarCompiler(info).compile_grammar(steps_grammar(registry))

    def accepts(text):
        return xgr.GrammarMatcher(compiled).accept_string(text)

    assert accepts('cannot reason="a new viewpoint cannot be made from one photo"\n')
    assert not accepts('cannot reason="no"\nblur amount=0.5\n')
    assert not accepts('blur amount=0.5\ncannot reason="no"\n')


# ---------------------------------------------------------------- the planner loop and the CLI


def test_planner_returns_a_typed_refusal(registry):
    backend = Replay(['cannot reason="solving puzzles or games is not a picture edit"'])
    plan = Planner(backend, registry).plan("solve the sudoku")
    assert plan.refused and plan.program is None and plan.refusal == "solving puzzles or games is not a picture edit"
    assert json.loads(plan.to_json()) == {"cannot": "solving puzzles or games is not a picture edit"}


def test_a_broken_answer_can_be_repaired_into_a_refusal(registry):
    backend = Replay(["invert", 'cannot reason="that is not something a picture edit can do"'])
    plan = Planner(backend, registry).plan("make it smell nice")
    assert plan.refused and plan.repaired


@pytest.mark.parametrize("junk", ["   ", "???", "123 456", "!!", "🙂🙂", "x"])
def test_junk_is_refused_without_asking_the_model(registry, junk):
    backend = Replay([])
    plan = Planner(backend, registry).plan(junk)
    assert plan.refusal == JUNK_REASON and backend.calls == 0 and plan.program is None


def test_jsonl_line_of_a_refusal(registry):
    from banana.agent.cli import _plan_line

    planner = Planner(Replay(['cannot reason="other moments in time cannot be predicted from one photo"', "blur amount=0.5"]), registry)
    assert json.loads(_plan_line(planner, "what happens next")) == {"cannot": "other moments in time cannot be predicted from one photo"}
    assert json.loads(_plan_line(planner, "blur it"))["nodes"][0]["tool"] == "blur"
    assert json.loads(_plan_line(planner, "?!")) == {"cannot": JUNK_REASON}


def test_cli_refuses_junk_with_exit_3_before_loading_a_model(tmp_path):
    proc = banana("edit", "sample:coffee", "???", "-o", str(tmp_path / "o.png"))
    assert proc.returncode == 3, proc.stderr
    assert f"cannot: {JUNK_REASON}" in proc.stderr.replace("\n", " ") and "loading" not in proc.stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_edit_exits_3_when_the_real_planner_refuses(tmp_path):
    proc = banana("edit", "sample:coffee", "show me the back of the house from the other side", "-o", str(tmp_path / "o.png"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot:" in proc.stderr and "viewpoint" in proc.stderr
    assert not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------- gold builder and generator


def test_builder_rejects_unknown_tools_and_args(registry):
    with pytest.raises(GoldError, match="unknown tool 'sharpenn'"):
        check_call(Call("sharpenn"), registry)
    with pytest.raises(GoldError, match="blur 'amont' is not an argument; blur takes amount"):
        check_call(Call("blur", {"amont": 0.5}), registry)
    with pytest.raises(GoldError, match="blur 'mask' is a port"):
        check_call(Call("blur", {"mask": "$m"}), registry)
    with pytest.raises(GoldError, match="blur amount: Input should be less than or equal to 1"):
        check_call(Call("blur", {"amount": 3}), registry)
    with pytest.raises(GoldError, match="is not a valid program"):
        steps_text([Call("invert"), Call("blur")], registry)  # invert needs a mask nobody made
    assert steps_text([Call("segment", {"target": "sky"}), Call("sharpen", {"amount": 0.5})], registry) == 'segment target="sky"\nsharpen'


def test_every_table_family_builds_valid_gold(registry):
    gen = Generator(seed=11, split="all", registry=registry)
    for family in TABLES:
        for _ in range(15):
            clause = gen.table(family)
            if family.reason:
                assert parse_refusal(refusal_steps(clause.reason)) == family.reason
            else:
                parse_steps(steps_text(clause.calls, registry), registry)


def test_heldout_split_covers_every_family(registry):
    for family in TABLES:
        assert heldout_ids(family.name, family.templates), family.name
    held = Generator(seed=2, split="heldout", registry=registry).examples(2500)
    seen = {f for e in held for f in e.family.split("+")}
    assert set(FAMILY_NAMES) <= seen, sorted(set(FAMILY_NAMES) - seen)
    assert any(e.refusal for e in held)


def test_degradations_and_additions_use_the_right_tools(registry):
    gen = Generator(seed=4, split="all", registry=registry)
    by_name = {f.name: f for f in TABLES}
    for name, tools in [("sharpen", {"sharpen"}), ("dehaze", {"dehaze"}), ("denoise", {"denoise"}),
                        ("insert_on", {"detect", "region", "insert"}), ("fromto", {"segment", "recolor"})]:
        for _ in range(10):
            clause = gen.table(by_name[name])
            assert {c.tool for c in clause.calls} == tools, (name, clause.text)
            if name == "fromto":  # the TO colour, never the FROM colour
                assert clause.calls[1].args["color"] == clause.slots["c2"] != clause.slots["c1"]
                assert clause.text.index(clause.slots["c2"]) != clause.text.index(clause.slots["c1"])


# ---------------------------------------------------------------- evaluation: refusals, free text, harm


def prog(*nodes):
    return parse_program({"version": 1, "nodes": [{"id": f"n{i}", "tool": t, "args": a} for i, (t, a) in enumerate(nodes)],
                          "output": f"$n{len(nodes) - 1}"})


def test_harm_rules_are_mechanical(registry):
    blur_all = prog(("blur", {"image": "$input", "amount": 0.5}))
    remove_shelf = prog(("segment", {"image": "$input", "target": "wooden shelf"}), ("invert", {"mask": "$n0"}),
                        ("remove", {"image": "$input", "mask": "$n1"}))
    darker = prog(("adjust", {"image": "$input", "brightness": -0.4}))
    assert harmful(blur_all, ["tool:blur", "unmasked:blur", "tool:remove"], registry) == ["tool:blur", "unmasked:blur"]
    assert harmful(remove_shelf, ["tool:remove@shelf", "tool:remove@vase"], registry) == ["tool:remove@shelf"]
    assert harmful(darker, ["arg:adjust.brightness<0", "arg:adjust.contrast<0"], registry) == ["arg:adjust.brightness<0"]
    assert harmful(None, ["any_plan", "refuse"], registry) == ["refuse"]
    assert harmful(darker, ["any_plan"], registry) == ["any_plan"]
    recolor = prog(("segment", {"image": "$input", "target": "car"}), ("recolor", {"image": "$input", "mask": "$n0", "color": "Blue"}))
    assert harmful(recolor, ["arg:recolor.color=blue"], registry) == ["arg:recolor.color=blue"]


def test_cases_need_one_gold_and_readable_harm():
    with pytest.raises(ValueError, match="exactly one of program or cannot"):
        Case(instruction="x")
    with pytest.raises(ValueError, match="unreadable harm rule 'blur'"):
        Case(instruction="x", cannot="no", harm=["blur"])


def test_free_text_instructions_match_by_content_words(registry):
    assert same_free_text("make it night", "turn it into night")
    assert not same_free_text("make it night", "make it snowy")
    a = prog(("edit", {"image": "$input", "instruction": "make it night"}))
    b = prog(("edit", {"image": "$input", "instruction": "Change it to night"}))
    c = prog(("edit", {"image": "$input", "instruction": "make it sunny"}))
    assert same_program(a, b, registry) and not same_program(a, c, registry)


# ---------------------------------------------------------------- one place defines meaning


def test_docs_carry_the_planner_notes_of_the_registry(registry):
    from pathlib import Path

    from banana.agent.planner.conventions import markdown

    docs = (Path(__file__).parents[1] / "docs" / "catalogue.md").read_text()
    assert markdown(registry) in docs, "docs/catalogue.md is out of date: paste `python -m banana.agent.planner.conventions`"


def test_json_prompt_lists_the_notes_and_the_refusal(registry):
    from banana.agent.planner.base import PlanRequest
    from banana.agent.planner.conventions import notes
    from banana.agent.planner.http import ServerBackend, ServerConfig

    backend = ServerBackend(registry, ServerConfig(few_shot=0))
    system = backend.messages(PlanRequest(instruction="blur it"))[0]["content"]
    for tool, note in notes(registry):
        assert f"- {tool}: {note}" in system
    assert '{"cannot": "<why, in a few words>"}' in system
