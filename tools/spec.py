"""ToolSpec: the typed contract of one tool, derived from a plain function.

A tool is one function with a decorator::

    @tool(role="background")
    def blur(image: Image, mask: Mask | None = None, *,
             amount: Annotated[float, Field(gt=0, le=1)] = 0.5) -> Image:
        "Blur the picture, or only where the mask is set."

Parameters typed with a value class are *ports* (they take ``$references``);
keyword-only parameters are *literal args* (validated by a generated pydantic
model, whose bounds and enums end up in the planner's JSON Schema); a parameter
typed ``ToolContext`` receives progress/cancellation hooks; the return annotation
is the output type.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import threading
import time
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from banana.tools.codeversion import source_hash
from banana.tools.files import ReadPolicy
from banana.tools.values import Value

Role = Literal[
    "perception", "mask", "object", "background", "style", "restore", "geometry", "identity", "finalize"
]
ROLES: tuple[str, ...] = typing.get_args(Role)
Needs = Literal["generative"]  # what a tool cannot run without; checked before a program runs (banana.agent.preflight)
TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Cancelled(Exception):
    """Raised inside a tool when its run was cancelled."""


class TimedOut(Cancelled):
    """Raised inside a tool that ran past its node's time limit."""


class ToolContext:
    """What a running tool may use: progress reports, cancellation, its device, the files it may read."""

    def __init__(
        self,
        node_id: str = "",
        device: str = "cpu",
        on_progress: Callable[[float, str], None] | None = None,
        cancel: threading.Event | None = None,
        files: ReadPolicy | None = None,
        deadline: float | None = None,
    ) -> None:
        self.node_id = node_id
        self.deadline = deadline  # time.monotonic() past which the node stops at its next check
        self.device = device
        self.files = files or ReadPolicy()  # grants nothing unless the caller says so
        self._on_progress = on_progress
        self._cancel = cancel or threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Stop the tool here if its run was cancelled."""
        if self._cancel.is_set():
            raise Cancelled(f"node {self.node_id!r} was cancelled")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimedOut(f"node {self.node_id!r} ran past its time limit")

    def progress(self, fraction: float, message: str = "") -> None:
        self.check()
        if self._on_progress is not None:
            self._on_progress(min(max(float(fraction), 0.0), 1.0), message)


class Port(BaseModel):
    """A typed input that takes a ``$reference`` to a node output or a session input."""

    model_config = ConfigDict(frozen=True)
    type: str
    required: bool = True


class Resources(BaseModel):
    """Hints for the executor and the expert manager."""

    model_config = ConfigDict(frozen=True)
    device: Literal["cpu", "gpu"] = "cpu"
    memory_mb: int = Field(default=0, ge=0)
    serial: bool = Field(default=False, description="run at most one at a time (model not thread-safe)")


class ToolSpec(BaseModel):
    """Everything the planner, the validator and the executor know about a tool."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    description: str
    role: Role
    inputs: dict[str, Port]
    args_model: type[BaseModel] = Field(exclude=True)
    output: str
    resources: Resources = Resources()
    version: str = "1"
    one_of: list[list[str]] = Field(default_factory=list, description="groups of ports/args of which exactly one is given")
    needs: Needs | None = Field(default=None, description="'generative': only a diffusion backbone with weights can run it")
    fn: Callable[..., Value] = Field(exclude=True, repr=False)
    salt: Callable[[], str] | None = Field(default=None, exclude=True, repr=False)
    cache: bool = Field(default=True, description="False: the executor runs it every time and never caches its result")
    env: tuple[str, ...] = Field(default=(), description="environment variables its results depend on; cache keys cover their values")
    context_param: str | None = Field(default=None, exclude=True, description="the parameter that receives the ToolContext")
    checks: tuple[Callable[..., Any], ...] = Field(default=(), exclude=True, repr=False,
                                                   description="the critic's checks of one call (see banana.tools.checks)")
    phrase: str = Field(default="", description="plain words for one call, e.g. 'blur {mask}, amount {amount}' (see banana.tools.checks)")
    notes: tuple[str, ...] = Field(default=(), description="how requests map to this tool (the planner's conventions)")

    @property
    def code_version(self) -> str:
        """The declared version plus a hash of the tool's source and its package's helpers (editing them invalidates the cache)."""
        return f"{self.version}+{source_hash(self.fn.__module__)}"

    @property
    def arg_names(self) -> list[str]:
        return list(self.args_model.model_fields)

    def args_schema(self) -> dict[str, Any]:
        """JSON Schema of the literal args (bounds, enums, defaults); built once per tool (the validator asks on every
        run, ~1 ms each), handed out as a copy since callers may edit it."""
        return copy.deepcopy(_json_schema(self.args_model))

    def required_args(self) -> list[str]:
        return [n for n, f in self.args_model.model_fields.items() if f.is_required()]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "role": self.role,
            "inputs": {k: p.model_dump() for k, p in self.inputs.items()},
            "args": self.args_schema().get("properties", {}),
            "required_args": self.required_args(),
            "output": self.output,
            "one_of": self.one_of,
            "resources": self.resources.model_dump(),
            "version": self.version,
            "needs": self.needs,
        }

    def signature(self) -> str:
        """A one-line human signature, e.g. ``blur(image: Image, mask?: Mask, amount=0.5) -> Image``."""
        parts = [f"{k}{'' if p.required else '?'}: {p.type}" for k, p in self.inputs.items()]
        for n, f in self.args_model.model_fields.items():
            parts.append(n if f.is_required() else f"{n}={f.default!r}")
        return f"{self.name}({', '.join(parts)}) -> {self.output}"

    def __call__(self, ctx: ToolContext | None = None, **kwargs: Any) -> Value:
        """Run the tool with ports and literal args by name (literals are validated here too)."""
        ctx = ctx or ToolContext()
        ports = {k: v for k, v in kwargs.items() if k in self.inputs}
        literals = {k: v for k, v in kwargs.items() if k not in self.inputs}
        for name, value in ports.items():
            want = self.inputs[name].type
            if value is not None and getattr(value, "type_name", None) != want:
                raise TypeError(f"{self.name}: port {name!r} takes {want}, got {type(value).__name__}")
        missing = [p for p, spec in self.inputs.items() if spec.required and ports.get(p) is None]
        if missing:
            raise TypeError(f"{self.name}: missing port(s) {', '.join(missing)}")
        args = self.args_model.model_validate(literals)
        call = {**ports, **args.model_dump()}
        if self.context_param:
            call[self.context_param] = ctx
        out = self.fn(**call)
        if not isinstance(out, Value) or out.type_name != self.output:
            raise TypeError(f"tool {self.name!r} must return {self.output}, returned {type(out).__name__}")
        return out


