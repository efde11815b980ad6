"""The real embedded planner (SmolLM2-135M + the committed LoRA adapter, xgrammar-constrained)."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from banana.agent.planner import make_planner
from banana.agent.planner.base import PlanRequest, check, read_answer
from banana.agent.program import ProgramError
from banana.agent.surface import canonical, parse_steps
from banana.tools.values import Image


@pytest.fixture(scope="module")
def planner(registry):
    return make_planner(registry, "embedded")


CLEAR = [
    ("make it black and white", "adjust saturation=-1.0"),
    ("blur the background behind me", 'segment target="person"\ninvert\nblur amount=0.5'),
    ("crop it to a square", 'crop aspect="1:1"'),
    ("remove the car", 'segment target="car"\nremove'),
    ("upscale it 4x", "upscale factor=4"),
    ("make the sky purple", 'segment target="sky"\nrecolor color="purple"'),
    ("blur all the faces", "detect_faces\nmask_from_boxes\nblur amount=1.0"),
]


@pytest.mark.parametrize(("instruction", "steps"), CLEAR)
def test_plans_clear_instructions(planner, registry, instruction, steps):
    plan = planner.plan(instruction)
    assert canonical(plan.program, registry) == canonical(parse_steps(steps, registry), registry), plan.attempts[-1].text


def test_odd_requests_still_get_grammatical_answers(planner, registry):
    """The grammar guarantees the form: registered tools, readable values; only the meaning can be wrong."""
    odd = ["asdf qwerty", "make it look like a potato but also not", "🍌🍌🍌"]
    for text in (planner.backend.generate(PlanRequest(instruction=t)) for t in odd):
        assert text.strip(), "an empty answer"
        try:
            read_answer(text, "steps", registry)  # a plan, or a one-line refusal ("asdf qwerty" is junk)
        except ProgramError as exc:
            syntax = [str(p) for p in exc.problems if "cannot read" in str(p) or "unknown tool" in str(p)]
            assert not syntax, syntax


def banana(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "banana.agent.cli", *args], capture_output=True, text=True, timeout=600, input=stdin)


def test_cli_plan_json_and_jsonl():
    proc = banana("plan", "crop it to 16:9", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["nodes"][0]["args"]["aspect"] == "16:9"
    lines = "make it warmer\n{\"instruction\": \"upscale it 2x\"}\n{\"nope\": 1}\nremove the dog\n"
    proc = banana("plan", "--jsonl", stdin=lines)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 4
    assert out[0]["nodes"][0]["tool"] == "adjust" and out[1]["nodes"][0]["args"]["factor"] == 2
    assert "error" in out[2] and "bad input line" in out[2]["error"]
    assert [n["tool"] for n in out[3]["nodes"]] == ["segment", "remove"]


def test_cli_edit_blurs_the_background_and_keeps_the_face(tmp_path, astronaut):
    out = tmp_path / "edit.png"
    proc = banana("edit", "sample:astronaut", "blur the background behind the astronaut", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "segment" in proc.stderr and "invert" in proc.stderr
    result = Image.load(out).pixels
    face = (slice(80, 200), slice(200, 300))
    assert np.abs(result[face].astype(int) - astronaut.pixels[face].astype(int)).mean() < 2
    corner = (slice(0, 120), slice(400, 512))

    def sharp(px):
        return cv2.Laplacian(cv2.cvtColor(np.ascontiguousarray(px), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()

    assert sharp(result[corner]) < 0.5 * sharp(astronaut.pixels[corner])


def _tools(valid):
    return [node.tool for node in valid.program.nodes]


def _mask_before_invert(valid):
    tools = _tools(valid)
    return "invert" not in tools or any(t in ("segment", "detect", "mask_from_boxes") for t in tools[: tools.index("invert")])


def _warmth_in_range(valid):
    return all(0 < n.args.get("warmth", 0.5) <= 1 for n in valid.program.nodes if n.tool == "adjust")


def _every_mask_used(valid):
    used = {v[1:] for n in valid.program.nodes for v in n.args.values() if isinstance(v, str) and v.startswith("$")}
    return all(n.id in used or "$" + n.id == valid.program.output for n in valid.program.nodes)


# (instruction, broken plan, what the repaired plan must have fixed: the validator's complaint, checked directly)
REPAIRS = [
    ("blur the background behind me", "invert\nblur amount=0.5", _mask_before_invert),
    ("make it a bit warmer", "adjust warmth=3", _warmth_in_range),
    ("make the sky purple", 'recolr color="purple"', lambda v: "recolr" not in _tools(v) and "recolor" in _tools(v)),
    ("crop it to a square", 'crop aspect="1:1"\nsegment target="car"', _every_mask_used),
]


@pytest.mark.parametrize(("instruction", "broken", "fixed_what_was_named"), REPAIRS)
def test_the_model_repairs_a_plan_from_the_validators_messages(planner, registry, instruction, broken, fixed_what_was_named):
    """The real repair path: the previous plan and the validator's exact messages go back into the prompt."""
    with pytest.raises(ProgramError) as info:
        check(broken, "steps", registry)
    problems = [str(p) for p in info.value.problems]
    fixed = planner.backend.generate(PlanRequest(instruction=instruction), broken, problems)
    valid = check(fixed, "steps", registry)  # raises if the answer is still invalid
    assert fixed != broken
    assert fixed_what_was_named(valid), f"the repair {fixed!r} does not fix {problems}"


def test_cli_plan_text_is_the_steps_of_the_json_plan(registry):
    text = banana("plan", "make it a bit warmer and crop it square")
    as_json = banana("plan", "make it a bit warmer and crop it square", "--json")
    assert text.returncode == as_json.returncode == 0, text.stderr + as_json.stderr
    steps = text.stdout.strip()
    assert steps.splitlines()[0].split(" ", 1)[0] in registry.names()
    assert canonical(parse_steps(steps, registry), registry) == canonical(json.loads(as_json.stdout), registry)
    assert "embedded: valid" in text.stderr


def test_cli_edit_saves_the_program_that_made_the_picture(tmp_path):
    edited, program = tmp_path / "edit.png", tmp_path / "plan.json"
    proc = banana("edit", "sample:coffee", "make it black and white", "-o", str(edited), "--save-program", str(program), "-q")
    assert proc.returncode == 0, proc.stderr
    rerun = tmp_path / "rerun.png"
    proc = banana("run", str(program), "-i", "sample:coffee", "-o", str(rerun), "-q")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(Image.load(edited).pixels, Image.load(rerun).pixels)
    gray = Image.load(edited).pixels.astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 2  # and it is grey
