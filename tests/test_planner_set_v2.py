"""The realistic blind v2 planner set: it loads, every program validates, every harm rule parses,
and no request is shared with another planner set or with the training-data generator (it must stay blind)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from banana.agent.planner.data import Generator
from banana.agent.planner.evaluate import HARM_RULE, Case, harmful, load_cases
from banana.agent.program import Program, parse_program, validate
from banana.tools.registry import default_registry

HERE = Path(__file__).resolve().parents[1] / "bench" / "planner"
SET = HERE / "realistic_blind_v2.jsonl"
GENERATOR_DRAWS = 20_000


def _key(text: str) -> str:
    """Lower-case words only: 'Crop it, square!' and 'crop it square' are the same request."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return load_cases(SET)


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def test_size_categories_and_refusals(cases: list[Case]) -> None:
    assert 100 <= len(cases) <= 120
    cats = Counter(c.note.split(":")[0] for c in cases)
    assert set(cats) == {"background", "tone", "object", "text", "style", "geometry", "restore", "faces", "compound", "refusal"}
    refusals = [c for c in cases if c.cannot is not None]
    assert len(refusals) == cats["refusal"] >= 12
    assert all(c.harm == ["any_plan"] for c in refusals)
    assert len({_key(c.instruction) for c in cases}) == len(cases), "a request appears twice"


def test_every_gold_and_also_program_validates(cases: list[Case], registry) -> None:
    checked = 0
    for case in cases:
        for program in ([case.program] if case.program else []) + case.also:
            validate(Program.model_validate(program), registry, inputs={"input": "Image"})
            checked += 1
    assert checked > len(cases) - 20


def test_harm_rules_parse_and_spare_the_gold(cases: list[Case], registry) -> None:
    """Every rule is readable, and no gold or `also` program is itself harmful under its own case's rules."""
    for case in cases:
        assert all(HARM_RULE.match(rule) for rule in case.harm), case.instruction
        for program in ([case.program] if case.program else []) + case.also:
            assert harmful(parse_program(program), case.harm, registry) == [], case.instruction
        if case.cannot is not None:
            assert harmful(None, case.harm, registry) == [], case.instruction


def test_harm_rules_catch_a_wrong_plan(registry) -> None:
    """Spot check that the rules bite: blurring the whole picture for 'blur the background behind me' is harmful."""
    case = next(c for c in load_cases(SET) if c.instruction == "blurr the backgrnd behind me pls")
    blur_all = {"id": "b", "tool": "blur", "args": {"image": "$input", "amount": 0.5}}
    wrong = parse_program({"version": 1, "nodes": [blur_all], "output": "$b"})
    assert harmful(wrong, case.harm, registry) == ["unmasked:blur"]


def test_no_request_in_another_planner_set(cases: list[Case]) -> None:
    others = [p for p in sorted(HERE.glob("*.jsonl")) if p != SET]
    assert others, "the other planner sets are missing"
    mine = {_key(c.instruction) for c in cases}
    for path in others:
        shared = sorted(mine & {_key(c.instruction) for c in load_cases(path)})
        assert not shared, f"{path.name} shares {shared}"  # only our own words in the message: the other sets stay unseen


def test_no_request_drawn_by_the_generator(cases: list[Case], registry) -> None:
    mine = {_key(c.instruction) for c in cases}
    drawn = {_key(ex.instruction) for ex in Generator(seed=0, split="train", registry=registry).examples(GENERATOR_DRAWS)}
    shared = sorted(mine & drawn)
    assert len(drawn) > 1000
    assert not shared, f"the generator draws {shared}"  # only our own words in the message
