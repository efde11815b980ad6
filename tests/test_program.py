"""Validation: one test per error kind (the messages go to the planner), schema, fuzzing."""

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banana.agent.program import MAX_NODES, ProgramError, parse_program, planner_schema, validate

GOOD = {
    "version": 1,
    "nodes": [
        {"id": "warm", "tool": "adjust", "args": {"image": "$input", "warmth": 0.4}},
        {"id": "sel", "tool": "grow", "args": {"mask": "$m", "pixels": 4}},
        {"id": "soft", "tool": "blur", "args": {"image": "$warm", "mask": "$sel", "amount": 0.6}},
    ],
    "output": "$soft",
}
INPUTS = {"input": "Image", "m": "Mask"}


def problems(program, registry, inputs=None) -> list[str]:
    with pytest.raises(ProgramError) as info:
        validate(program, registry, inputs=inputs or INPUTS)
    return [str(p) for p in info.value.problems]


def prog(*nodes, output="$n0"):
    return {"version": 1, "nodes": list(nodes), "output": output}


def test_good_program_validates_in_order(registry):
    valid = validate(GOOD, registry, inputs=INPUTS)
    assert valid.order == ["sel", "warm", "soft"]  # topological, ties broken by node id (lexicographic)
    assert valid.inputs_used == ["input", "m"]


def test_unused_nodes_are_not_scheduled(registry):
    p = prog({"id": "n0", "tool": "blur", "args": {"image": "$input"}},
             {"id": "dead", "tool": "adjust", "args": {"image": "$input"}})
    assert validate(p, registry).order == ["n0"]


def test_not_json():
    with pytest.raises(ProgramError, match=r"not valid JSON.*line 1"):
        parse_program("{nodes: [")


def test_missing_fields_and_extra_fields():
    with pytest.raises(ProgramError) as info:
        parse_program({"nodes": [{"id": "a", "tool": "blur", "argz": {}}]})
    text = str(info.value)
    assert "field 'output' is missing" in text
    assert "node 'a'" in text and "unexpected field 'argz'" in text


def test_unknown_tool_suggests(registry):
    msgs = problems(prog({"id": "n0", "tool": "blurr", "args": {"image": "$input"}}), registry)
    assert msgs == ["node 'n0', tool: unknown tool 'blurr'; did you mean 'blur' or 'border'?"]


def test_unresolved_reference_suggests(registry):
    msgs = problems(prog({"id": "n0", "tool": "blur", "args": {"image": "$inptu"}}), registry)
    assert msgs == ["node 'n0', args.image: $inptu names no node or input; did you mean $input?"]


def test_port_type_mismatch(registry):
    msgs = problems(prog({"id": "n0", "tool": "blur", "args": {"image": "$input", "mask": "$input"}}), registry)
    assert msgs == ["node 'n0', args.mask: 'mask' needs a Mask but $input is an Image"]


def test_missing_port_and_extra_arg(registry):
    msgs = problems(prog({"id": "n0", "tool": "blur", "args": {"amount": 0.5, "radius": 3}}), registry)
    assert "node 'n0', args.radius: blur has no argument 'radius'; it takes image, mask, amount" in msgs
    assert "node 'n0', args.image: blur needs 'image' (an Image); pass a reference like \"$input\"" in msgs


def test_literal_where_reference_belongs_and_vice_versa(registry):
    msgs = problems(prog({"id": "n0", "tool": "blur", "args": {"image": "photo.png", "amount": "$input"}}), registry)
    assert any("'image' takes a reference to an Image" in m for m in msgs)
    assert any("'amount' is a literal value, not a reference" in m for m in msgs)


def test_out_of_bounds_and_bad_enum(registry):
    msgs = problems(prog({"id": "n0", "tool": "blur", "args": {"image": "$input", "amount": 3}}), registry)
    assert msgs == ["node 'n0', args.amount: amount=3: Input should be less than or equal to 1"]
    msgs = problems(prog({"id": "n0", "tool": "crop", "args": {"image": "$input", "aspect": "7:3"}}), registry)
    assert len(msgs) == 1 and "aspect='7:3'" in msgs[0] and "'16:9'" in msgs[0]


