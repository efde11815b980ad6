"""Round-5 generator families: any everyday noun after "remove", face-only tone, the kept object, white backgrounds.

These rows target round 4's failures on blind requests; the tests check the gold plans mean what the rows say,
and that no generated request of these families is an evaluation request (the sets stay held out).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from banana.agent.planner import families as fam
from banana.agent.planner.data import TABLE_BY_NAME, Generator
from banana.agent.planner.gold import steps_text

BENCH = Path(__file__).resolve().parents[1] / "bench" / "planner"


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9#]+", " ", text.lower()).strip()


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(3, "all")


def _clauses(gen: Generator, name: str, n: int = 40):
    return [gen.table(TABLE_BY_NAME[name]) for _ in range(n)]


def test_remove_any_noun_segments_that_noun_and_removes(gen):
    for c in _clauses(gen, "remove_any"):
        assert [call.tool for call in c.calls] == ["segment", "remove"]
        assert c.calls[0].args["target"] == c.slots["ro_t"] and c.slots["ro_t"] in fam.EVERYDAY
        assert c.slots["ro_t"] in c.text


def test_face_only_tone_segments_the_face_and_never_inverts(gen):
    signs = {"face_brighten": ("brightness", 1), "face_darken": ("brightness", -1), "face_warm": ("warmth", 1),
             "face_contrast": ("contrast", 1)}
    for name, (attr, sign) in signs.items():
        for c in _clauses(gen, name):
            tools = [call.tool for call in c.calls]
            assert tools == ["segment", "adjust"] and "invert" not in tools
            assert c.calls[0].args == {"target": "face"}
            assert c.calls[1].args[attr] * sign > 0


def test_the_kept_object_is_the_foreground_of_the_new_background(gen):
    for name in ("keep_object_backdrop", "keep_object_scene", "object_white_background"):
        for c in _clauses(gen, name):
            assert [call.tool for call in c.calls] == ["segment", "replace_background"]
            assert c.calls[0].args["target"] == c.slots["ro_t"] != "person"
    assert all(c.calls[1].args == {"color": "white"} for c in _clauses(gen, "object_white_background"))


def test_round5_gold_plans_validate(gen, registry):
    for f in fam.ROUND5:
        for c in _clauses(gen, f.name, 10):
            steps_text(c.calls, registry)  # raises GoldError on anything the registry would not accept


def test_nouns_are_everyday_objects_not_degradations_or_evaluation_nouns():
    degradations = {"blur", "noise", "grain", "haze", "fog", "rain", "glare", "reflection", "shadow", "text", "watermark"}
    assert len(fam.EVERYDAY) >= 200 and len(set(fam.EVERYDAY)) == len(fam.EVERYDAY)
    assert not [n for n in fam.EVERYDAY if set(n.split()) & degradations]
    requests = " ".join(f" {_norm(json.loads(line)['instruction'])} " for p in BENCH.glob("*.jsonl")
                        for line in p.read_text().splitlines() if line.strip())
    assert [n for n in fam.EVERYDAY if f" {_norm(n)} " in requests] == []


def test_no_round5_request_is_an_evaluation_request():
    requests = {_norm(json.loads(line)["instruction"]) for p in BENCH.glob("*.jsonl") for line in p.read_text().splitlines()
                if line.strip()}
    gen = Generator(11, "all")
    made = {_norm(gen.table(TABLE_BY_NAME[f.name]).text) for f in fam.ROUND5 for _ in range(400)}
    assert len(made) > 2000
    assert made & requests == set()
