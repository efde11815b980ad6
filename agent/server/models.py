"""The server's payloads (pydantic): what each route takes and answers; they make the OpenAPI docs at /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str
    type: str = "invalid_request_error"
    code: str | None = None


class ErrorBody(BaseModel):
    """Every error, in the OpenAI client's shape (it reads ``error.message``)."""

    error: ErrorDetail


class Picture(BaseModel):
    """A picture in the store, by its content hash; ``url`` serves it as PNG."""

    hash: str
    url: str
    width: int
    height: int
    b64_png: str | None = Field(default=None, description="the PNG itself, when asked for")


class NodeOut(BaseModel):
    node: str
    tool: str
    status: Literal["ran", "cached", "failed", "skipped", "cancelled", "not needed"]
    seconds: float | None = None
    error: str | None = None


class CritiqueOut(BaseModel):
    passed: bool
    summary: str
    lines: list[str] = Field(default_factory=list)
    details: dict[str, Any] | None = Field(default=None, description="the critic's full record (checks per node)")


class PlanIn(BaseModel):
    instruction: str = Field(min_length=1, max_length=1000)
    inputs: int = Field(default=1, ge=1, le=8, description="how many pictures the program may use ($input, $input1, ...)")


class PlanOut(BaseModel):
    instruction: str
    program: dict[str, Any] | None = Field(description="the validated program; None when the planner refused")
    steps: str | None = Field(description="the program as numbered steps in plain words")
    refusal: str | None = Field(default=None, description="why no installed tool can do it")
    backend: str
    repairs: int
    seconds: float


class RunOut(BaseModel):
    job: str
    output: Picture | None = Field(description="the program's output picture (a mask comes back as a grey picture)")
    value: Any = Field(default=None, description="a non-picture output (boxes, text, number) as JSON")
    program: dict[str, Any]
    steps: str
    nodes: list[NodeOut]
    critique: CritiqueOut | None = None
    seconds: float


class SessionIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200, description="default: a new random name")


class EditIn(BaseModel):
    instruction: str = Field(min_length=1, max_length=1000, description='an edit, or a follow-up ("stronger", "undo that", "also the sky")')


class BranchIn(BaseModel):
    turn: int = Field(ge=0, description="the turn to go back to; the next edit starts a new branch from it")


class TurnOut(BaseModel):
    session: str
    n: int
    parent: int | None
    kind: str
    instruction: str
    program: dict[str, Any] | None
    steps: str | None
    critique: CritiqueOut | None
    picture: Picture
    op: str | None = Field(default=None, description="what the turn did: plan, scale, also, retarget, instead, append, open, ...")


class SessionOut(BaseModel):
    name: str
    current: TurnOut | None
    path: list[int] = Field(description="turn numbers from the first picture to the current one")
    turns: list[TurnOut] = Field(description="every turn, all branches, in order")


class SessionList(BaseModel):
    sessions: list[str]


class ToolList(BaseModel):
    tools: list[dict[str, Any]] = Field(description="each tool's typed ports, args (JSON Schema), output and resources")


class JobOut(BaseModel):
    id: str
    kind: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    error: str | None = None
    events: str = Field(description="server-sent events of this job's node-by-node progress")
    result: Any = None


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class BananaExtra(BaseModel):
    """What ran, beside the OpenAI fields (clients that do not know it ignore it)."""

    session: str = Field(description="the session this edit was stored in; continue it with /v1/sessions/{session}/turns")
    turn: int
    program: dict[str, Any] | None
    steps: str | None
    critique: CritiqueOut | None
    seconds: float


class ImagesOut(BaseModel):
    """OpenAI's ImagesResponse, plus ``banana``."""

    created: int
    data: list[ImageData]
    output_format: Literal["png"] = "png"
    size: str | None = None
    banana: BananaExtra