def test_missing_required_literal(registry):
    msgs = problems(prog({"id": "a", "tool": "combine", "args": {"a": "$m"}}, output="$a"), registry)
    assert "node 'a', args.b: combine needs 'b' (a Mask); pass a reference like \"$input\"" in msgs


def test_cycle_names_its_nodes(registry):
    msgs = problems(prog({"id": "a", "tool": "blur", "args": {"image": "$c"}},
                         {"id": "b", "tool": "blur", "args": {"image": "$a"}},
                         {"id": "c", "tool": "blur", "args": {"image": "$b"}}, output="$c"), registry)
    assert msgs == ["node 'a': cycle a -> b -> c -> a: a node cannot depend on its own output; "
                    "break the loop by reading from $input or an earlier node"]


def test_self_loop(registry):
    msgs = problems(prog({"id": "n0", "tool": "blur", "args": {"image": "$n0"}}), registry)
    assert msgs == ["node 'n0': cycle n0 -> n0: a node cannot depend on its own output; "
                    "break the loop by reading from $input or an earlier node"]


def test_duplicate_and_reserved_and_malformed_ids(registry):
    msgs = problems(prog({"id": "n0", "tool": "blur", "args": {"image": "$input"}},
                         {"id": "n0", "tool": "blur", "args": {"image": "$input"}},
                         {"id": "input2", "tool": "blur", "args": {"image": "$input"}},
                         {"id": "Bad-Id", "tool": "blur", "args": {"image": "$input"}}), registry)
    assert "node 'n0', id: this id is used by another node; ids must be unique" in msgs
    assert "node 'input2', id: 'input2' is reserved for session inputs; rename the node" in msgs
    assert any(m.startswith("node 'Bad-Id', id: id must match") for m in msgs)


def test_output_problems(registry):
    node = {"id": "n0", "tool": "invert", "args": {"mask": "$m"}}
    assert problems(prog(node, output="$n0"), registry) == [
        "program, output: output $n0 is a Mask; the output must be an Image (end with a tool that returns one)"]
    assert problems(prog(node, output="$nope"), registry)[0].startswith("program, output: output $nope names no node")
    assert problems(prog(node, output="n0"), registry)[0].startswith("program, output: output must be a reference")


def test_output_must_be_a_result(registry):
    node = {"id": "n0", "tool": "blur", "args": {"image": "$input"}}
    assert problems(prog(node, output="$input"), registry) == [
        "program, output: output $input is a session input, not a result; end with a tool that edits it"]


def test_size_limits(registry):
    nodes = [{"id": f"n{i}", "tool": "blur", "args": {"image": "$input"}} for i in range(MAX_NODES + 1)]
    assert f"program: the program has {MAX_NODES + 1} nodes; at most {MAX_NODES} are allowed" in problems(prog(*nodes), registry)
    assert "program: the program has no nodes; add at least one tool call" in problems(prog(output="$input"), registry)


def test_long_string_rejected(registry):
    msgs = problems(prog({"id": "n0", "tool": "crop", "args": {"image": "$input", "aspect": "x" * 500}}), registry)
    assert msgs == ["node 'n0', args.aspect: string is 500 characters; at most 200"]


def test_every_problem_reported_at_once(registry):
    with pytest.raises(ProgramError) as info:
        validate(prog({"id": "a", "tool": "nope", "args": {}},
                      {"id": "b", "tool": "blur", "args": {"image": "$zzz", "amount": 9}}, output="$b"), registry)
    assert len(info.value.problems) == 3
    assert info.value.feedback().count("\n- ") == 2


# ---------------------------------------------------------------- schema


def test_schema_has_one_variant_per_tool_and_accepts_good_programs(registry):
    schema = planner_schema(registry)
    variants = schema["properties"]["nodes"]["items"]["anyOf"]
    assert sorted(v["properties"]["tool"]["const"] for v in variants) == registry.names()
    jsonschema.validate(GOOD, schema)
    blur = next(v for v in variants if v["properties"]["tool"]["const"] == "blur")
    amount = blur["properties"]["args"]["properties"]["amount"]
    assert amount["exclusiveMinimum"] == 0 and amount["maximum"] == 1
    assert blur["properties"]["args"]["required"] == ["image"]


