"""banana serve under load and at the edges: a full queue (429), clients that go away, the API key, shutdown.

A small registry with a slow, cancellable tool and a table planner (no model): what is tested is the server."""

from __future__ import annotations

import io
import json
import threading
import time

import httpx
import numpy as np
import pytest
from openai import AuthenticationError, OpenAI
from PIL import Image as PILImage
from typer.testing import CliRunner

from banana.agent.cli import app as cli_app
from banana.agent.program import Program
from banana.agent.server.app import create_app
from banana.agent.server.engine import ServerConfig
from banana.agent.sessions import Store
from banana.tools.registry import Registry, default_registry
from banana.tools.spec import ToolContext, tool
from banana.tools.values import Image
from tests.serving import served, wait_until


@tool(role="style")
def patient(image: Image, *, steps: int = 100, ctx: ToolContext) -> Image:
    """Takes steps x 10 ms, reporting progress (so it can be cancelled), then brightens the picture a little."""
    for i in range(steps):
        ctx.progress(i / steps)
        time.sleep(0.01)
    return Image(np.clip(image.pixels.astype(np.int16) + 10, 0, 255).astype(np.uint8))


REG = Registry([default_registry().get("adjust"), patient])


def program(steps: int) -> Program:
    return Program.model_validate({"version": 1, "nodes": [{"id": "p", "tool": "patient", "args": {"image": "$input", "steps": steps}}],
                                   "output": "$p"})


TABLE = {"wait a second": 100, "wait a minute": 6000}


class TablePlanner:
    """Instruction -> program, from a table (the server is under test, not the planner)."""

    def plan(self, request: object) -> object:
        text = getattr(request, "instruction", request)
        return type("Plan", (), {"program": program(TABLE[text]), "refusal": None})()


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


PIC = np.full((32, 48, 3), 100, np.uint8)


def make(tmp_path, **kw):
    config = ServerConfig(store=tmp_path / "store", web=False, critic=False, **kw)
    return create_app(config, registry=REG, planner_factory=TablePlanner)


def run_slow(base: str, steps: int, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{base}/v1/run", data={"program": program(steps).to_json()}, files=[("images", ("p.png", png(PIC), "image/png"))],
                      timeout=timeout)


def jobs(app) -> list:
    return list(app.state.engine.jobs._jobs.values())


def test_a_full_queue_answers_429_with_retry_after_and_delete_cancels(tmp_path):
    app = make(tmp_path, workers=1, queue=0)
    with served(app) as (base, _):
        answers: list[httpx.Response] = []
        first = threading.Thread(target=lambda: answers.append(run_slow(base, 3000)))
        first.start()
        assert wait_until(lambda: app.state.engine.jobs.active == 1)
        r = run_slow(base, 1)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["message"].startswith("the server is busy (its work queue is full); retry in about")
        (job,) = jobs(app)
        assert wait_until(lambda: job.state == "running")
        r = httpx.delete(f"{base}/v1/jobs/{job.id}")
        assert r.status_code == 200
        first.join(30)
        assert answers[0].status_code == 499 and answers[0].json()["error"]["message"] == "the job was cancelled"
        assert job.state == "cancelled" and any(e.get("kind") == "cancelled" for e in job.events)
        assert run_slow(base, 1).status_code == 200  # the queue has room again


def test_a_client_that_disconnects_cancels_its_job(tmp_path):
    app = make(tmp_path)
    with served(app) as (base, _):
        with pytest.raises(httpx.ReadTimeout):
            run_slow(base, 6000, timeout=1.0)  # a minute of work; the client gives up after a second
        (job,) = jobs(app)
        assert wait_until(lambda: job.done.is_set(), 20)
        assert job.state == "cancelled"
        assert [e["kind"] for e in job.events if e.get("event") == "node"][-1] == "cancelled"


