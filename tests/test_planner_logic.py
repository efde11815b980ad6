"""Planner pieces that need no model: the data generator, the repair loop, the HTTP backend's transport."""

import json

import httpx
import pytest

from banana.agent.planner.base import Planner, PlanningError, PlanRequest
from banana.agent.planner.data import Generator
from banana.agent.planner.http import ServerBackend, ServerConfig, ServerError
from banana.agent.planner.train import TrainConfig, build_pairs, check_examples
from banana.agent.program import validate
from banana.agent.surface import parse_steps


def test_generated_examples_all_lower_and_validate(registry):
    for split in ("train", "heldout"):
        examples = Generator(seed=3, split=split).examples(1500)
        assert len(examples) > 1000
        check_examples(examples, registry)


def test_every_generated_colour_is_one_recolor_understands():
    from banana.agent.planner.data import COLORS
    from banana.experts.colors import parse_color

    for c in COLORS:
        parse_color(c)  # raises ValueError naming the colour


def test_generator_is_reproducible_and_varied():
    a = [e.instruction for e in Generator(seed=5).examples(300)]
    b = [e.instruction for e in Generator(seed=5).examples(300)]
    assert a == b
    assert len(set(a)) == 300
    families = {f for e in Generator(seed=5).examples(2000) for f in e.family.split("+")}
    assert len(families) >= 18


def test_heldout_templates_never_reach_training():
    gen = Generator(seed=1, split="train")
    train = gen.examples(3000)
    assert not any(gen.is_heldout(t) for e in train for t in e.templates)
    held_gen = Generator(seed=1, split="heldout")
    held = held_gen.examples(300)
    assert all(e.heldout for e in held)
    assert all(held_gen.is_heldout(t) for e in held for t in e.templates)  # no trained template inside a held-out case


def test_training_pairs_include_repairs_with_validator_messages(registry):
    pairs = build_pairs(TrainConfig(examples=400, repair_fraction=0.1), registry)
    repairs = [p for p, _ in pairs if "Problems:" in p]
    assert len(repairs) >= 20
    assert any("no earlier step made one" in p or "unknown tool" in p or "Input should be" in p for p in repairs)
    for _prompt, completion in pairs[:50]:
        assert completion.endswith("<|im_end|>")
        text = completion.replace("<|im_end|>", "")
        if not text.startswith("cannot "):  # refusals are checked in test_planner_refusal.py
            validate(parse_steps(text, registry), registry)


class Replay:
    """A backend that replays recorded answers (the loop, not the model, is under test)."""

    name = "replay"
    surface = "steps"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def generate(self, request, previous="", problems=None):
        self.calls.append((previous, problems))
        return self.answers.pop(0)


def test_repair_loop_feeds_back_exact_messages(registry):
    backend = Replay(["invert\nblur amount=0.5", 'segment target="person"\ninvert\nblur amount=0.5'])
    plan = Planner(backend, registry).plan("blur the background behind me")
    assert plan.repaired and len(plan.attempts) == 2
    previous, problems = backend.calls[1]
    assert previous == "invert\nblur amount=0.5"
    assert problems == ["node 'step 1 (invert)', args.mask: invert needs a Mask but no earlier step made one; "
                        "add a step like 'segment' before it"]
    assert [n.tool for n in plan.program.nodes] == ["segment", "invert", "blur"]


def test_repair_loop_is_bounded_and_says_what_was_wrong(registry):
    backend = Replay(["blur amount=3"] * 5)
    with pytest.raises(PlanningError, match=r"replay could not plan 'blur it' in 3 attempt\(s\).*amount=3: Input should be less"):
        Planner(backend, registry, max_repairs=2).plan("blur it")
    assert len(backend.calls) == 3


# ---------------------------------------------------------------- HTTP transport


GOOD = {"version": 1, "nodes": [{"id": "b", "tool": "blur", "args": {"image": "$input", "amount": 0.5}}], "output": "$b"}


