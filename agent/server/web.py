"""The web page at ``/`` (Gradio): chat beside the picture, the plan as steps, the critique per turn,
undo/redo, before/after and download, on the server's session store and work queue (the same as the API's).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from banana.agent.critic import Critique
from banana.agent.server.engine import Engine
from banana.agent.server.jobs import ApiError, Job
from banana.agent.server.uploads import decode_picture, safe_name
from banana.agent.sessions import StoreError
from banana.agent.turns import ChatSession, TurnError

Chat = list[dict[str, str]]


class WebPage:
    """The page's handlers: each takes the browser's session name (a gr.State) and answers what the widgets show."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _path(self, digest: str) -> str:
        return str(self.engine.store().pictures.path(digest))

    def _view(self, name: str | None, chat: Chat, note: str = "") -> tuple[Any, ...]:
        """(session, chat, result, before/after, plan, critique, download) for the session's current turn."""
        store = self.engine.store()
        cur = store.current(name) if name and store.has_session(name) else None
        if cur is None:
            return name, chat, None, None, note or "Upload a photo, then say what to change.", "", None
        first = store.path(name)[0] if name else cur
        steps = "(the original picture)"
        if cur.program:
            from banana.agent.surface import to_steps

            try:
                steps = "\n".join(f"{i}. {line}" for i, line in enumerate(to_steps(cur.program, self.engine.registry).splitlines(), 1))
            except ValueError:
                steps = "a program without a steps form"
        crit = ""
        if cur.critique:
            c = Critique.model_validate(cur.critique)
            crit = f"**Critique** ({'passed' if c.passed else 'did not pass'}): {c.summary()}"
        plan = f"**Turn {cur.n}** ({cur.instruction or cur.kind})\n\n{steps}"
        if note:
            plan = f"{note}\n\n{plan}"
        path = self._path(cur.picture)
        return name, chat, path, (self._path(first.base), path), plan, crit, path

    def upload(self, file: str | None, name: str | None, chat: Chat) -> tuple[Any, ...]:
        if not file:
            return self._view(name, chat)
        cfg = self.engine.config
        label = safe_name(Path(file).name, "photo")
        try:
            data = Path(file).read_bytes()
            picture = decode_picture(label, data, cfg.max_upload_bytes, cfg.max_pixels, cfg.max_side)
        except ApiError as exc:
            return self._view(name, [*chat, {"role": "assistant", "content": f"Cannot open that picture: {exc.message}"}])
        name = name or f"web-{uuid.uuid4().hex[:12]}"
        with self.engine.session_lock(name):
            self.engine.store().add_turn(name, instruction=f"/open {label}", picture=picture, kind="open")
        chat = [*chat, {"role": "assistant", "content": f"Opened {label} ({picture.width}x{picture.height}). What should I change?"}]
        return self._view(name, chat)

    def say(self, text: str, name: str | None, chat: Chat) -> tuple[Any, ...]:
        text = (text or "").strip()
        if not text:
            return (*self._view(name, chat), "")
        chat = [*chat, {"role": "user", "content": text}]
        if not name or self.engine.store().current(name) is None:
            return (*self._view(name, [*chat, {"role": "assistant", "content": "Upload a photo first."}]), "")

        def work(job: Job) -> str:
            with self.engine.reading([]), self.engine.session_lock(name):
                chat_session = ChatSession(self.engine.store(), name, self.engine.agent)
                try:
                    turn, outcome = chat_session.say(text, lambda ev: job.emit({"event": "node", **ev.model_dump()}))
                except TurnError as exc:
                    raise ApiError(422, self.engine.clean(str(exc))) from None
            if outcome.op in ("undo", "redo"):
                return f"{outcome.op}: back at turn {turn.n}"
            verdict = ""
            if outcome.critique is not None:
                passed = Critique.model_validate(outcome.critique).passed
                verdict = "; the critic passed it" if passed else "; the critic has doubts (see below)"
            return f"Done (turn {turn.n}, {outcome.op}, {outcome.plan_seconds + outcome.run_seconds:.1f} s{verdict})."

        try:
            job = self.engine.jobs.submit("web.edit", work)
            job.done.wait()
            reply = job.result if job.error is None else f"Sorry: {job.error.message}"
        except ApiError as exc:
            reply = f"Sorry: {exc.message}"
        return (*self._view(name, [*chat, {"role": "assistant", "content": reply}]), "")

    def move(self, how: str, name: str | None, chat: Chat) -> tuple[Any, ...]:
        if not name:
            return self._view(name, chat)
        with self.engine.session_lock(name):
            try:
                turn = getattr(self.engine.store(), how)(name)
                reply = f"{how}: now at turn {turn.n} ({turn.instruction or turn.kind})"
            except StoreError as exc:
                reply = str(exc)
        return self._view(name, [*chat, {"role": "assistant", "content": reply}])


def build(engine: Engine) -> Any:
    import gradio as gr

    page = WebPage(engine)
    with gr.Blocks(title="Banana", delete_cache=(3600, 3600)) as demo:  # gradio's copies of pictures: gone after an hour
        session = gr.State(None)
        gr.Markdown("## Banana: edit a photo by chat")
        with gr.Row():
            with gr.Column(scale=1):
                chat = gr.Chatbot(label="Chat", height=380, elem_id="chat")
                text = gr.Textbox(label="Instruction", placeholder="blur the background behind her", elem_id="instruction")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    undo = gr.Button("Undo", elem_id="undo")
                    redo = gr.Button("Redo", elem_id="redo")
                plan = gr.Markdown("Upload a photo, then say what to change.", elem_id="plan")
                crit = gr.Markdown(elem_id="critique")
            with gr.Column(scale=1):
                photo = gr.Image(label="Photo", type="filepath", sources=["upload"], elem_id="photo")
                result = gr.Image(label="Current picture", type="filepath", interactive=False, format="png", elem_id="result")
                compare = gr.ImageSlider(label="Before / after", type="filepath", interactive=False, elem_id="compare")
                download = gr.DownloadButton("Download PNG", elem_id="download")
        view = [session, chat, result, compare, plan, crit, download]
        photo.upload(page.upload, [photo, session, chat], view)
        send.click(page.say, [text, session, chat], [*view, text])
        text.submit(page.say, [text, session, chat], [*view, text])
        undo.click(lambda n, c: page.move("undo", n, c), [session, chat], view)
        redo.click(lambda n, c: page.move("redo", n, c), [session, chat], view)
    return demo


def mount(app: FastAPI, engine: Engine) -> FastAPI:
    """Mount the page at ``/``; it may serve files only from the store's pictures folder."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the page calls no one
    import gradio as gr

    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])  # no web fonts to fetch
    return gr.mount_gradio_app(app, build(engine), path="", allowed_paths=[str(engine.store_root / "pictures")],
                               footer_links=[], show_error=False, max_file_size=engine.config.max_upload_bytes, theme=theme)
