"""The steps form: lowering rules, errors that name the step, printing, canonical comparison, grammar."""

import json
from pathlib import Path

import pytest
import xgrammar as xgr

from banana.agent.program import ProgramError, validate
from banana.agent.surface import canonical, parse_steps, steps_grammar, to_steps


def lowered(text, registry):
    return json.loads(parse_steps(text, registry).to_json())


def test_background_blur_lowers_to_the_graph(registry):
    p = lowered('segment target="person"\ninvert\nblur amount=0.5', registry)
    assert p["nodes"] == [
        {"id": "segment", "tool": "segment", "args": {"image": "$input", "target": "person"}},
        {"id": "invert", "tool": "invert", "args": {"mask": "$segment"}},
        {"id": "blur", "tool": "blur", "args": {"image": "$input", "mask": "$invert", "amount": 0.5}},
    ]
    assert p["output"] == "$blur"


def test_edits_chain_and_perception_reads_the_frame(registry):
    p = lowered('adjust warmth=0.4\nsegment target="sky"\nrecolor color="purple"\ncrop aspect="1:1"\nsegment target="person"\n'
                'invert\nblur amount=0.2', registry)
    nodes = {n["id"]: n["args"] for n in p["nodes"]}
    assert nodes["segment"]["image"] == "$input"  # looks at the original grid, not the warmed picture
    assert nodes["recolor"] == {"image": "$adjust", "mask": "$segment", "color": "purple"}
    assert nodes["crop"]["image"] == "$recolor"
    assert nodes["segment2"]["image"] == "$crop"  # after a crop, masks are computed on the cropped grid
    assert nodes["blur"]["image"] == "$crop" and p["output"] == "$blur"


def test_combine_takes_older_mask_first(registry):
    p = lowered('segment target="sky"\nsegment target="person"\ncombine op="subtract"\nblur amount=0.5', registry)
    assert {n["id"]: n["args"] for n in p["nodes"]}["combine"] == {"a": "$segment", "b": "$segment2", "op": "subtract"}


def test_boxes_and_identity_flow(registry):
    p = lowered("lock_identity\ndetect_faces\nmask_from_boxes\nblur amount=1.0\nrestore_identity", registry)
    nodes = {n["id"]: n["args"] for n in p["nodes"]}
    assert nodes["mask_from_boxes"] == {"boxes": "$detect_faces", "image": "$input"}
    assert nodes["restore_identity"] == {"image": "$blur", "identity": "$lock_identity"}
    validate(p, registry)


@pytest.mark.parametrize(("text", "message"), [
    ("invert\nblur amount=0.5", "node 'step 1 (invert)', args.mask: invert needs a Mask but no earlier step made one; "
                                "add a step like 'segment' before it"),
    ('segment target="sky"\nadjust brightness=0.2\nsegment target="car"',
     "node 'step 3 (segment)': makes a Mask that no later step uses; use it (e.g. in blur, recolor, remove) or drop the step"),
    ("blurr amount=0.5", "node 'step 1 (blurr)', tool: unknown tool 'blurr'; did you mean 'blur' or 'border'?"),
    ("blur amount=half", "node 'step 1 (blur)': cannot read 'amount=half'; write arguments as key=value, "
                         'strings in double quotes: target="red car"'),
    ("blur amount=0.5 amount=0.2", "node 'step 1 (blur)', args.amount: 'amount' is given twice"),
    ("crop box=[a,b,c,d]", "node 'step 1 (crop)', args.box: cannot read the value '[a,b,c,d]'; use numbers, \"strings\" or [1,2,3,4]"),
    ('segment target="sky"\ninvert', "program: no step changes the picture; end with a step that returns an Image"),
    ("", "program: the plan is empty; write one step per line, e.g. blur amount=0.5"),
])
def test_errors_name_the_step(registry, text, message):
    with pytest.raises(ProgramError) as info:
        parse_steps(text, registry)
    assert message in [str(p) for p in info.value.problems]