def test_schema_rejects_unregistered_tool_and_bad_bounds(registry):
    schema = planner_schema(registry)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(prog({"id": "n0", "tool": "paint", "args": {"image": "$input"}}), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(prog({"id": "n0", "tool": "blur", "args": {"image": "$input", "amount": 2}}), schema)


def test_enum_refs_for_llama_cpp(registry):
    schema = planner_schema(registry, refs=["input", "n0", "n1"])
    variant = schema["properties"]["nodes"]["items"]["anyOf"][0]
    assert variant["properties"]["id"]["enum"] == ["n0", "n1"]
    assert schema["properties"]["output"]["enum"] == ["$input", "$n0", "$n1"]
    assert "pattern" not in json.dumps(schema["properties"]["output"])


# ---------------------------------------------------------------- fuzzing

REFS = st.sampled_from(["$input", "$m", "$n0", "$n1", "$n2", "$nope", "input", "$"])
LITERALS = st.one_of(st.none(), st.booleans(), st.integers(-300, 300), st.floats(-3, 3), st.just(float("nan")),
                     st.text(max_size=8), st.lists(st.integers(0, 600), max_size=5), REFS)
ARG_NAMES = st.sampled_from(["image", "mask", "a", "b", "boxes", "amount", "pixels", "op", "aspect", "box",
                             "brightness", "saturation", "bogus"])


@st.composite
def random_programs(draw):
    tools = st.sampled_from(["blur", "adjust", "invert", "combine", "grow", "crop", "nope", 3])
    nodes = draw(st.lists(st.fixed_dictionaries({
        "id": st.sampled_from(["n0", "n1", "n2", "input", "X"]),
        "tool": tools,
        "args": st.dictionaries(ARG_NAMES, LITERALS, max_size=4),
    }), max_size=4))
    program = {"version": draw(st.sampled_from([1, 1, 2])), "nodes": nodes, "output": draw(REFS)}
    if draw(st.booleans()):
        program.pop(draw(st.sampled_from(["version", "nodes", "output"])))
    return program


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_programs())
def test_fuzz_random_programs_valid_or_program_error(registry, program):
    try:
        validate(program, registry, inputs=INPUTS)
    except ProgramError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_good_program(registry, data):
    program = json.loads(json.dumps(GOOD))
    node = data.draw(st.sampled_from(program["nodes"]))
    action = data.draw(st.sampled_from(["set", "drop", "tool", "id", "text"]))
    if action == "set":
        node["args"][data.draw(ARG_NAMES)] = data.draw(LITERALS)
    elif action == "drop" and node["args"]:
        node["args"].pop(data.draw(st.sampled_from(sorted(node["args"]))))
    elif action == "tool":
        node["tool"] = data.draw(st.sampled_from(["blur", "adjust", "invert", "combine", "grow", "crop"]))
    elif action == "id":
        node["id"] = data.draw(st.sampled_from(["warm", "sel", "soft", "input", "n9"]))
    text = json.dumps(program)
    if action == "text":
        cut = data.draw(st.integers(0, len(text)))
        text = text[:cut] + data.draw(st.sampled_from(["", "}", ",", "\"", "$"])) + text[cut + 1:]
    try:
        validate(text, registry, inputs=INPUTS)
    except ProgramError as exc:
        assert exc.problems


def test_one_of_groups(registry):
    msgs = problems(prog({"id": "n0", "tool": "crop", "args": {"image": "$input"}}), registry)
    assert msgs == ["node 'n0', args.boxes|box|aspect: crop needs exactly one of boxes, box, aspect; got none"]
    msgs = problems(prog({"id": "n0", "tool": "crop", "args": {"image": "$input", "aspect": "1:1", "box": [0, 0, 5, 5]}}), registry)
    assert msgs == ["node 'n0', args.boxes|box|aspect: crop needs exactly one of boxes, box, aspect; got box, aspect"]
