"""banana serve's API on a real uvicorn (loopback): the official OpenAI client, programs, sessions, limits, errors.

One server for the module, with the real embedded planner loaded once (preload)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from openai import BadRequestError, OpenAI
from PIL import Image as PILImage

from banana.agent.planner.base import JUNK_REASON
from banana.agent.samples import sample
from banana.agent.server.app import create_app
from banana.agent.server.engine import ServerConfig
from banana.agent.sessions import Store
from banana.tools.values import Image
from tests.serving import served

BRIGHTER = {"version": 1, "nodes": [{"id": "b", "tool": "adjust", "args": {"image": "$input", "brightness": 0.4}}], "output": "$b"}


def png(image: Image | np.ndarray, mode: str | None = None) -> bytes:
    arr = image.pixels if isinstance(image, Image) else image
    buf = io.BytesIO()
    PILImage.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def small() -> Image:
    pic = sample("coffee")
    return Image(np.asarray(PILImage.fromarray(pic.pixels).resize((240, 160))))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    config = ServerConfig(store=store, preload=True, web=False, critic=True, max_files=3, max_upload_bytes=2 << 20,
                          max_pixels=1_000_000, max_side=4000)
    app = create_app(config)
    with served(app) as (base, _):
        yield base, app, store


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return OpenAI(base_url=f"{server[0]}/v1", api_key="unused-without-BANANA_API_KEY", max_retries=0, timeout=120)


def test_openai_client_edits_a_picture_and_the_answer_says_what_ran(server, client, small):
    resp = client.images.edit(image=("coffee.png", png(small), "image/png"), prompt="make it black and white",
                              response_format="b64_json")
    out = decode(base64.b64decode(resp.data[0].b64_json))
    assert out.shape == small.pixels.shape
    spread = out.astype(int).max(axis=2) - out.astype(int).min(axis=2)
    assert spread.mean() < 3 and (small.pixels.astype(int).max(axis=2) - small.pixels.min(axis=2)).mean() > 20  # grey now, colour before
    extra = resp.model_extra["banana"]
    assert [n["tool"] for n in extra["program"]["nodes"]] == ["adjust"]
    assert extra["program"]["nodes"][0]["args"]["saturation"] == -1
    assert extra["critique"]["passed"] is True and extra["steps"].startswith("adjust")
    # the edit is a session in the same store as `banana chat`: its turns are on disk
    with Store(server[2]) as store:
        turns = store.turns(extra["session"])
    assert [t.kind for t in turns] == ["open", "edit"] and turns[1].instruction == "make it black and white"


def test_openai_url_answer_and_mask_keep_the_opaque_part(server, client, small):
    h, w = small.height, small.width
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[:, : w // 2, 3] = 255  # opaque left half: kept; transparent right half: edited
    resp = client.images.edit(image=("coffee.png", png(small), "image/png"), mask=("mask.png", png(rgba, "RGBA"), "image/png"),
                              prompt="make it black and white", response_format="url", size="auto")
    assert resp.data[0].url.startswith(server[0] + "/v1/pictures/")
    out = decode(httpx.get(resp.data[0].url).content)
    assert np.array_equal(out[:, : w // 2], small.pixels[:, : w // 2])
    right = out[:, w // 2:].astype(int)
    assert (right.max(axis=2) - right.min(axis=2)).mean() < 3


def test_openai_errors_are_clear(server, client, small):
    with pytest.raises(BadRequestError, match="n must be 1"):
        client.images.edit(image=("c.png", png(small), "image/png"), prompt="make it warmer", n=2)
    with pytest.raises(BadRequestError, match="mask has no transparency"):
        client.images.edit(image=("c.png", png(small), "image/png"), mask=("m.png", png(small), "image/png"), prompt="make it warmer")
    with pytest.raises(BadRequestError, match="size: '13x9000' is not 'auto' or WIDTHxHEIGHT"):
        client.images.edit(image=("c.png", png(small), "image/png"), prompt="make it warmer", size="13x9000")


def test_plan_validates_and_refuses_junk(server):
    base = server[0]
    r = httpx.post(f"{base}/v1/plan", json={"instruction": "make it black and white"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["program"]["nodes"][0]["tool"] == "adjust" and r.json()["refusal"] is None
    r = httpx.post(f"{base}/v1/plan", json={"instruction": "?!"}, timeout=60).json()
    assert r["program"] is None and r["refusal"] == JUNK_REASON
    r = httpx.post(f"{base}/v1/plan", json={"instruction": ""})
    assert r.status_code == 400 and "instruction" in r.json()["error"]["message"]


def test_run_a_program_on_uploads_and_replay_its_events(server, small):
    base = server[0]
    files = [("images", ("coffee.png", png(small), "image/png"))]
    r = httpx.post(f"{base}/v1/run", data={"program": json.dumps(BRIGHTER), "response_format": "b64_json", "critic": "true"},
                   files=files, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    out = decode(base64.b64decode(body["output"]["b64_png"]))
    assert out.mean() > small.pixels.mean() + 10
    assert body["nodes"] == [{"node": "b", "tool": "adjust", "status": "ran", "seconds": body["nodes"][0]["seconds"], "error": None}]
    assert body["critique"]["passed"] is True and body["steps"] == "adjust brightness=0.4"
    assert decode(httpx.get(body["output"]["url"]).content).tolist() == out.tolist()
    events = httpx.get(f"{base}/v1/jobs/{body['job']}/events", timeout=30).text
    kinds = [json.loads(line[6:])["kind"] for line in events.splitlines() if line.startswith("data: ") and '"node"' in line]
    assert kinds == ["queued", "started", "finished"] and events.rstrip().endswith('{"event": "end", "state": "done"}')
    # the same program again: the executor's cache (models and results stay loaded)
    again = httpx.post(f"{base}/v1/run", data={"program": json.dumps(BRIGHTER)}, files=files, timeout=60).json()
    assert again["nodes"][0]["status"] == "cached" and again["output"]["hash"] == body["output"]["hash"]


def test_programs_read_only_their_own_uploads(server, small):
    base = server[0]

    def bg(file: str) -> dict:
        return {"version": 1, "nodes": [
            {"id": "m", "tool": "segment", "args": {"image": "$input", "target": "salient object"}},
            {"id": "r", "tool": "replace_background", "args": {"image": "$input", "mask": "$m", "file": file}}], "output": "$r"}

    backdrop = np.zeros_like(small.pixels)
    backdrop[..., 2] = 255
    files = [("images", ("coffee.png", png(small), "image/png")), ("images", ("sea.png", png(backdrop), "image/png"))]
    r = httpx.post(f"{base}/v1/run", data={"program": json.dumps(bg("sea.png"))}, files=files, timeout=60)
    assert r.status_code == 200, r.text
    assert [n["status"] for n in r.json()["nodes"]] == ["ran", "ran"]
    for name in ("/etc/passwd", str(server[2] / "banana.db"), "../sea.png", "coffee.jpg"):
        r = httpx.post(f"{base}/v1/run", data={"program": json.dumps(bg(name))}, files=files, timeout=60)
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "is not readable by this program" in message
        assert str(server[2]) not in message and "Traceback" not in message


def test_sessions_edit_undo_redo_branch(server, small):
    base = server[0]
    r = httpx.post(f"{base}/v1/sessions", data={"name": "portrait"}, files={"image": ("c.png", png(small), "image/png")}, timeout=30)
    assert r.status_code == 200, r.text
    original = r.json()["current"]["picture"]["hash"]
    r = httpx.post(f"{base}/v1/sessions/portrait/turns", json={"instruction": "make it black and white"}, timeout=120)
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["n"] == 1 and edited["op"] == "append" and edited["picture"]["hash"] != original
    assert edited["critique"]["passed"] is True
    assert httpx.post(f"{base}/v1/sessions/portrait/undo").json()["picture"]["hash"] == original
    assert httpx.post(f"{base}/v1/sessions/portrait/redo").json()["picture"]["hash"] == edited["picture"]["hash"]
    assert httpx.post(f"{base}/v1/sessions/portrait/branch", json={"turn": 0}).json()["n"] == 0
    session = httpx.get(f"{base}/v1/sessions/portrait").json()
    assert session["path"] == [0] and [t["n"] for t in session["turns"]] == [0, 1]
    assert decode(httpx.get(f"{base}/v1/sessions/portrait/picture").content).tolist() == small.pixels.tolist()
    r = httpx.post(f"{base}/v1/sessions/portrait/undo")
    assert r.status_code == 409 and r.json()["error"]["message"] == "nothing to undo"
    assert httpx.post(f"{base}/v1/sessions/nobody/undo").status_code == 404
    assert "portrait" in httpx.get(f"{base}/v1/sessions").json()["sessions"]


def test_upload_limits(server, small):
    base = server[0]
    prog = {"program": json.dumps(BRIGHTER)}
    pic = ("c.png", png(small), "image/png")
    r = httpx.post(f"{base}/v1/run", data=prog, files=[("images", pic)] * 4)
    assert r.status_code == 400 and r.json()["error"]["message"] == "images: 4 files; at most 3 per request"
    big = png(np.zeros((1100, 1000, 3), np.uint8))  # 1.1 MP, a few KB: refused from the header
    r = httpx.post(f"{base}/v1/run", data=prog, files=[("images", ("big.png", big, "image/png"))])
    assert r.status_code == 413 and r.json()["error"]["message"].startswith("big.png: 1000x1100 pixels (1.1 MP) is over the limit of 1 MP")
    noise = png(np.random.default_rng(0).integers(0, 256, (980, 1000, 3), dtype=np.uint8))  # ~3 MB of noise
    r = httpx.post(f"{base}/v1/run", data=prog, files=[("images", ("noise.png", noise, "image/png"))])
    assert r.status_code == 413 and "at most 2 MB per file" in r.json()["error"]["message"]
    r = httpx.post(f"{base}/v1/run", data=prog, files=[("images", ("junk.png", b"not a picture at all", "image/png"))])
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("junk.png: not an image file PIL can read")


def test_errors_name_the_problem_without_tracebacks_or_paths(server, small):
    base = server[0]
    bad = {"version": 1, "nodes": [{"id": "b", "tool": "blurr", "args": {"image": "$input"}}], "output": "$b"}
    r = httpx.post(f"{base}/v1/run", data={"program": json.dumps(bad)}, files=[("images", ("c.png", png(small), "image/png"))])
    assert r.status_code == 400 and "unknown tool 'blurr'" in r.json()["error"]["message"]
    r = httpx.post(f"{base}/v1/run", data={"program": "{"}, files=[("images", ("c.png", png(small), "image/png"))])
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("program:")
    r = httpx.get(f"{base}/v1/pictures/{'0' * 32}.png")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    for r in (httpx.get(f"{base}/v1/nothing-here"), httpx.get(f"{base}/v1/jobs/xyz")):
        assert r.status_code == 404 and str(server[2]) not in r.text and "Traceback" not in r.text


def test_tools_schema_and_docs(server):
    base = server[0]
    tools = httpx.get(f"{base}/v1/tools").json()["tools"]
    assert {"blur", "adjust", "segment", "replace_background"} <= {t["name"] for t in tools}
    schema = httpx.get(f"{base}/v1/tools/schema").json()
    assert "nodes" in json.dumps(schema) and "blur" in json.dumps(schema)
    assert httpx.get(f"{base}/docs").status_code == 200
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    assert {"/v1/images/edits", "/v1/run", "/v1/plan", "/v1/sessions/{name}/turns", "/v1/jobs/{job_id}/events"} <= set(paths)
