"""The server backend: an OpenAI-compatible server (vLLM in production).

Two surfaces. ``json`` (general instruct models): ``/v1/chat/completions`` with a
system prompt listing the registry's tools and the registry's JSON Schema as
structured output. ``steps`` (the project's own planner LoRA served by vLLM with
``--enable-lora``): ``/v1/completions`` with exactly the embedded prompt and the
steps grammar as ``structured_outputs`` — the same answers as in-process, batched
on a GPU. For JSON, vLLM takes
``response_format={"type": "json_schema", ...}`` (its ``guided_json`` is silently
ignored), llama.cpp's server wants ``{"type": "json_object", "schema": ...}`` and
mishandles regex patterns, so for it references become enums. Prompts are jinja2
templates rendered from the registry; on a retry the conversation carries the
previous answer and the validator's messages. Connection errors, timeouts and 5xx
answers are retried with backoff; other errors say what the server said.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from banana.agent.planner.base import PlanRequest, Surface, answer_schema, prompt_for
from banana.agent.planner.data import Generator
from banana.agent.program import input_names
from banana.agent.surface import parse_steps, steps_grammar
from banana.prompts import render
from banana.tools.registry import Registry

Flavor = Literal["vllm", "llama.cpp"]


class ServerConfig(BaseModel):
    base_url: str = "http://127.0.0.1:8000"
    model: str | None = Field(default=None, description="default: banana-planner (the LoRA) for steps, the base model for json")
    flavor: Flavor = "vllm"
    surface: Surface = "json"
    api_key: str | None = None
    timeout_s: float = Field(default=60.0, gt=0, description="longest wait for an answer (BANANA_PLANNER_TIMEOUT); not retried")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="longest wait to reach the server (retried)")
    retries: int = Field(default=2, ge=0)
    backoff_s: float = Field(default=0.5, ge=0, description="first wait before a retry; doubles each time")
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=256, ge=16)
    few_shot: int = Field(default=4, ge=0, le=16)


class ServerError(RuntimeError):
    pass


def few_shot_examples(registry: Registry, n: int, seed: int = 7) -> list[dict[str, str]]:
    """Generated examples rendered as JSON programs (only those whose tools are registered)."""
    out: list[dict[str, str]] = []
    for ex in Generator(seed, "train", registry).examples(n * 8):
        if len(out) >= n:
            break
        if ex.refusal:
            out.append({"instruction": ex.instruction, "program": json.dumps({"cannot": ex.steps.split("=", 1)[1].strip('"')})})
            continue
        try:
            program = parse_steps(ex.steps, registry)
        except Exception:  # a tool of the generator is not registered in this process
            continue
        out.append({"instruction": ex.instruction, "program": program.model_dump_json(exclude_defaults=False)})
    return out


class ServerBackend:
    name = "server"
    surface: Surface = "json"

    def __init__(self, registry: Registry, config: ServerConfig | None = None, client: httpx.Client | None = None) -> None:
        self.registry = registry
        self.config = config or ServerConfig()
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        timeout = httpx.Timeout(self.config.timeout_s, connect=min(self.config.connect_timeout_s, self.config.timeout_s))
        self.client = client or httpx.Client(base_url=self.config.base_url, timeout=timeout, headers=headers)
        self.surface = self.config.surface
        self.model = self.config.model or ("banana-planner" if self.surface == "steps" else "smollm2-135m-instruct")
        self._examples = few_shot_examples(registry, self.config.few_shot) if self.surface == "json" else []
        self._grammar = steps_grammar(registry) if self.surface == "steps" else ""

    def messages(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> list[dict[str, str]]:
        tools = [{"name": s.name, "signature": s.signature(), "description": s.description, "notes": getattr(s, "notes", ())}
                 for s in self.registry]
        system = render("json_planner_system", tools=tools, examples=self._examples, inputs=request.inputs,
                        input_names=input_names(request.inputs))
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": request.instruction}]
        if problems:
            repair = render("json_planner_repair", problems=problems)
            msgs += [{"role": "assistant", "content": previous}, {"role": "user", "content": repair}]
        return msgs

    def payload(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> dict[str, Any]:
        cfg = self.config
        if self.surface == "steps":
            return {"model": self.model, "prompt": prompt_for(request.instruction, previous, problems), "temperature": cfg.temperature,
                    "max_tokens": cfg.max_tokens, "stop": ["<|im_end|>"], "structured_outputs": {"grammar": self._grammar}}
        if cfg.flavor == "llama.cpp":
            refs = input_names(request.inputs) + [f"n{i}" for i in range(1, 9)]
            fmt: dict[str, Any] = {"type": "json_object", "schema": answer_schema(self.registry, refs=refs, max_nodes=8)}
        else:
            schema = answer_schema(self.registry)
            fmt = {"type": "json_schema", "json_schema": {"name": "banana_program", "schema": schema, "strict": True}}
        return {"model": self.model, "messages": self.messages(request, previous, problems), "temperature": cfg.temperature,
                "max_tokens": cfg.max_tokens, "response_format": fmt}

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str:
        body = self.payload(request, previous, problems)
        last: Exception | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(min(self.config.backoff_s * 2 ** (attempt - 1), 8.0))
            try:
                resp = self.client.post("/v1/completions" if self.surface == "steps" else "/v1/chat/completions", json=body)
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:  # reached but silent: waiting again helps no one
                raise ServerError(f"{self.config.base_url} did not answer within {self.config.timeout_s:g} s "
                                  f"(BANANA_PLANNER_TIMEOUT sets the limit): {type(exc).__name__}") from None
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = exc
                continue
            if resp.status_code >= 500:
                last = ServerError(f"{self.config.base_url} answered {resp.status_code}: {resp.text[:200]}")
                continue
            if resp.status_code != 200:
                raise ServerError(f"{self.config.base_url} answered {resp.status_code}: {resp.text[:300]}")
            return _content(resp, chat=self.surface == "json")
        raise ServerError(f"no answer from {self.config.base_url} after {self.config.retries + 1} tries: {last}")


    def close(self) -> None:
        self.client.close()


def _content(resp: httpx.Response, chat: bool) -> str:
    try:
        data = resp.json()
        choice = data["choices"][0]
        content = choice["message"]["content"] if chat else choice["text"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ServerError(f"unexpected answer shape from the server: {resp.text[:300]}") from exc
    if not isinstance(content, str):
        raise ServerError(f"the server's message has no text content: {content!r}")
    return content