@functools.cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _port_type(annotation: Any) -> tuple[type[Value], bool] | None:
    """(value class, optional) when the annotation is a value class or ``X | None``."""
    if inspect.isclass(annotation) and issubclass(annotation, Value):
        return annotation, False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and inspect.isclass(members[0]) and issubclass(members[0], Value):
            return members[0], True
    return None


def tool(
    role: Role,
    *,
    name: str | None = None,
    description: str | None = None,
    resources: Resources | None = None,
    version: str = "1",
    one_of: list[list[str]] | None = None,
    salt: Callable[[], str] | None = None,
    needs: Needs | None = None,
    cache: bool = True,
    env: tuple[str, ...] = (),
    checks: tuple[Callable[..., Any], ...] = (),
    phrase: str = "",
    notes: tuple[str, ...] = (),
) -> Callable[[Callable[..., Value]], ToolSpec]:
    """Turn a typed function into a :class:`ToolSpec` (see the module docstring).

    ``one_of`` names groups of ports/args of which a call must give exactly one
    (e.g. crop's boxes / box / aspect); the validator checks it before anything runs.
    ``salt`` returns what results depend on beyond the inputs (e.g. which backbone
    is configured); the executor's cache key includes it. ``needs="generative"`` marks a tool
    that only a diffusion backbone can run: a program using it stops before any work without one.
    ``cache=False``: the executor always runs it (e.g. it reads something that changes under it).
    ``env`` names environment variables the tool reads: the cache key covers their values (the
    content of files it reads through :data:`banana.tools.files.FilePath` args is covered too).
    ``checks`` are the critic's checks of one call (keep / follow / quality, see :mod:`banana.tools.checks`);
    ``phrase`` says one call in plain words for the intent check (``{port}``/``{arg}`` fields, ``[optional parts]``).
    ``notes`` say how people's requests map to this tool (the planner's conventions): the JSON planner prompt and
    docs/catalogue.md are built from them, and the generator's families must agree with them.
    """

    def wrap(fn: Callable[..., Value]) -> ToolSpec:
        tool_name = name or fn.__name__
        if not TOOL_NAME.match(tool_name):
            raise ValueError(f"tool name {tool_name!r} must match {TOOL_NAME.pattern}")
        doc = description or (inspect.getdoc(fn) or "").strip().split("\n")[0]
        if not doc:
            raise ValueError(f"tool {tool_name!r} needs a description (a docstring's first line)")
        hints = typing.get_type_hints(fn, include_extras=True)
        inputs: dict[str, Port] = {}
        fields: dict[str, Any] = {}
        context_param = None
        for pname, param in inspect.signature(fn).parameters.items():
            ann = hints.get(pname, Any)
            if ann is ToolContext:
                context_param = pname
                continue
            port = _port_type(ann)
            if port is not None:
                if param.kind is inspect.Parameter.KEYWORD_ONLY:
                    raise TypeError(f"{tool_name}: port {pname!r} must be positional (before the *)")
                required = param.default is inspect.Parameter.empty and not port[1]
                inputs[pname] = Port(type=port[0].type_name, required=required)
                continue
            if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                raise TypeError(f"{tool_name}: literal arg {pname!r} must be keyword-only (after the *)")
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (ann, default)
        ret = hints.get("return")
        if not (inspect.isclass(ret) and issubclass(ret, Value)):
            raise TypeError(f"{tool_name}: the return annotation must be a value class, got {ret!r}")
        model = create_model(
            f"{''.join(p.title() for p in tool_name.split('_'))}Args",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        for group in one_of or []:
            unknown = [g for g in group if g not in inputs and g not in fields]
            if unknown:
                raise TypeError(f"{tool_name}: one_of names unknown parameters {unknown}")
        return ToolSpec(
            name=tool_name,
            one_of=[list(g) for g in one_of or []],
            description=doc,
            role=role,
            inputs=inputs,
            args_model=model,
            output=ret.type_name,
            resources=resources or Resources(),
            version=version,
            fn=fn,
            salt=salt,
            needs=needs,
            cache=cache,
            env=tuple(env),
            context_param=context_param,
            checks=tuple(checks),
            phrase=phrase,
            notes=tuple(notes),
        )

    return wrap
