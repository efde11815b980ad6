"""The FastAPI app: OpenAI-compatible image edits, Banana's own API, and the web page at ``/``.

Every route that plans or runs tools is a job on the bounded work queue (429 + Retry-After when full);
a client that disconnects while it waits cancels its job. See ``/docs`` for the schema of each payload.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from PIL import Image as PILImage
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from banana.agent.critic import Critique, critique
from banana.agent.planner import PlanningError, PlanRequest
from banana.agent.program import ProgramError, input_names, parse_program, planner_schema, validate
from banana.agent.server.engine import Engine, ServerConfig
from banana.agent.server.jobs import ApiError, Job
from banana.agent.server.models import (
    BananaExtra,
    BranchIn,
    CritiqueOut,
    EditIn,
    ErrorBody,
    ImageData,
    ImagesOut,
    JobOut,
    NodeOut,
    Picture,
    PlanIn,
    PlanOut,
    RunOut,
    SessionIn,
    SessionList,
    SessionOut,
    ToolList,
    TurnOut,
)
from banana.agent.server.uploads import decode_mask, decode_picture, parse_size, safe_name
from banana.agent.sessions import StoreError, Turn
from banana.agent.surface import to_steps
from banana.agent.turns import ChatSession, TurnError, run_turn
from banana.tools.files import file_args
from banana.tools.values import Image, Mask, Value

log = logging.getLogger("banana.server")
COOKIE = "banana_key"
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (400, 401, 404, 413, 422, 429, 500)}
SESSION_NAME = r"^[\w.-]{1,100}$"
WaitParam = Annotated[bool, Query(description="false: answer 202 with the job at once; its events and result come from /v1/jobs/{id}")]


# ------------------------------------------------------------------ guard: key and body size


class Guard:
    """ASGI middleware: the API key (``Authorization: Bearer`` or the web page's cookie) and the request-size limit."""

    def __init__(self, app: ASGIApp, key: str | None, max_body: int) -> None:
        self.app, self.key, self.max_body = app, key, max_body

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        assert self.key is not None
        want = self.key.encode()
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and hmac.compare_digest(auth[7:].strip(), want):
            return True
        for part in headers.get(b"cookie", b"").split(b";"):
            k, _, v = part.strip().partition(b"=")
            if k == COOKIE.encode() and hmac.compare_digest(v, want):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        path = scope.get("path", "")
        if self.key is not None and path != "/login" and not self._authorised(headers):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            html = b"text/html" in headers.get(b"accept", b"") and scope.get("method") == "GET"
            response: Response = (RedirectResponse("/login", status_code=303) if html else
                                  _error(401, "this server needs its API key: send 'Authorization: Bearer <BANANA_API_KEY>'",
                                         "authentication_error", {"WWW-Authenticate": "Bearer"}))
            return await response(scope, receive, send)
        if scope["type"] == "http":
            too_big = _error(413, f"the request body is over this server's limit of {self.max_body / 2**20:.3g} MB")
            length = headers.get(b"content-length")
            if length is not None:
                if not length.isdigit() or int(length) > self.max_body:
                    return await too_big(scope, receive, send)
            elif scope.get("method") in ("POST", "PUT", "PATCH"):  # chunked: read it here, up to the limit, then replay it
                messages: list[Message] = []
                size, more = 0, True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    size += len(message.get("body", b""))
                    if size > self.max_body:
                        return await too_big(scope, receive, send)
                    messages.append(message)
                    more = message.get("more_body", False)
                replay = iter(messages)

                async def replayed() -> Message:
                    return next(replay, None) or await receive()

                return await self.app(scope, replayed, send)
        return await self.app(scope, receive, send)


def _error(status: int, message: str, kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody.model_validate({"error": {"message": message, "type": kind, "code": str(status)}})
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Banana: sign in</title></head>
<body style="font-family: sans-serif; max-width: 30em; margin: 4em auto">
<h1>Banana</h1><p>This server needs its API key (<code>BANANA_API_KEY</code>).</p>
<form method="post" action="/login"><input type="password" name="key" autofocus size="40" aria-label="API key">
<button type="submit">Sign in</button></form>{note}</body></html>"""


# ------------------------------------------------------------------ helpers


async def wait_for(job: Job, request: Request) -> Any:
    """The job's result; cancels it when the client goes away first."""
    delay = 0.005
    while not job.done.is_set():
        await asyncio.sleep(delay)
        delay = min(0.05, delay * 1.5)
        if not job.done.is_set() and await request.is_disconnected():
            job.cancel.set()
            log.info("client gone: job %s cancelled", job.id)
            raise ApiError(499, "the client disconnected; the job was cancelled", "cancelled")
    if job.error is not None:
        raise job.error
    return job.result


def node_emitter(job: Job) -> Callable[[Any], None]:
    def on_event(ev: Any) -> None:
        job.emit({"event": "node", **ev.model_dump()})
    return on_event


def critique_out(data: dict[str, Any] | Critique | None) -> CritiqueOut | None:
    if data is None:
        return None
    c = data if isinstance(data, Critique) else Critique.model_validate(data)
    return CritiqueOut(passed=c.passed, summary=c.summary(), lines=c.lines(), details=c.model_dump(mode="json"))


class Api:
    """Route bodies that need the engine (the app's state)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def picture(self, request: Request, digest: str, b64: bool = False, image: Image | None = None) -> Picture:
        path = self.engine.store().pictures.path(digest)
        if image is not None:
            width, height = image.width, image.height
        else:
            with PILImage.open(path) as im:
                width, height = im.size
        return Picture(hash=digest, url=str(request.url_for("get_picture", digest=digest)), width=width, height=height,
                       b64_png=base64.b64encode(path.read_bytes()).decode() if b64 else None)

    def steps(self, program: dict[str, Any] | None) -> str | None:
        if program is None:
            return None
        try:
            return to_steps(program, self.engine.registry)
        except (ValueError, ProgramError):
            return json.dumps(program)

    def turn(self, request: Request, turn: Turn, op: str | None = None) -> TurnOut:
        return TurnOut(session=turn.session, n=turn.n, parent=turn.parent, kind=turn.kind, instruction=turn.instruction,
                       program=turn.program, steps=self.steps(turn.program), critique=critique_out(turn.critique),
                       picture=self.picture(request, turn.picture), op=op or turn.meta.get("op") or turn.kind)

    def session(self, request: Request, name: str) -> SessionOut:
        store = self.engine.store()
        self.need_session(name)
        current = store.current(name)
        return SessionOut(name=name, current=self.turn(request, current) if current else None,
                          path=[t.n for t in store.path(name)], turns=[self.turn(request, t) for t in store.turns(name)])

    def need_session(self, name: str) -> None:
        if not self.engine.store().has_session(name):
            raise ApiError(404, f"no session named {name!r}", "not_found")

    def store_error(self, exc: StoreError | TurnError) -> ApiError:
        return ApiError(409, self.engine.clean(str(exc)))

    async def read_pictures(self, files: list[UploadFile], what: str) -> list[tuple[str, bytes, Image]]:
        cfg = self.engine.config
        if len(files) > cfg.max_files:
            raise ApiError(400, f"{what}: {len(files)} files; at most {cfg.max_files} per request")
        out = []
        for i, f in enumerate(files):
            name = safe_name(f.filename, f"{what}{i}")
            data = await f.read(cfg.max_upload_bytes + 1)
            out.append((name, data, decode_picture(name, data, cfg.max_upload_bytes, cfg.max_pixels, cfg.max_side)))
        return out


def value_out(value: Value) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()  # type: ignore[attr-defined]
    for attr in ("text", "value", "boxes"):
        if hasattr(value, attr):
            v = getattr(value, attr)
            return v.tolist() if isinstance(v, np.ndarray) else v
    return value.type_name


# ------------------------------------------------------------------ the app


def create_app(config: ServerConfig | None = None, registry: Any = None, planner_factory: Callable[[], Any] | None = None) -> FastAPI:
    """A FastAPI app with one engine (loaded once, closed at shutdown)."""
    config = config or ServerConfig()
    engine = Engine(config, registry, planner_factory)
    api = Api(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.preload:
            await asyncio.to_thread(engine.load)
        try:
            yield
        finally:
            await asyncio.to_thread(engine.close)  # finishes or cancels running jobs; the store's turns are committed

    app = FastAPI(title="Banana", version="0.1.0", lifespan=lifespan, responses=ERRORS,
                  description="Plan, run and refine image edits. OpenAI-compatible `POST /v1/images/edits`; sessions, plans, "
                              "programs, tools and node-by-node progress under `/v1`; the web page at `/`.")
    app.state.engine = engine
    app.add_middleware(Guard, key=config.api_key, max_body=config.max_request_bytes)  # type: ignore[arg-type]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, engine.clean(exc.message), exc.kind, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'request'}: {e.get('msg', 'invalid')}"
                 for e in exc.errors()[:10]]
        return _error(400, engine.clean("; ".join(parts)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "bad request"
        return _error(exc.status_code, engine.clean(message), "not_found" if exc.status_code == 404 else "invalid_request_error",
                      dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("request %s %s crashed (ref %s)", request.method, request.url.path, ref, exc_info=exc)
        return _error(500, f"internal error (ref {ref}); the server's log has the details", "server_error")

    def submit(kind: str, fn: Callable[[Job], Any]) -> Job:
        return engine.jobs.submit(kind, fn)

    async def answer(job: Job, request: Request, wait: bool) -> Any:
        """The result (the client waits; leaving cancels the job), or at once 202 + the job (follow its events; DELETE cancels)."""
        if wait:
            return await wait_for(job, request)
        return JSONResponse(job_out(job, request).model_dump(mode="json"), status_code=202)

    # -------------------------------------------------------------- login (only used when a key is set)

    @app.get("/login", include_in_schema=False)
    async def login_page() -> HTMLResponse:
        return HTMLResponse(LOGIN_PAGE.format(note=""))

    @app.post("/login", include_in_schema=False)
    async def login(key: Annotated[str, Form(max_length=1000)] = "") -> Response:
        if config.api_key is None:
            return RedirectResponse("/", status_code=303)
        if not hmac.compare_digest(key.encode(), config.api_key.encode()):
            return HTMLResponse(LOGIN_PAGE.format(note="<p>That is not the key.</p>"), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict")
        return response

    # -------------------------------------------------------------- OpenAI-compatible

    @app.post("/v1/images/edits", response_model=ImagesOut, tags=["openai"])
    async def images_edits(
        request: Request,
        prompt: Annotated[str, Form(min_length=1, max_length=1000)],
        image: Annotated[list[UploadFile] | None, File(description="the picture to edit (one)")] = None,
        image_list: Annotated[list[UploadFile] | None, File(alias="image[]", description="the same, as the client sends a list")] = None,
        mask: Annotated[UploadFile | None, File(description="PNG; its fully transparent pixels mark where to edit")] = None,
        n: Annotated[int, Form(ge=1, le=10)] = 1,
        response_format: Annotated[str, Form(pattern="^(b64_json|url)$")] = "b64_json",
        size: Annotated[str | None, Form(max_length=20)] = None,
        model: Annotated[str | None, Form(max_length=200)] = None,
    ) -> ImagesOut:
        """Edit a picture by instruction (OpenAI's images API). Extra field ``banana``: the program, steps and critique."""
        files = (image or []) + (image_list or [])
        if not files:
            raise ApiError(400, "image: send the picture to edit as the multipart field 'image'")
        if len(files) > 1:
            raise ApiError(400, f"image: {len(files)} pictures sent; Banana edits one picture per request")
        if n != 1:
            raise ApiError(400, f"n: {n}; Banana makes one deterministic result per request, so n must be 1")
        target = parse_size(size)
        ((name, _, picture),) = await api.read_pictures(files, "image")
        keep = None
        if mask is not None:
            cfg = config
            data = await mask.read(cfg.max_upload_bytes + 1)
            keep = ~decode_mask(safe_name(mask.filename, "mask"), data, (picture.width, picture.height), cfg.max_upload_bytes,
                                cfg.max_pixels, cfg.max_side)

        def work(job: Job) -> ImagesOut:
            store = engine.store()
            session = f"api-{job.id[:16]}"
            with engine.reading([]), engine.session_lock(session):
                store.add_turn(session, instruction=f"/open {name}", picture=picture, kind="open")
                try:
                    outcome = run_turn(engine.agent, picture, None, prompt, node_emitter(job))
                except TurnError as exc:
                    raise ApiError(422, engine.clean(str(exc)), "edit_failed") from None
                job.check()
                result = outcome.picture
                if not isinstance(result, Image):
                    raise ApiError(422, f"the plan's output is a {getattr(result, 'type_name', '?')}, not a picture", "edit_failed")
                if keep is not None:
                    if result.pixels.shape != picture.pixels.shape:
                        raise ApiError(422, "the edit changed the picture's size, so the mask cannot be applied; edit without a mask")
                    result = Image(np.where(keep[..., None], picture.pixels, result.pixels))
                if target is not None and (result.width, result.height) != target:
                    result = Image(np.asarray(PILImage.fromarray(result.pixels).resize(target, PILImage.Resampling.LANCZOS)))
                program = outcome.program.model_dump() if outcome.program else None
                turn = store.add_turn(session, instruction=prompt, picture=result, program=program, critique=outcome.critique,
                                      meta={"op": outcome.op, "plan_s": outcome.plan_seconds, "run_s": outcome.run_seconds,
                                            "mask": keep is not None, "size": size, "model": model})
            pic = api.picture(request, turn.picture, b64=response_format == "b64_json", image=result)
            data = ImageData(b64_json=pic.b64_png, revised_prompt=prompt) if response_format == "b64_json" else \
                ImageData(url=pic.url, revised_prompt=prompt)
            return ImagesOut(created=int(time.time()), data=[data], size=f"{result.width}x{result.height}",
                             banana=BananaExtra(session=session, turn=turn.n, program=program, steps=api.steps(program),
                                                critique=critique_out(outcome.critique),
                                                seconds=round(outcome.plan_seconds + outcome.run_seconds, 4)))

        return await wait_for(submit("images.edit", work), request)

    # -------------------------------------------------------------- pictures

    @app.get("/v1/pictures/{digest}.png", name="get_picture", tags=["pictures"],
             responses={200: {"content": {"image/png": {}}}})
    def get_picture(digest: str) -> Response:
        """A stored picture by its content hash (as PNG)."""
        if not (len(digest) == 32 and all(c in "0123456789abcdef" for c in digest)):
            raise ApiError(404, "no such picture (a picture's name is its 32-digit content hash)", "not_found")
        path = engine.store().pictures.path(digest)
        if not path.is_file():
            raise ApiError(404, f"no picture {digest}", "not_found")
        return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "private, max-age=31536000, immutable"})

    # -------------------------------------------------------------- tools, plans, programs

    @app.get("/v1/tools", response_model=ToolList, tags=["tools"])
    def tools() -> ToolList:
        """Every registered tool: typed ports, args, output."""
        return ToolList(tools=[s.describe() for s in engine.registry])

    @app.get("/v1/tools/schema", tags=["tools"])
    def tools_schema() -> dict[str, Any]:
        """The JSON Schema of a program (the planner is constrained with it)."""
        return planner_schema(engine.registry)

    @app.post("/v1/plan", response_model=PlanOut, tags=["plans"])
    async def plan(body: PlanIn, request: Request) -> PlanOut:
        """Plan an instruction into a validated program (nothing runs), or the planner's honest refusal."""

        def work(job: Job) -> PlanOut:
            try:
                p = engine.agent.planner.plan(PlanRequest(instruction=body.instruction, inputs=body.inputs))
            except PlanningError as exc:
                raise ApiError(422, engine.clean(str(exc)), "planning_failed") from None
            program = p.program.model_dump() if p.program is not None else None
            return PlanOut(instruction=body.instruction, program=program, steps=api.steps(program), refusal=p.refusal,
                           backend=p.backend, repairs=max(0, len(p.attempts) - 1), seconds=round(p.seconds, 4))

        return await wait_for(submit("plan", work), request)

    @app.post("/v1/run", response_model=RunOut, tags=["programs"], responses={202: {"model": JobOut}})
    async def run(
        request: Request,
        program: Annotated[str, Form(description="the program's JSON")],
        images: Annotated[list[UploadFile], File(description="the pictures: $input, then $input1, $input2, ...")],
        critic: Annotated[bool, Form(description="judge the result with the critic")] = False,
        response_format: Annotated[str, Form(pattern="^(b64_json|url)$")] = "url",
        wait: WaitParam = True,
    ) -> RunOut:
        """Run a program on uploaded pictures. It may read only these uploads (by their file names), no server file."""
        pictures = await api.read_pictures(images, "images")
        try:
            parsed = parse_program(program).model_dump()
        except ProgramError as exc:
            raise ApiError(400, engine.clean(f"program: {exc}")) from None
        job_dir = engine.uploads / uuid.uuid4().hex
        job_dir.mkdir()
        by_name: dict[str, Path] = {}
        for name, data, _ in pictures:
            path = job_dir / name
            path.write_bytes(data)
            by_name[name] = path
        for node in parsed["nodes"]:  # a file arg naming an upload is pointed at its saved copy; anything else is refused
            spec = engine.registry.get(node["tool"]) if node.get("tool") in engine.registry else None
            for arg in file_args(spec) if spec is not None else ():
                value = node["args"].get(arg)
                if isinstance(value, str) and value in by_name:
                    node["args"][arg] = str(by_name[value])
        inputs = {n: p for n, (_, _, p) in zip(input_names(len(pictures)), pictures, strict=True)}
        try:
            valid = validate(parsed, engine.registry, inputs={n: "Image" for n in inputs})
        except ProgramError as exc:
            _remove(job_dir)
            raise ApiError(400, engine.clean(f"program: {exc}")) from None

        def work(job: Job) -> RunOut:
            try:
                with engine.reading(list(by_name.values())):
                    result = engine.agent.executor.run(valid, dict(inputs), on_event=node_emitter(job))
                    judged = critique(valid, result, dict(inputs), engine.registry) if critic else None
            except ValueError as exc:
                raise ApiError(422, engine.clean(str(exc)), "run_failed") from None
            finally:
                _remove(job_dir)
            job.check()
            nodes = []
            for nid in valid.order:
                tool = valid.program.node(nid).tool
                if nid in result.failures:
                    f = result.failures[nid]
                    nodes.append(NodeOut(node=nid, tool=tool, status=f.kind, error=engine.clean(f.error)))
                elif nid in result.cached:
                    nodes.append(NodeOut(node=nid, tool=tool, status="cached", seconds=0.0))
                elif nid in result.outputs:
                    nodes.append(NodeOut(node=nid, tool=tool, status="ran", seconds=round(result.timings.get(nid, 0.0), 4)))
            if not result.ok:
                failure = result.failures.get(valid.output) or next(iter(result.failures.values()))
                raise ApiError(422, engine.clean(failure.error), "run_failed")
            out = result.outputs[valid.output]
            if isinstance(out, Mask):
                out = Image(np.repeat(np.round(out.alpha * 255).astype(np.uint8)[..., None], 3, axis=2))
            digest = engine.store().pictures.put(out) if isinstance(out, Image) else None
            picture = api.picture(request, digest, b64=response_format == "b64_json", image=out) if digest else None
            return RunOut(job=job.id, output=picture, value=None if digest else value_out(out), program=valid.program.model_dump(),
                          steps=api.steps(valid.program.model_dump()) or "", nodes=nodes, critique=critique_out(judged),
                          seconds=round(result.wall, 4))

        return await answer(submit("run", work), request, wait)

    # -------------------------------------------------------------- sessions

    @app.get("/v1/sessions", response_model=SessionList, tags=["sessions"])
    def sessions() -> SessionList:
        return SessionList(sessions=engine.store().sessions())

    @app.post("/v1/sessions", response_model=SessionOut, tags=["sessions"])
    async def create_session(request: Request, name: Annotated[str | None, Form(pattern=SESSION_NAME)] = None,
                             image: Annotated[UploadFile | None, File(description="the first picture")] = None) -> SessionOut:
        """Create a session (an existing name is reused), optionally opening a first picture."""
        name = SessionIn(name=name).name or f"s-{uuid.uuid4().hex[:12]}"
        picture = (await api.read_pictures([image], "image"))[0] if image is not None else None

        def make() -> SessionOut:
            store = engine.store()
            store.create_session(name)
            if picture is not None:
                with engine.session_lock(name):
                    store.add_turn(name, instruction=f"/open {picture[0]}", picture=picture[2], kind="open")
            return api.session(request, name)

        return await asyncio.to_thread(make)

    @app.get("/v1/sessions/{name}", response_model=SessionOut, tags=["sessions"])
    def get_session(request: Request, name: str) -> SessionOut:
        """The session's turns (every branch), the current turn and the path to it."""
        return api.session(request, name)

    @app.get("/v1/sessions/{name}/picture", tags=["sessions"], responses={200: {"content": {"image/png": {}}}})
    def session_picture(name: str) -> Response:
        """The current picture (PNG)."""
        api.need_session(name)
        cur = engine.store().current(name)
        if cur is None:
            raise ApiError(404, f"session {name!r} has no picture yet", "not_found")
        return get_picture(cur.picture)

    @app.post("/v1/sessions/{name}/open", response_model=TurnOut, tags=["sessions"])
    async def open_picture(request: Request, name: str, image: Annotated[UploadFile, File()]) -> TurnOut:
        """Start from a new picture (a turn of kind 'open')."""
        api.need_session(name)
        ((label, _, picture),) = await api.read_pictures([image], "image")

        def add() -> TurnOut:
            with engine.session_lock(name):
                return api.turn(request, engine.store().add_turn(name, instruction=f"/open {label}", picture=picture, kind="open"))

        return await asyncio.to_thread(add)

    @app.post("/v1/sessions/{name}/turns", response_model=TurnOut, tags=["sessions"], responses={202: {"model": JobOut}})
    async def edit(request: Request, name: str, body: EditIn,
                   wait: WaitParam = True) -> TurnOut:
        """One turn of text: an edit, or a follow-up that revises the previous turn's program."""
        api.need_session(name)

        def work(job: Job) -> TurnOut:
            with engine.reading([]), engine.session_lock(name):
                chat = ChatSession(engine.store(), name, engine.agent)
                try:
                    turn, outcome = chat.say(body.instruction, node_emitter(job))
                except TurnError as exc:
                    raise ApiError(422, engine.clean(str(exc)), "edit_failed") from None
            return api.turn(request, turn, op=outcome.op)

        return await answer(submit("session.edit", work), request, wait)

    def move(name: str, how: Callable[[ChatSession], Turn], request: Request) -> TurnOut:
        api.need_session(name)
        with engine.session_lock(name):
            try:
                return api.turn(request, how(ChatSession(engine.store(), name, engine.agent)))
            except (StoreError, TurnError) as exc:
                raise api.store_error(exc) from None

    @app.post("/v1/sessions/{name}/undo", response_model=TurnOut, tags=["sessions"])
    def undo(request: Request, name: str) -> TurnOut:
        """Back to the previous turn (redo comes back)."""
        return move(name, lambda s: s.undo(), request)

    @app.post("/v1/sessions/{name}/redo", response_model=TurnOut, tags=["sessions"])
    def redo(request: Request, name: str) -> TurnOut:
        return move(name, lambda s: s.redo(), request)

    @app.post("/v1/sessions/{name}/branch", response_model=TurnOut, tags=["sessions"])
    def branch(request: Request, name: str, body: BranchIn) -> TurnOut:
        """Go back to any turn; the next edit starts a new branch from it."""
        return move(name, lambda s: s.branch(body.turn), request)

    # -------------------------------------------------------------- jobs

    def job_out(job: Job, request: Request) -> JobOut:
        result = job.result.model_dump(mode="json") if job.state == "done" and hasattr(job.result, "model_dump") else None
        return JobOut(id=job.id, kind=job.kind, state=job.state, error=job.error.message if job.error else None,
                      events=str(request.url_for("job_events", job_id=job.id)), result=result)

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def get_job(request: Request, job_id: str) -> JobOut:
        return job_out(engine.jobs.get(job_id), request)

    @app.delete("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def cancel_job(request: Request, job_id: str) -> JobOut:
        """Cancel a job (between nodes, or inside tools that report progress)."""
        job = engine.jobs.get(job_id)
        job.cancel.set()
        return job_out(job, request)

    @app.get("/v1/jobs/{job_id}/events", name="job_events", tags=["jobs"], responses={200: {"content": {"text/event-stream": {}}}})
    async def job_events(request: Request, job_id: str) -> StreamingResponse:
        """Server-sent events: one ``node`` event per node state (queued, started, progress, finished, cached, failed, ...),
        then ``end`` with the job's state. Events already sent are replayed first."""
        job = engine.jobs.get(job_id)

        async def stream() -> AsyncIterator[str]:
            seen = 0
            while True:
                events = job.events_since(seen)
                for ev in events:
                    yield f"event: {ev.get('event', 'node')}\ndata: {json.dumps(ev)}\n\n"
                seen += len(events)
                if job.done.is_set() and not job.events_since(seen):
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.05)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        return {"ok": True, "jobs": engine.jobs.active, "tools": len(engine.registry)}

    if config.web:
        from banana.agent.server.web import mount

        app = mount(app, engine)
    return app


def _remove(folder: Path) -> None:
    for f in folder.glob("*"):
        f.unlink(missing_ok=True)
    folder.rmdir()