def backend_with(handler, **cfg):
    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://server")
    return ServerBackend(_registry(), ServerConfig(base_url="http://server", retries=2, backoff_s=0.0, **cfg), client=client)


def _registry():
    from banana.tools.registry import default_registry

    return default_registry()


def reply(content, status=200):
    return httpx.Response(status, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


def test_vllm_request_carries_schema_and_prompt():
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return reply(json.dumps(GOOD))

    backend = backend_with(handler)
    plan = Planner(backend, _registry()).plan("blur it")
    body = seen[0]
    assert body["response_format"]["type"] == "json_schema"
    program, refusal = body["response_format"]["json_schema"]["schema"]["anyOf"]
    assert {v["properties"]["tool"]["const"] for v in program["properties"]["nodes"]["items"]["anyOf"]} == set(_registry().names())
    assert refusal["required"] == ["cannot"]
    system = body["messages"][0]["content"]
    assert "blur(image: Image, mask?: Mask, amount=0.5) -> Image" in system
    assert body["messages"][-1] == {"role": "user", "content": "blur it"}
    assert plan.program.nodes[0].tool == "blur"


def test_llama_cpp_flavor_uses_json_object_and_enum_refs():
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return reply(json.dumps(GOOD))

    backend_with(handler, flavor="llama.cpp").generate(PlanRequest(instruction="blur it"))
    fmt = seen[0]["response_format"]
    assert fmt["type"] == "json_object"
    assert '"pattern":' not in json.dumps(fmt["schema"]) and "$input" in fmt["schema"]["anyOf"][0]["properties"]["output"]["enum"]


def test_repair_conversation_and_fences():
    seen = []
    answers = iter(["```json\n{\"version\": 1, \"nodes\": [], \"output\": \"$x\"}\n```", json.dumps(GOOD)])

    def handler(request):
        seen.append(json.loads(request.content))
        return reply(next(answers))

    plan = Planner(backend_with(handler), _registry()).plan("blur it")
    assert plan.repaired
    repair = seen[1]["messages"]
    assert repair[-2]["role"] == "assistant" and repair[-2]["content"].startswith("```json")
    assert "the program has no nodes" in repair[-1]["content"]


def test_retries_5xx_then_succeeds_and_reports_4xx():
    calls = []

    def flaky(request):
        calls.append(1)
        return httpx.Response(503, text="overloaded") if len(calls) < 3 else reply(json.dumps(GOOD))

    assert json.loads(backend_with(flaky).generate(PlanRequest(instruction="x")))["output"] == "$b"
    assert len(calls) == 3

    with pytest.raises(ServerError, match="answered 400: bad schema"):
        backend_with(lambda r: httpx.Response(400, text="bad schema")).generate(PlanRequest(instruction="x"))
    with pytest.raises(ServerError, match=r"after 3 tries.*overloaded"):
        backend_with(lambda r: httpx.Response(500, text="overloaded")).generate(PlanRequest(instruction="x"))
    with pytest.raises(ServerError, match="unexpected answer shape"):
        backend_with(lambda r: httpx.Response(200, json={"nope": 1})).generate(PlanRequest(instruction="x"))


def test_connection_errors_are_retried_then_named():
    def down(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ServerError, match="no answer from http://server after 3 tries: connection refused"):
        backend_with(down).generate(PlanRequest(instruction="x"))


def test_steps_surface_uses_completions_with_the_grammar():
    seen = []

    def handler(request):
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"choices": [{"text": "blur amount=0.5\n"}]})

    plan = Planner(backend_with(handler, surface="steps"), _registry()).plan("blur it")
    path, body = seen[0]
    assert path == "/v1/completions"
    assert body["prompt"].endswith("<|im_start|>user\nblur it<|im_end|>\n<|im_start|>assistant\n")
    assert body["structured_outputs"]["grammar"].startswith("root ::= refusal | line")
    assert plan.program.nodes[0].tool == "blur"
