"""Local fixes the loop makes from the request's own words and from failures without a fix of their own.

Each test scripts a plan with one typical planner mistake, runs the loop on a real sample photo and
checks the pixels of the answer; without the cue or table row under test the first (wrong) plan
passes the critic or nothing is tried, and the pixel assertions fail. The requests are written for
these tests (not taken from any outcome set).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from banana.agent.executor import Executor
from banana.agent.fixes import proposals
from banana.agent.intent import intent_checks
from banana.agent.loop import program_key, run_loop
from banana.agent.planner.base import Planner
from banana.agent.program import Program, parse_program, validate
from banana.agent.samples import sample
from banana.experts.colors import rgb_to_lab
from banana.tools.checks import CheckResult
from tests.scripted import Scripted


def one(tool: str, mask: str | None = None, nodes: tuple[dict, ...] = (), **args) -> dict:
    """A plan: optional mask nodes, then one edit on the input."""
    edit = {"id": "edit", "tool": tool, "args": {"image": "$input", **({"mask": mask} if mask else {}), **args}}
    return {"version": 1, "nodes": [*nodes, edit], "output": "$edit"}


def seg(target: str, nid: str = "sel") -> dict:
    return {"id": nid, "tool": "segment", "args": {"image": "$input", "target": target}}


@pytest.fixture()
def executor(registry):
    with Executor(registry) as ex:
        yield ex


def loop(request: str, photo: str, plan: dict, registry, executor):
    return run_loop(request, {"input": sample(photo)}, Planner(Scripted(plan), registry), executor, registry, samples=0)


def lightness(pixels: np.ndarray) -> np.ndarray:
    return rgb_to_lab(pixels.astype(np.float32) / 255.0)[..., 0]


def test_less_contrast_flips_a_raised_contrast(registry, executor):
    result = loop("give the photo less contrast", "coffee", one("adjust", contrast=0.6), registry, executor)
    assert result.passed and result.attempts[-1].how == "local fix: contrast direction at 'edit'"
    src = sample("coffee").pixels
    assert lightness(result.image.pixels).std() < lightness(src).std() - 2


def test_a_named_contrast_with_no_contrast_step_gets_one(registry, executor):
    result = loop("greyscale it and bump up the contrast", "coffee", one("adjust", saturation=-1.0), registry, executor)
    assert result.passed
    assert result.program.node("edit").args["contrast"] > 0
    assert lightness(result.image.pixels).std() > lightness(sample("coffee").pixels).std() + 2


def test_upside_down_is_a_half_turn_not_a_mirror(registry, executor):
    result = loop("this scan came out upside down", "chelsea", one("flip", direction="vertical"), registry, executor)
    assert result.passed and result.program.node("edit").tool == "rotate"
    assert np.array_equal(result.image.pixels, np.rot90(sample("chelsea").pixels, 2))


def test_mirror_is_a_flip_not_a_turn(registry, executor):
    result = loop("mirror the shot please", "coffee", one("rotate", degrees=90), registry, executor)
    assert result.passed and result.program.node("edit").tool == "flip"
    assert np.array_equal(result.image.pixels, sample("coffee").pixels[:, ::-1])


def test_a_charcoal_drawing_uses_the_grey_pencil_style(registry, executor):
    result = loop("render it as a charcoal drawing", "chelsea", one("stylize", style="sketch"), registry, executor)
    assert result.passed and result.program.node("edit").args["style"] == "pencil"
    lab = rgb_to_lab(result.image.pixels.astype(np.float32) / 255.0)
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() < 2.0  # grey


def test_a_coloured_backdrop_is_a_new_background_not_a_tone(registry, executor):
    plan = one("adjust", "$sel", (seg("background"),), brightness=0.3)
    result = loop("change the backdrop to light grey", "grace_hopper", plan, registry, executor)
    assert result.passed and result.program.node("edit").tool == "replace_background"
    person = result.run.outputs["sel_inv"].alpha > 0.99
    out, src = result.image.pixels.astype(float), sample("grace_hopper").pixels.astype(float)
    assert np.abs(out[person] - src[person]).mean() < 2.0
    assert np.abs(out[~person & (result.run.outputs["sel"].alpha > 0.99)] - 128).mean() < 12  # grey behind her


def test_the_named_part_not_the_whole_person_after_the_scope_fix(registry, executor):
    # the plan edits everything except the person; two fixes in a row: invert the mask, then segment the face
    plan = one("adjust", "$inv", (seg("person"), {"id": "inv", "tool": "invert", "args": {"mask": "$sel"}}), brightness=0.4)
    result = loop("lighten his face a touch", "astronaut", plan, registry, executor)
    assert result.passed and len(result.attempts) == 3
    assert result.program.node("sel").args["target"] == "face"
    out, src = result.image.pixels.astype(float), sample("astronaut").pixels.astype(float)
    h = src.shape[0]
    assert np.abs(out[int(0.8 * h) :] - src[int(0.8 * h) :]).mean() < 0.5  # the body and the bottom band untouched
    face = result.run.outputs["sel"].alpha > 0.5
    assert lightness(result.image.pixels)[face].mean() > lightness(sample("astronaut").pixels)[face].mean() + 2


def test_an_object_segment_cannot_see_is_found_by_its_colour(registry, executor):
    plan = one("recolor", "$sel", (seg("motorbike"),), color="green")
    result = loop("the motorbike is red, I want it green", "motorcycle", plan, registry, executor)
    assert result.passed and result.program.node("sel").args["target"] == "red motorbike"
    assert [e.kind for e in result.events].count("local_fix") == 1


def test_an_unseen_object_with_no_colour_falls_back_to_the_main_subject(registry):
    plan = Program.model_validate(one("recolor", "$sel", (seg("blossom"),), color="orange"))
    failed = CheckResult(check="node ran", kind="follow", node="sel", tool="segment", value=0, threshold=1, passed=False,
                         advice="ValueError: cannot find 'blossom' (no open-vocabulary expert is configured): ...")  # fmt: skip
    assert [(n, f.args) for n, f in proposals("recolour the blossom orange", failed, plan)] == [("unseen object", {"target": "subject"})]
    found = [(n, f.args) for n, f in proposals("paint the purple blossom orange", failed, plan)]
    assert found == [("unseen object", {"target": "purple blossom"}), ("unseen object", {"target": "subject"})]
    removal = Program.model_validate(one("remove", "$sel", (seg("blossom"),)))
    assert proposals("take the blossom out", failed, removal) == []  # never remove a guessed object
    known = failed.model_copy(update={"advice": "ValueError: cannot find 'sky' in this picture (no smooth blue region)"})
    assert proposals("recolour the sky orange", known, plan) == []  # a known kind that is not there: no guess


@pytest.mark.parametrize(
    ("request_text", "args", "finding"),
    [
        ("could you lower the saturation a little", {"saturation": 0.3}, "saturation direction"),
        ("tone down the contrast", {"contrast": 0.5}, "contrast direction"),
        ("crank up the warmth", {"warmth": -0.4}, "warmth direction"),
        ("brightness +2 please", {"brightness": -0.3}, "brightness direction"),
    ],
)
def test_sign_words_judge_the_adjust_sign(registry, request_text, args, finding):
    valid = validate(parse_program(json.dumps(one("adjust", **args))), registry, inputs={"input": "Image"})
    bad = [r for r in intent_checks(request_text, valid, registry) if not r.passed]
    assert [r.check for r in bad] == [finding] and bad[0].fix.args == {k: -v for k, v in args.items()}
    fine = validate(parse_program(json.dumps(one("adjust", **{k: -v for k, v in args.items()}))), registry, inputs={"input": "Image"})
    assert [r for r in intent_checks(request_text, fine, registry) if not r.passed] == []


def test_words_that_name_no_clear_direction_are_not_judged(registry):
    valid = validate(parse_program(json.dumps(one("adjust", contrast=0.5, saturation=-0.5))), registry, inputs={"input": "Image"})
    for text in ("adjust the contrast", "more or less contrast, you decide", "coloured pencil sketch", "make it blue"):
        assert [r for r in intent_checks(text, valid, registry) if not r.passed] == [], text


def test_programs_that_differ_only_in_node_ids_are_one_program_to_the_loop():
    a = Program.model_validate(one("adjust", "$sel", (seg("person"),), brightness=0.2))
    b = Program.model_validate(one("adjust", "$p", (seg("person", "p"),), brightness=0.2))
    c = Program.model_validate(one("adjust", "$p", (seg("face", "p"),), brightness=0.2))
    assert program_key(a) == program_key(b) != program_key(c)


def test_leave_the_backdrop_untouched_is_not_a_request_to_edit_it(registry, executor):
    plan = one("adjust", "$inv", (seg("person"), {"id": "inv", "tool": "invert", "args": {"mask": "$sel"}}), warmth=-0.5)
    result = loop("make the woman cooler, leave the backdrop untouched", "grace_hopper", plan, registry, executor)
    assert result.passed and result.program.node("edit").args["mask"] == "$sel"
    person = result.run.outputs["sel"].alpha
    out, src = result.image.pixels.astype(float), sample("grace_hopper").pixels.astype(float)
    assert np.abs(out[person <= 0.0] - src[person <= 0.0]).max() <= 3  # the backdrop is untouched
    assert out[person > 0.99][:, 2].mean() > src[person > 0.99][:, 2].mean() + 2  # bluer where she is


def test_an_unmasked_edit_of_the_backdrop_gets_everything_except_the_person(registry, executor):
    result = loop("make the backdrop behind her black and white", "astronaut", one("adjust", saturation=-1.0), registry, executor)
    assert result.passed and result.attempts[-1].how == "local fix: edit is outside the subject at 'edit'"
    person = result.run.outputs["fix_mask"].alpha > 0.99
    out, src = result.image.pixels.astype(float), sample("astronaut").pixels.astype(float)
    assert np.abs(out[person] - src[person]).mean() < 1.0  # she keeps her colour
    lab = rgb_to_lab(result.image.pixels.astype(np.float32) / 255.0)
    assert np.hypot(lab[..., 1], lab[..., 2])[result.run.outputs["fix_mask_inv"].alpha > 0.99].mean() < 2.0


def test_keep_the_mug_red_in_a_greyscale_photo_masks_everything_but_the_red_mug(registry, executor):
    result = loop("turn it to greyscale but keep the mug red", "coffee", one("adjust", saturation=-1.0), registry, executor)
    assert result.passed and result.program.node("fix_mask").args["target"] == "red mug"
    kept = result.run.outputs["fix_mask"].alpha > 0.99
    out, src = result.image.pixels.astype(float), sample("coffee").pixels.astype(float)
    assert kept.any() and np.abs(out[kept] - src[kept]).mean() < 1.0
    lab = rgb_to_lab(result.image.pixels.astype(np.float32) / 255.0)
    assert np.hypot(lab[..., 1], lab[..., 2])[result.run.outputs["fix_mask"].alpha <= 0.0].mean() < 2.0


def test_a_colour_phrase_the_parser_does_not_know_becomes_its_colour_word(registry, executor):
    plan = one("recolor", "$sel", (seg("sky"),), color="rich turquoise")
    result = loop("paint the sky a rich turquoise", "china", plan, registry, executor)
    assert not result.attempts[0].produced and result.passed
    assert result.program.node("edit").args["color"] == "turquoise"


def test_quoted_words_to_add_are_a_caption(registry, executor):
    result = loop("put 'see you soon' along the top", "coffee", one("adjust", brightness=0.2), registry, executor)
    assert result.passed and [n.tool for n in result.program.nodes] == ["add_text"]
    assert result.program.nodes[0].args["text"] == "see you soon"
    out, src = result.image.pixels.astype(float), sample("coffee").pixels.astype(float)
    h = src.shape[0]
    assert np.abs(out[: h // 3] - src[: h // 3]).mean() > 0.5 and np.array_equal(out[h // 2 :], src[h // 2 :])


def test_monochrome_with_no_step_that_removes_colour_gets_saturation_minus_one(registry, executor):
    result = loop("go monochrome with a stronger contrast", "coffee", one("adjust", contrast=0.5), registry, executor)
    assert result.passed and result.program.node("edit").args == {"image": "$input", "contrast": 0.5, "saturation": -1.0}
    lab = rgb_to_lab(result.image.pixels.astype(np.float32) / 255.0)
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() < 2.0


def test_a_whole_picture_edit_for_her_face_is_masked_to_the_face(registry, executor):
    result = loop("pixelate her face so nobody knows her", "astronaut", one("pixelate", block=24), registry, executor)
    assert result.passed and result.program.node("fix_mask").args["target"] == "face"
    face = result.run.outputs["fix_mask"].alpha
    out, src = result.image.pixels.astype(float), sample("astronaut").pixels.astype(float)
    moved = np.abs(out - src).max(axis=-1) > 3
    assert moved[face <= 0.0].mean() < 0.02 and moved[face > 0.99].mean() > 0.5  # the face pixelated, the rest (nearly) kept


@pytest.mark.parametrize(
    ("request_text", "tool", "args", "fixed"),
    [
        ("frame it with a 12 px navy border", "border", {"pixels": 40, "color": "navy"}, {"pixels": 12}),
        ("a thin grey frame around the black cat", "border", {"pixels": 10, "color": "black"}, {"color": "grey"}),
        ('caption it "Red Sky Tonight" in the top right', "add_text", {"text": "Red Sky Tonight", "position": "bottom"},
         {"position": "top-right"}),
        ("4x larger please, upscale it", "upscale", {"factor": 2}, {"factor": 4}),
    ],
)  # fmt: skip
def test_values_the_request_states_are_kept(registry, request_text, tool, args, fixed):
    valid = validate(parse_program(json.dumps(one(tool, **args))), registry, inputs={"input": "Image"})
    bad = [r for r in intent_checks(request_text, valid, registry) if not r.passed]
    assert [(r.check, r.fix.args) for r in bad] == [("stated values kept", fixed)]
    right = validate(parse_program(json.dumps(one(tool, **{**args, **fixed}))), registry, inputs={"input": "Image"})
    assert [r for r in intent_checks(request_text, right, registry) if not r.passed] == []


@pytest.mark.parametrize(
    ("request_text", "plan"),
    [
        ("a bit less golden please", one("adjust", warmth=-0.3)),
        ("less vibrant, it hurts the eyes", one("adjust", saturation=-0.3)),
        ("paint me in oils but keep my face as it is", one("stylize", style="oil")),
        ("my photo is kinda blurry, help", one("sharpen", amount=0.5)),
        ("erase the watermark in the corner", one("remove", "$sel", (seg("text"),))),
        ("soften the noise and blur that logo text a bit", one("blur", "$sel", (seg("text"),), amount=0.2)),
        ("this pic is blurry, can you fix", one("sharpen", amount=0.5)),
        ("crop tight on the face, then a little less contrast", {"version": 1, "nodes": [
            {"id": "f", "tool": "detect_faces", "args": {"image": "$input"}},
            {"id": "c", "tool": "crop", "args": {"image": "$input", "boxes": "$f"}},
            {"id": "edit", "tool": "adjust", "args": {"image": "$c", "contrast": -0.2}}], "output": "$edit"}),
        ("give my skin a smooth retouch", one("retouch", amount=0.5)),
        ("cartoon look for the whole shot, and swap the background for a beach", {"version": 1, "nodes": [
            {"id": "s", "tool": "stylize", "args": {"image": "$input", "style": "cartoon"}}, seg("person"),
            {"id": "edit", "tool": "replace_background", "args": {"image": "$s", "mask": "$sel", "prompt": "a beach"}}],
            "output": "$edit"}),
        ("darken all but the dog", one("adjust", "$inv", (seg("dog"), {"id": "inv", "tool": "invert", "args": {"mask": "$sel"}}),
                                       brightness=-0.4)),
    ],
)  # fmt: skip
def test_negated_and_kept_words_do_not_judge_a_right_plan(registry, request_text, plan):
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    assert [r.line() for r in intent_checks(request_text, valid, registry) if not r.passed] == []


def test_hand_written_gold_plans_pass_the_intent_checks(registry):
    """Every gold plan of the planner's hand-written sets passes, except 'pencil sketch' styles (which resolve to the coloured
    'sketch' style, so the grey 'pencil' is the fix). Only the sets the cues were written against: realistic blind v2 is
    measured, not tested (docs/critic.md: 4 of its 105 gold plans trip a cue), so its cases stay unseen by the cues."""
    from pathlib import Path

    wrong = []
    sets = ("handwritten.jsonl", "handwritten_v2.jsonl", "handwritten_v3.jsonl", "realistic_blind_v1.jsonl")
    for path in (Path(__file__).parent.parent / "bench" / "planner" / name for name in sets):
        for line in path.read_text().splitlines():
            case = json.loads(line) if line.strip() else {}
            if not isinstance(case.get("program"), dict):
                continue
            valid = validate(Program.model_validate(case["program"]), registry, inputs={"input": "Image"})
            wrong += [(case["instruction"], r.check) for r in intent_checks(case["instruction"], valid, registry) if not r.passed]
    assert len(wrong) > 0 and all("pencil" in text and check == "grey drawing style" for text, check in wrong), wrong


def test_an_explicit_flip_axis_is_kept(registry, executor):
    result = loop("flip the shot from top to bottom", "coffee", one("flip", direction="horizontal"), registry, executor)
    assert result.passed and result.program.node("edit").args["direction"] == "vertical"
    assert np.array_equal(result.image.pixels, sample("coffee").pixels[::-1])


def test_lifted_shadows_may_move_the_lightness(registry, executor):
    # shadows / highlights move lightness on purpose: "adjust keeps the lightness" must not fail them
    result = loop("open up the dark areas", "rocket", one("adjust", shadows=0.5), registry, executor)
    assert result.passed and len(result.attempts) == 1
    assert lightness(result.image.pixels).mean() > lightness(sample("rocket").pixels).mean() + 3


@pytest.mark.parametrize(
    ("typed", "read"),
    [("pls brigthen it", "pls brighten it"), ("darkne the sky", "darken the sky"), ("blur the backgorund", "blur the background"),
     ("remvoe that sign", "remove that sign"), ("make it brigghter", "make it brighter"),
     ("a tighter crop", "a tighter crop"), ("lighter please", "lighter please"), ("brightly lit", "brightly lit")],
)
def test_slips_of_cue_words_are_read_as_the_word(typed, read):
    from banana.agent.intent import spelled

    assert spelled(typed) == read


def test_a_misspelt_brighten_still_judges_the_sign(registry, executor):
    result = loop("brigthen the pic a little", "china", one("adjust", brightness=-0.3), registry, executor)
    assert result.passed and result.program.node("edit").args["brightness"] == 0.3
    assert lightness(result.image.pixels).mean() > lightness(sample("china").pixels).mean() + 2


def test_a_removal_nobody_asked_for_is_dropped(registry, executor):
    # "grey everything but the mug" misread as greying the rest and then removing the mug
    plan = {"version": 1, "nodes": [seg("background", "bg"), {"id": "grey", "tool": "adjust", "args": {"image": "$input", "mask": "$bg",
            "saturation": -1.0}}, seg("red cup", "cup"), {"id": "gone", "tool": "remove", "args": {"image": "$grey", "mask": "$cup"}}],
            "output": "$gone"}  # fmt: skip
    result = loop("grey everything but the red cup", "coffee", plan, registry, executor)
    assert result.passed and [n.tool for n in result.program.nodes] == ["segment", "adjust"]
    assert any(e.kind == "local_fix" and "removal not asked" in e.message for e in result.events)


@pytest.mark.parametrize("request_text", ["get rid of the cup", "lose the mug", "I want the cup gone", "clean up the spots on her cheek",
                                          "no more cup in the shot"])
def test_a_removal_the_request_asks_for_is_not_judged(registry, request_text):
    plan = {"version": 1, "nodes": [seg("cup", "cup"), {"id": "gone", "tool": "remove", "args": {"image": "$input", "mask": "$cup"}}],
            "output": "$gone"}  # fmt: skip
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    assert "removal not asked" not in {r.check for r in intent_checks(request_text, valid, registry) if not r.passed}


@pytest.mark.parametrize(
    ("request_text", "painted", "goes_to"),
    [("turn the yellow wall into purple", "yellow", "purple"), ("the green car, make it red", "green", "red"),
     ("recolour the red cup from red to blue", "red", "blue")],
)
def test_from_to_colours_paint_the_colour_it_goes_to(registry, request_text, painted, goes_to):
    plan = one("recolor", "$sel", (seg("subject"),), color=painted)
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    bad = [r for r in intent_checks(request_text, valid, registry) if r.check == "colour goes to"]
    assert len(bad) == 1 and bad[0].fix.args == {"color": goes_to}
    right_plan = one("recolor", "$sel", (seg("subject"),), color=goes_to)
    right = validate(parse_program(json.dumps(right_plan)), registry, inputs={"input": "Image"})
    assert [r for r in intent_checks(request_text, right, registry) if r.check == "colour goes to"] == []


def test_a_fine_background_is_not_the_place_to_edit(registry):
    plan = {"version": 1, "nodes": [{"id": "faces", "tool": "detect_faces", "args": {"image": "$input"}},
            {"id": "m", "tool": "mask_from_boxes", "args": {"image": "$input", "boxes": "$faces"}},
            {"id": "edit", "tool": "sharpen", "args": {"image": "$input", "mask": "$m"}}], "output": "$edit"}  # fmt: skip
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    assert [r.check for r in intent_checks("crisper eyes on him, the bg is fine", valid, registry) if not r.passed] == []


def test_richer_colours_want_more_saturation(registry):
    valid = validate(parse_program(json.dumps(one("adjust", saturation=-0.3))), registry, inputs={"input": "Image"})
    bad = [r for r in intent_checks("richer greens in the trees", valid, registry) if not r.passed]
    assert [r.check for r in bad] == ["saturation direction"]


def test_writing_an_unseen_object_carries_is_looked_for_as_text(registry):
    plan = Program.model_validate(one("remove", "$sel", (seg("mug"),)))
    failed = CheckResult(check="node ran", kind="follow", node="sel", tool="segment", value=0, threshold=1, passed=False,
                         advice="ValueError: cannot find 'mug' (no open-vocabulary expert is configured): ...")  # fmt: skip
    assert [f.args for _, f in proposals("erase the lettering on the mug", failed, plan)] == [{"target": "text"}]
    backdrop = Program.model_validate(one("replace_background", "$sel", (seg("sitter"),), prompt="plain white"))
    found = [f.args for _, f in proposals("swap the backdrop for plain white", failed.model_copy(update={"node": "sel"}), backdrop)]
    assert found == [{"target": "subject"}]  # "white" is where the backdrop goes, not the sitter's colour; a swap keeps the subject


def test_a_backdrop_prompt_that_is_only_a_colour_becomes_the_colour(registry, executor):
    plan = one("replace_background", "$sel", (seg("person"),), prompt="solid black")
    result = loop("put him on solid black", "astronaut", plan, registry, executor)
    assert result.passed and result.program.node("edit").args["color"] == "black" and result.program.node("edit").args.get("prompt") is None
    behind = result.run.outputs["sel"].alpha < 0.01
    assert result.image.pixels[behind].mean() < 10


def test_a_person_the_picture_lacks_becomes_the_subject_when_the_request_names_nobody(registry, executor):
    plan = one("adjust", "$inv", (seg("person"), {"id": "inv", "tool": "invert", "args": {"mask": "$sel"}}), saturation=-1.0)
    result = loop("desaturate whatever is behind the main thing", "coffee", plan, registry, executor)
    assert result.passed and result.program.node("sel").args["target"] == "subject"
    behind = result.run.outputs["inv"].alpha > 0.99
    lab = rgb_to_lab(result.image.pixels.astype(np.float32) / 255.0)
    assert np.hypot(lab[..., 1], lab[..., 2])[behind].mean() < 3.0
    failed = CheckResult(check="node ran", kind="follow", node="sel", tool="segment", value=0, threshold=1, passed=False,
                         advice="ValueError: cannot find 'person' in this picture (no face and no body pose found)")  # fmt: skip
    assert proposals("blur everything behind her", failed, Program.model_validate(plan)) == []  # she was asked for: say so


@pytest.mark.parametrize("request_text", ["warmer but do not make it darker", "add contrast without getting darker",
                                          "no darker please, just cooler"])
def test_a_negated_cue_is_not_a_demand(registry, request_text):
    plan = one("adjust", brightness=0.2, warmth=-0.3, contrast=0.2)
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    assert "brightness direction" not in {r.check for r in intent_checks(request_text, valid, registry) if not r.passed}


def test_a_soft_photo_is_sharpened_not_blurred(registry, executor):
    plan = {"version": 1, "nodes": [{"id": "b", "tool": "blur", "args": {"image": "$input", "amount": 0.3}},
            {"id": "edit", "tool": "sharpen", "args": {"image": "$b"}}], "output": "$edit"}  # fmt: skip
    result = loop("the shot looks soft, fix it", "china", plan, registry, executor)
    assert result.passed and "blur" not in [n.tool for n in result.program.nodes]


def test_a_dropped_tone_clause_is_added_on_the_same_place(registry, executor):
    plan = one("blur", "$sel", (seg("background"),), amount=0.3)
    result = loop("make the backdrop darker and soften it, she stays as is", "grace_hopper", plan, registry, executor)
    assert result.passed
    added = [n for n in result.program.nodes if n.tool == "adjust"]
    assert len(added) == 1 and added[0].args["mask"] == "$sel" and added[0].args["brightness"] < 0
    behind, src = result.run.outputs["sel"].alpha > 0.99, sample("grace_hopper").pixels
    assert lightness(result.image.pixels)[behind].mean() < lightness(src)[behind].mean() - 3
    person = result.run.outputs["sel"].alpha < 0.01
    assert np.abs(result.image.pixels[person].astype(float) - src[person]).mean() < 1.0


def test_a_backdrop_swap_nobody_asked_for_is_dropped(registry, executor):
    plan = {"version": 1, "nodes": [seg("sky", "sky"), {"id": "rc", "tool": "recolor", "args": {"image": "$input", "mask": "$sky",
            "color": "orange"}}, seg("subject", "fg"), {"id": "bg", "tool": "replace_background", "args": {"image": "$rc", "mask": "$fg",
            "color": "pink"}}], "output": "$bg"}  # fmt: skip
    result = loop("give the sky an orange glow, nothing else", "china", plan, registry, executor)
    assert result.passed and [n.tool for n in result.program.nodes] == ["segment", "recolor"]
    sky = result.run.outputs["sky"].alpha < 0.01
    assert np.abs(result.image.pixels[sky].astype(float) - sample("china").pixels[sky]).mean() < 1.0  # the rest untouched


def test_sharpening_her_face_planned_as_a_retouch_sharpens_the_face(registry, executor):
    result = loop("crisper detail on her face please", "grace_hopper", one("retouch", amount=0.3), registry, executor)
    assert result.passed and result.program.node("edit").tool == "sharpen"
    assert result.program.node(result.program.node("edit").args["mask"][1:]).args["target"] == "face"


def test_a_look_the_catalogue_names_is_its_style(registry):
    valid = validate(parse_program(json.dumps(one("adjust", saturation=-1.0))), registry, inputs={"input": "Image"})
    found = [r for r in intent_checks("old sepia look please", valid, registry) if r.check == "a named style"]
    assert len(found) == 1 and found[0].fix.tool == "stylize" and found[0].fix.args == {"style": "sepia"}
    assert [r for r in intent_checks("make it warmer", valid, registry) if r.check == "a named style"] == []


def test_a_negated_clause_asks_nothing_and_removing_noise_is_denoising(registry):
    plan = one("denoise")
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    assert [r.check for r in intent_checks("get rid of the grain but don't blur the dog", valid, registry) if not r.passed] == []
    sharpened = validate(parse_program(json.dumps(one("sharpen"))), registry, inputs={"input": "Image"})
    bad = [r for r in intent_checks("get rid of the noise", sharpened, registry) if not r.passed]
    assert [r.check for r in bad] == ["clause 'get rid of the noise' planned"]


# ---------------------------------------------------------------- cues added after blind set v7's first run (other phrasings)


def test_a_style_nobody_asked_for_is_dropped(registry, executor):
    # "denoise it" planned with an invented style before the denoise: the style step goes, the denoise stays
    plan = {"version": 1, "nodes": [{"id": "paint", "tool": "stylize", "args": {"image": "$input", "style": "kandor"}},
            {"id": "clean", "tool": "denoise", "args": {"image": "$paint"}}], "output": "$clean"}  # fmt: skip
    result = loop("this pic is so grainy, clean up the noise pls", "astronaut", plan, registry, executor)
    assert result.passed and [n.tool for n in result.program.nodes] == ["denoise"]
    assert any(e.kind == "local_fix" and "style not asked" in e.message for e in result.events)
    src = sample("astronaut").pixels.astype(float)
    assert np.abs(result.image.pixels.astype(float) - src).mean() < 6, "no repaint: the picture stays close to the photo"


@pytest.mark.parametrize("request_text", ["make it look like a watercolor and brighten it", "cartoonify it, then brighten it",
                                          "give it the starry night treatment and brighten it", "oil painting vibe + brighter"])
def test_a_style_the_request_asks_for_is_not_judged(registry, request_text):
    plan = {"version": 1, "nodes": [{"id": "paint", "tool": "stylize", "args": {"image": "$input", "style": "watercolor"}},
            {"id": "lit", "tool": "adjust", "args": {"image": "$paint", "brightness": 0.3}}], "output": "$lit"}  # fmt: skip
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    assert "style not asked" not in {r.check for r in intent_checks(request_text, valid, registry) if not r.passed}


def test_a_caption_naming_a_style_is_not_a_style_request(registry):
    plan = {"version": 1, "nodes": [{"id": "paint", "tool": "stylize", "args": {"image": "$input", "style": "the scream"}},
            {"id": "cap", "tool": "add_text", "args": {"image": "$paint", "text": "The Scream"}}], "output": "$cap"}  # fmt: skip
    valid = validate(parse_program(json.dumps(plan)), registry, inputs={"input": "Image"})
    failed = [r for r in intent_checks('put "The Scream" as a caption', valid, registry) if not r.passed]
    assert [(r.check, r.node, r.fix.drop) for r in failed if r.check == "style not asked"] == [("style not asked", "paint", True)]


def test_less_colour_but_not_grey_softens_a_full_grey_out(registry, executor):
    result = loop("tone the colours down a lot, just not totally grayscale", "coffee", one("adjust", saturation=-1.0), registry, executor)
    assert result.passed and result.program.node("edit").args["saturation"] == -0.5
    chroma = np.hypot(*np.moveaxis(rgb_to_lab(result.image.pixels.astype(np.float32) / 255.0)[..., 1:], -1, 0))
    src = np.hypot(*np.moveaxis(rgb_to_lab(sample("coffee").pixels.astype(np.float32) / 255.0)[..., 1:], -1, 0))
    assert 3 < chroma.mean() < src.mean() - 5, "less colour, but colour is left"


@pytest.mark.parametrize(("request_text", "photo"), [("the photo is way too gloomy, can you fix it", "china"),
                                                     ("it's a bit dark and lifeless, help", "chelsea")])
def test_a_complaint_asks_for_the_opposite(registry, executor, request_text, photo):
    result = loop(request_text, photo, one("adjust", brightness=-0.3), registry, executor)
    assert result.passed and result.program.node("edit").args["brightness"] == 0.3
    assert lightness(result.image.pixels).mean() > lightness(sample(photo).pixels).mean() + 2


@pytest.mark.parametrize("request_text", ["make it dark and moody", "the sky is dark blue, make the grass greener", "it's not dark enough"])
def test_words_that_are_no_complaint_do_not_flip_a_darkening(registry, request_text):
    valid = validate(parse_program(json.dumps(one("adjust", brightness=-0.3))), registry, inputs={"input": "Image"})
    assert "brightness direction" not in {r.check for r in intent_checks(request_text, valid, registry) if not r.passed}


def test_lifted_shadows_are_set_when_no_step_lifts_them(registry, executor):
    result = loop("can you open up the shadows a bit", "motorcycle", one("adjust", contrast=0.0, warmth=0.0), registry, executor)
    assert result.passed and result.program.node("edit").args["shadows"] == 0.5
    dark = lightness(sample("motorcycle").pixels) < 30
    assert lightness(result.image.pixels)[dark].mean() > lightness(sample("motorcycle").pixels)[dark].mean() + 3


def test_a_step_on_the_part_left_alone_is_dropped(registry, executor):
    # "brighten her but leave the background alone" planned with a second brightening on the background
    plan = {"version": 1, "nodes": [seg("person", "p"), {"id": "her", "tool": "adjust", "args": {"image": "$input", "mask": "$p",
            "brightness": 0.3}}, seg("background", "bg"), {"id": "back", "tool": "adjust", "args": {"image": "$her", "mask": "$bg",
            "brightness": 0.3}}], "output": "$back"}  # fmt: skip
    result = loop("brighten her up, leave the background alone", "grace_hopper", plan, registry, executor)
    assert result.passed and [n.tool for n in result.program.nodes] == ["segment", "adjust"]
    her_only = {"version": 1, "nodes": plan["nodes"][:2], "output": "$her"}
    with Executor(registry) as ex:
        valid = validate(parse_program(json.dumps(her_only)), registry, inputs={"input": "Image"})
        expected = ex.run(valid, {"input": sample("grace_hopper")})
    assert np.array_equal(result.image.pixels, expected.outputs["her"].pixels), "only her brightening is left"
    assert not np.array_equal(result.image.pixels, sample("grace_hopper").pixels)
