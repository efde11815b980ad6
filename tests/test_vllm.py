"""The server backend against a real vLLM OpenAI-compatible server (opt-in: ``make test-vllm``).

``make test-vllm`` builds ``.venv-vllm``, serves the base model (``smollm2-135m-instruct``)
and, when ``agent/planner/adapter`` exists, the planner LoRA (``banana-planner``) with
``bench/serve_vllm.sh``, and points ``BANANA_VLLM_URL`` at it. Skipped without it.

What is asserted is what the server guarantees: steps answers are accepted by the
steps grammar (xgrammar's own matcher decides), so they read back without syntax
errors and name registered tools only; a request without the grammar is not (the
field is honoured, not silently dropped); json answers parse and validate against
the registry's JSON Schema; the repair loop sends the validator's messages back and
ends in a valid plan or a bounded PlanningError. Whether a plan is *good* depends on
the model, which is the evaluation's business, not this test's.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import xgrammar as xgr

from banana.agent.planner.base import Planner, PlanningError, PlanRequest, prompt_for
from banana.agent.planner.http import ServerBackend, ServerConfig
from banana.agent.planner.model import ADAPTER_DIR
from banana.agent.program import MAX_NODES, ProgramError, planner_schema, validate
from banana.agent.surface import parse_steps, steps_grammar

URL = os.environ.get("BANANA_VLLM_URL", "")
BASE, LORA = "smollm2-135m-instruct", "banana-planner"
pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not URL, reason="no server: set BANANA_VLLM_URL (make test-vllm starts one)")]

INSTRUCTIONS = [
    "blur the background",
    "make it black and white",
    "remove the red car",
    "turn the sky into a sunset",
    "crop to a square and upscale it 2x",
    "brighten my face a little and keep me looking like me",
]
BAD_FIRST = "invert\nblur amount=0.5\n"  # a mask nobody made: the validator must object


class Recorder:
    """httpx hooks that keep every request body and the answer's latency and usage."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self._start = 0.0

    def on_request(self, request: httpx.Request) -> None:
        self.sent.append(json.loads(request.content))
        self._start = time.perf_counter()

    def on_response(self, response: httpx.Response) -> None:
        response.read()
        seconds = time.perf_counter() - self._start
        body = response.json() if response.status_code == 200 else {}
        self.calls.append({"path": response.request.url.path, "status": response.status_code, "seconds": seconds,
                           "model": self.sent[-1].get("model"), "usage": body.get("usage") or {},
                           "finish": (body.get("choices") or [{}])[0].get("finish_reason")})
        RECORDS.append(self.calls[-1])


RECORDS: list[dict[str, Any]] = []  # every request of the module, for the timings


@pytest.fixture(scope="module", autouse=True)
def timings():
    """Per-request latencies, written as JSON to ``BANANA_VLLM_TIMINGS`` (make test-vllm prints them)."""
    yield
    out = os.environ.get("BANANA_VLLM_TIMINGS")
    if not out or not RECORDS:
        return
    summary = {}
    for path in sorted({r["path"] for r in RECORDS}):
        rows = [r for r in RECORDS if r["path"] == path and r["status"] == 200]
        secs = [r["seconds"] for r in rows]
        toks = [r["usage"].get("completion_tokens", 0) for r in rows]
        prompt = [r["usage"].get("prompt_tokens", 0) for r in rows]
        summary[path] = {"requests": len(rows), "median_s": round(statistics.median(secs), 3), "max_s": round(max(secs), 3),
                         "mean_prompt_tokens": round(statistics.mean(prompt)), "mean_completion_tokens": round(statistics.mean(toks)),
                         "completion_tokens_per_s": round(sum(toks) / sum(secs), 1)}
    Path(out).write_text(json.dumps({"summary": summary, "requests": RECORDS}, indent=1))


def make_backend(registry, surface: str, model: str, **cfg: Any) -> tuple[ServerBackend, Recorder]:
    rec = Recorder()
    config = ServerConfig(base_url=URL, model=model, surface=surface, timeout_s=300, retries=1, **cfg)  # type: ignore[arg-type]
    client = httpx.Client(base_url=URL, timeout=config.timeout_s,
                          event_hooks={"request": [rec.on_request], "response": [rec.on_response]})
    return ServerBackend(registry, config, client=client), rec