def test_value_errors_come_from_the_validator(registry):
    with pytest.raises(ProgramError, match=r"node 'blur', args.amount: amount=3: Input should be less than or equal to 1"):
        validate(parse_steps("blur amount=3", registry), registry)


def test_to_steps_round_trips_the_handwritten_set(registry):
    """Every hand-written gold program has a steps form with the same meaning."""
    lines = Path("bench/planner/handwritten.jsonl").read_text().splitlines()
    for line in lines:
        gold = json.loads(line)["program"]
        text = to_steps(gold, registry)
        assert canonical(parse_steps(text, registry), registry) == canonical(gold, registry), line


def test_canonical_ignores_ids_and_explicit_defaults(registry):
    a = {"version": 1, "nodes": [{"id": "x", "tool": "blur", "args": {"image": "$input"}}], "output": "$x"}
    b = {"version": 1, "nodes": [{"id": "y", "tool": "blur", "args": {"image": "$input", "amount": 0.5}}], "output": "$y"}
    c = {"version": 1, "nodes": [{"id": "y", "tool": "blur", "args": {"image": "$input", "amount": 0.6}}], "output": "$y"}
    assert canonical(a, registry) == canonical(b, registry) != canonical(c, registry)


def test_grammar_accepts_good_steps_and_rejects_bad(registry):
    from transformers import AutoTokenizer

    from banana.agent.planner.model import base_model_dir, im_end_id

    tok = AutoTokenizer.from_pretrained(base_model_dir(), local_files_only=True)
    info = xgr.TokenizerInfo.from_huggingface(tok, stop_token_ids=[im_end_id(tok)])
    compiled = xgr.GrammarCompiler(info).compile_grammar(steps_grammar(registry))

    def accepts(text):
        matcher = xgr.GrammarMatcher(compiled)
        return matcher.accept_string(text) and matcher.is_terminated() is False

    assert accepts('segment target="red car"\nrecolor color="#aa00ff"\n')
    assert accepts('crop aspect="16:9"\nupscale factor=4\n')
    assert not accepts("paint color=\"red\"\n")  # not a registered tool
    assert not accepts('crop aspect="7:3"\n')  # not in the enum
    assert not accepts("upscale factor=5\n")


def test_the_grammar_and_the_validator_share_one_step_limit(registry):
    """The steps grammar allows exactly MAX_NODES lines, the validator exactly MAX_NODES nodes."""
    from transformers import AutoTokenizer

    from banana.agent.planner.model import base_model_dir, im_end_id
    from banana.agent.program import MAX_NODES

    tok = AutoTokenizer.from_pretrained(base_model_dir(), local_files_only=True)
    info = xgr.TokenizerInfo.from_huggingface(tok, stop_token_ids=[im_end_id(tok)])
    compiled = xgr.GrammarCompiler(info).compile_grammar(steps_grammar(registry))
    line = "blur amount=0.1\n"
    matcher = xgr.GrammarMatcher(compiled)
    assert matcher.accept_string(line * MAX_NODES)
    assert not matcher.accept_string(line), "the grammar allows a step past MAX_NODES"
    at_limit = "\n".join(["blur amount=0.1"] * MAX_NODES)
    assert len(parse_steps(at_limit, registry).nodes) == MAX_NODES
    with pytest.raises(ProgramError, match=f"at most {MAX_NODES} are allowed"):
        parse_steps(at_limit + "\nblur amount=0.1", registry)


def test_to_steps_says_when_a_program_has_no_steps_form(registry):
    # segment reads the adjusted picture; in steps, perception always reads the session's input
    program = {"version": 1, "nodes": [
        {"id": "a", "tool": "adjust", "args": {"image": "$input", "brightness": 0.2}},
        {"id": "m", "tool": "segment", "args": {"image": "$a", "target": "person"}},
        {"id": "c", "tool": "blur", "args": {"image": "$a", "mask": "$m", "amount": 0.6}}], "output": "$c"}
    with pytest.raises(ValueError, match="this program's shape has no steps form"):
        to_steps(program, registry)
