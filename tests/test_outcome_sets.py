"""The blind outcome sets v3–v8 are well-formed and sound: each case's hand-written gold program (and every other
reasonable answer) passes ``bench.outcomes.judge`` and each plausible wrong program fails (no planner involved)."""

from __future__ import annotations

import json

import pytest

from banana.agent.executor import Executor, ResultCache
from banana.agent.program import validate
from banana.agent.samples import SAMPLES
from banana.tools.registry import default_registry
from bench.outcomes_check import SETS, check_case, load_cases, load_programs, programs_dir

KINDS = {
    "changed", "unchanged", "brighter", "darker", "more_contrast", "less_contrast", "more_saturated", "less_saturated",
    "grayscale", "warmer", "cooler", "hue_near", "color_near", "blurrier", "sharper", "less_noise", "aspect", "size",
    "same_size", "smaller", "flipped", "rotated", "less_of", "identity_kept", "faces_kept", "not_constant",
}  # fmt: skip
CASES = [(name, case) for name in SETS for case in load_cases(name)]


@pytest.mark.parametrize("name", SETS)
def test_the_set_is_well_formed(name: str) -> None:
    cases = load_cases(name)
    ids = [c["id"] for c in cases]
    assert 45 <= len(cases) <= 60
    assert len(set(ids)) == len(ids)
    assert {p.stem for p in programs_dir(name).glob("*.json")} == set(ids)
    for c in cases:
        assert set(c) == {"id", "image", "instruction", "expect", "note"}, c["id"]
        assert c["image"] in SAMPLES, c["id"]
        assert 1 <= len(c["expect"]) <= 3, c["id"]
        assert {p["kind"] for p in c["expect"]} <= KINDS, c["id"]


@pytest.mark.parametrize("name", SETS)
def test_every_program_validates(name: str) -> None:
    registry = default_registry()
    for c in load_cases(name):
        progs = load_programs(name, c["id"])
        assert progs["wrong"], f"{c['id']}: no wrong program"
        assert set(progs.get("wrong_passes", {})) <= set(progs["wrong"]), c["id"]
        for program in [progs["gold"], *progs.get("also_gold", {}).values(), *progs["wrong"].values()]:
            validate(json.dumps(program).encode(), registry, inputs={"input": "Image"})


def test_an_unknown_set_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="no outcome set 'v99'"):
        load_cases("v99")


@pytest.fixture(scope="module")
def runner():
    registry = default_registry()
    with Executor(registry, cache=ResultCache()) as executor:
        yield executor, registry


@pytest.mark.slow
@pytest.mark.parametrize(("name", "case"), CASES, ids=[f"{n}-{c['id']}" for n, c in CASES])
def test_gold_passes_and_wrong_fails(name: str, case: dict, runner) -> None:
    executor, registry = runner
    verdicts = check_case(name, case, executor, registry)
    bad = [f"{v.label}: {'passed' if v.passed else 'failed'} ({' | '.join(v.notes)})" for v in verdicts if not v.sound]
    assert not bad, bad