def post(backend: ServerBackend, rec: Recorder, body: dict[str, Any]) -> dict[str, Any]:
    resp = backend.client.post("/v1/completions" if "prompt" in body else "/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()["choices"][0]


@functools.cache
def _compiled(grammar: str) -> xgr.CompiledGrammar:
    from transformers import AutoTokenizer

    from banana.agent.planner.model import base_model_dir, im_end_id

    tok = AutoTokenizer.from_pretrained(base_model_dir(), local_files_only=True)
    info = xgr.TokenizerInfo.from_huggingface(tok, stop_token_ids=[im_end_id(tok)])
    return xgr.GrammarCompiler(info).compile_grammar(grammar)


def accepts(grammar: str, text: str, complete: bool = True) -> bool:
    """xgrammar's own verdict (the engine vLLM constrains with): is ``text`` in the grammar (or a prefix of it)?

    Public matcher API: the text must be accepted, and when ``complete`` the grammar must be able to end there.
    """
    matcher = xgr.GrammarMatcher(_compiled(grammar))
    if not matcher.accept_string(text):
        return False
    return not complete or matcher.is_completed()


def assert_steps_shape(text: str, registry, grammar: str, complete: bool = True) -> None:
    """What the grammar guarantees: the line shape, registered tools, and lowering never fails on syntax."""
    assert accepts(grammar, text, complete), f"not in the steps grammar: {text!r}"
    lines = text.splitlines()
    assert 1 <= len(lines) <= MAX_NODES or not complete
    assert all(ln.split(" ", 1)[0] in registry.names() for ln in lines if ln), text
    try:
        parse_steps(text, registry)
    except ProgramError as exc:  # a type or port problem is the repair loop's job; syntax is not
        for p in exc.problems:
            assert "cannot read" not in p.message and "unknown tool" not in p.message, p


@pytest.fixture(scope="module")
def models() -> list[str]:
    resp = httpx.get(f"{URL}/v1/models", timeout=30)
    resp.raise_for_status()
    return [m["id"] for m in resp.json()["data"]]


@pytest.fixture(scope="module")
def steps_model(models) -> str:
    """The planner LoRA when the server has it, else the base (zero-shot, still grammar-bound)."""
    return LORA if LORA in models else BASE


def test_server_serves_the_base_and_the_adapter_when_there_is_one(models):
    assert BASE in models
    if (ADAPTER_DIR / "adapter_model.safetensors").is_file():
        assert LORA in models, f"{ADAPTER_DIR} exists but the server does not serve it as {LORA!r}: {models}"


def test_steps_answers_are_in_the_grammar(registry, steps_model):
    backend, rec = make_backend(registry, "steps", steps_model)
    grammar = steps_grammar(registry)
    finished = 0
    for instruction in INSTRUCTIONS:
        body = backend.payload(PlanRequest(instruction=instruction))
        assert body["structured_outputs"]["grammar"] == grammar
        choice = post(backend, rec, body)
        complete = choice["finish_reason"] == "stop"
        finished += complete
        assert_steps_shape(choice["text"], registry, grammar, complete)
    assert finished >= len(INSTRUCTIONS) // 2, "most answers should end where the grammar ends, well inside max_tokens"


def test_the_grammar_is_honoured_not_ignored(registry):
    """The same prompt without ``structured_outputs`` gives prose, which the grammar rejects (vLLM drops unknown fields silently)."""
    backend, rec = make_backend(registry, "steps", BASE)
    grammar = steps_grammar(registry)
    prompt = prompt_for("Write a short poem about the sea.")
    free = post(backend, rec, {"model": BASE, "prompt": prompt, "max_tokens": 40, "temperature": 0.0, "stop": ["<|im_end|>"]})
    assert not accepts(grammar, free["text"], complete=False), free["text"]
    bound = post(backend, rec, backend.payload(PlanRequest(instruction="Write a short poem about the sea.")))
    assert_steps_shape(bound["text"], registry, grammar, bound["finish_reason"] == "stop")


def test_repair_loop_sends_the_validators_messages_to_the_server(registry, steps_model):
    backend, rec = make_backend(registry, "steps", steps_model)
    grammar = steps_grammar(registry)

    class FirstAnswerWrong:
        """The first answer is a known-invalid plan; every later one comes from the server."""

        name, surface = "vllm", "steps"
        first = True

        def generate(self, request, previous="", problems=None):
            if self.first:
                self.first = False
                return BAD_FIRST
            return backend.generate(request, previous, problems)

    planner = Planner(FirstAnswerWrong(), registry, max_repairs=2)
    try:
        result = planner.plan("blur the background")
        attempts = result.attempts
        validate(result.program, registry)
    except PlanningError as exc:
        attempts = exc.attempts
        assert len(attempts) == 3 and all(a.problems for a in attempts)
    expected = "invert needs a Mask but no earlier step made one"
    assert attempts[0].text == BAD_FIRST and any(expected in p for p in attempts[0].problems)
    assert 2 <= len(attempts) <= 3 and len(rec.sent) == len(attempts) - 1
    first_repair = rec.sent[0]["prompt"]
    assert "Previous plan:\n" + BAD_FIRST.strip() in first_repair
    assert all(p in first_repair for p in attempts[0].problems)
    for sent, before in zip(rec.sent, attempts, strict=False):  # each request repairs the attempt before it
        assert before.text.strip() in sent["prompt"] and all(p in sent["prompt"] for p in before.problems)
    for attempt, call in zip(attempts[1:], rec.calls, strict=True):
        assert_steps_shape(attempt.text, registry, grammar, complete=call["finish"] == "stop")


def test_planner_over_the_server_plans_or_fails_boundedly(registry, steps_model):
    backend, rec = make_backend(registry, "steps", steps_model)
    planned = 0
    for instruction in INSTRUCTIONS[:4]:
        before = len(rec.sent)
        try:
            result = Planner(backend, registry, max_repairs=2).plan(instruction)
            validate(result.program, registry)
            attempts = result.attempts
            planned += 1
        except PlanningError as exc:
            attempts = exc.attempts
            assert len(attempts) == 3
        sent = rec.sent[before:]
        assert len(sent) == len(attempts)
        assert "Problems:" not in sent[0]["prompt"]
        for body, prev in zip(sent[1:], attempts, strict=False):
            assert prev.problems and all(p in body["prompt"] for p in prev.problems)
    if steps_model == LORA:
        assert planned >= 1, "the served planner LoRA planned none of the simple requests"


@pytest.fixture(scope="module")
def validator(registry):
    schema = planner_schema(registry)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_json_surface_answers_match_the_registry_schema(registry, validator):
    backend, rec = make_backend(registry, "json", BASE, flavor="vllm")
    tools = set(registry.names())
    for instruction in INSTRUCTIONS[:3]:
        text = backend.generate(PlanRequest(instruction=instruction))
        assert rec.calls[-1]["finish"] == "stop", f"cut off: {text!r}"
        program = json.loads(text)
        errors = [e.message for e in validator.iter_errors(program)]
        assert not errors, f"{text!r}: {errors}"
        assert program["version"] == 1 and {n["tool"] for n in program["nodes"]} <= tools
    assert rec.sent[0]["response_format"]["type"] == "json_schema"


def test_json_planner_repairs_in_the_conversation(registry, validator):
    backend, rec = make_backend(registry, "json", BASE, flavor="vllm")
    try:
        attempts = Planner(backend, registry, max_repairs=1).plan("remove the red car").attempts
    except PlanningError as exc:
        attempts = exc.attempts
        assert len(attempts) == 2
    assert len(rec.sent) == len(attempts)
    for attempt in attempts:
        assert not list(validator.iter_errors(json.loads(attempt.text)))
    if len(attempts) > 1:
        messages = rec.sent[1]["messages"]
        assert messages[-2] == {"role": "assistant", "content": attempts[0].text}
        assert all(p in messages[-1]["content"] for p in attempts[0].problems)