def test_the_api_key_guards_every_request(tmp_path, monkeypatch):
    app = make(tmp_path, api_key="s3cret-key")
    with served(app) as (base, _):
        r = httpx.get(f"{base}/v1/tools")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["error"]["message"]
        assert httpx.get(f"{base}/v1/tools", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{base}/docs", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert httpx.get(f"{base}/openapi.json").status_code == 401
        # a browser is sent to the sign-in page, and its cookie then opens the rest
        r = httpx.get(f"{base}/", headers={"Accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert httpx.post(f"{base}/login", data={"key": "nope"}).status_code == 401
        signed = httpx.post(f"{base}/login", data={"key": "s3cret-key"})
        assert signed.status_code == 303 and "banana_key" in signed.cookies
        assert httpx.get(f"{base}/v1/tools", cookies=signed.cookies).status_code == 200
        # the OpenAI client sends its api_key as the bearer token
        bad = OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(AuthenticationError):
            bad.images.edit(image=("p.png", png(PIC), "image/png"), prompt="wait a second")
        good = OpenAI(base_url=f"{base}/v1", api_key="s3cret-key", max_retries=0, timeout=60)
        resp = good.images.edit(image=("p.png", png(PIC), "image/png"), prompt="wait a second")
        assert resp.model_extra["banana"]["program"]["nodes"][0]["tool"] == "patient"


def test_serve_refuses_a_public_address_without_a_key(monkeypatch):
    monkeypatch.delenv("BANANA_API_KEY", raising=False)
    r = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert r.exit_code == 2 and "refusing to bind 0.0.0.0: set BANANA_API_KEY" in r.output


def open_session(base: str, name: str) -> None:
    r = httpx.post(f"{base}/v1/sessions", data={"name": name}, files={"image": ("p.png", png(PIC), "image/png")}, timeout=30)
    assert r.status_code == 200, r.text


def test_shutdown_lets_a_running_edit_finish_and_keeps_its_turn(tmp_path):
    app = make(tmp_path, grace=20)
    answers: list[httpx.Response] = []
    with served(app, grace=20) as (base, server):
        open_session(base, "s")
        edit = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{base}/v1/sessions/s/turns", json={"instruction": "wait a second"}, timeout=60)))
        edit.start()
        assert wait_until(lambda: any(j.state == "running" for j in jobs(app)))
        server.should_exit = True  # as on SIGTERM: stop taking connections, finish what runs
        edit.join(60)
    assert answers[0].status_code == 200 and answers[0].json()["n"] == 1
    with Store(tmp_path / "store") as store:
        assert [t.kind for t in store.turns("s")] == ["open", "edit"] and store.integrity() == "ok"


def test_shutdown_cancels_what_runs_past_the_grace_and_loses_no_saved_turn(tmp_path):
    app = make(tmp_path, grace=0.2)
    with served(app, grace=1) as (base, server):
        open_session(base, "s")
        edit = threading.Thread(target=lambda: httpx.post(f"{base}/v1/sessions/s/turns", json={"instruction": "wait a minute"},
                                                          timeout=60), daemon=True)
        edit.start()
        assert wait_until(lambda: any(j.state == "running" for j in jobs(app)))
        server.should_exit = True
    (job,) = [j for j in jobs(app) if j.kind == "session.edit"]
    assert job.state == "cancelled"
    with Store(tmp_path / "store") as store:
        assert [t.kind for t in store.turns("s")] == ["open"] and store.integrity() == "ok"


def test_a_body_over_the_limit_is_413_with_or_without_content_length(tmp_path):
    app = make(tmp_path, max_request_bytes=100_000)
    with served(app) as (base, _):
        multipart = {"content-type": "multipart/form-data; boundary=b"}
        for body in (b"x" * 200_000, (b"x" * 10_000 for _ in range(50))):  # Content-Length, then chunked
            r = httpx.post(f"{base}/v1/run", content=body, headers=multipart)
            assert r.status_code == 413
            assert r.json()["error"]["message"] == "the request body is over this server's limit of 0.0954 MB"
        r = httpx.post(f"{base}/v1/run", data={"program": program(1).to_json()}, files=[("images", ("p.png", png(PIC), "image/png"))])
        assert r.status_code == 200, r.text  # a small body still goes through


def test_a_job_started_without_waiting_streams_its_progress_live(tmp_path):
    app = make(tmp_path)
    with served(app) as (base, _):
        r = httpx.post(f"{base}/v1/run", params={"wait": "false"}, data={"program": program(100).to_json()},
                       files=[("images", ("p.png", png(PIC), "image/png"))], timeout=30)
        assert r.status_code == 202 and r.json()["state"] in ("queued", "running")
        job = r.json()
        events = []
        with httpx.stream("GET", job["events"], timeout=60) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        kinds = [e.get("kind", e["event"]) for e in events]
        assert kinds[:2] == ["queued", "started"] and kinds[-2:] == ["finished", "end"]
        fractions = [e["fraction"] for e in events if e.get("kind") == "progress"]
        assert len(fractions) == 100 and fractions == sorted(fractions)
        done = httpx.get(f"{base}/v1/jobs/{job['id']}").json()
        assert done["state"] == "done" and done["result"]["nodes"][0]["status"] == "ran"
        assert decode_png(httpx.get(done["result"]["output"]["url"]).content).tolist() == (PIC + 10).tolist()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
