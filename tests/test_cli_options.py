"""CLI options and planner plumbing without a model: multi-input programs, --quiet, backend selection, the server client."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from banana.agent.planner import PlanRequest, make_planner
from banana.agent.planner.http import ServerBackend, ServerConfig, ServerError
from banana.agent.samples import sample
from banana.tools.values import Image


def banana(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "banana.agent.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_a_program_reads_a_second_input(tmp_path):
    """$input1 is the second -i: the mask comes from a mirrored astronaut, so the blur lands on the mirrored person."""
    astronaut = sample("astronaut")
    mirrored = Image(np.ascontiguousarray(astronaut.pixels[:, ::-1]))
    mirrored.save(tmp_path / "mirrored.png")
    program = {"version": 1, "nodes": [
        {"id": "p", "tool": "segment", "args": {"image": "$input1", "target": "person"}},
        {"id": "b", "tool": "blur", "args": {"image": "$input", "mask": "$p", "amount": 1.0}}], "output": "$b"}
    (tmp_path / "p.json").write_text(json.dumps(program))
    out = tmp_path / "out.png"
    proc = banana("run", str(tmp_path / "p.json"), "-i", "sample:astronaut", "-i", str(tmp_path / "mirrored.png"), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    from banana.experts.background import blur
    from banana.experts.perception import segment

    result = Image.load(out).pixels
    expected = blur(image=astronaut, mask=segment(image=mirrored, target="person"), amount=1.0).pixels
    from_first = blur(image=astronaut, mask=segment(image=astronaut, target="person"), amount=1.0).pixels
    assert np.array_equal(result, expected)  # the mask came from the second input ...
    assert not np.array_equal(result, from_first)  # ... not from the first

    missing = banana("run", str(tmp_path / "p.json"), "-i", "sample:astronaut", "-o", str(out), "-q")
    assert missing.returncode == 1 and "$input1" in missing.stderr


def test_quiet_hides_progress_and_timings(tmp_path):
    program = {"version": 1, "nodes": [{"id": "warm", "tool": "adjust", "args": {"image": "$input", "warmth": 0.3}}], "output": "$warm"}
    (tmp_path / "p.json").write_text(json.dumps(program))
    loud = banana("run", str(tmp_path / "p.json"), "-i", "sample:coffee", "-o", str(tmp_path / "a.png"), env={"COLUMNS": "200"})
    quiet = banana("run", str(tmp_path / "p.json"), "-i", "sample:coffee", "-o", str(tmp_path / "b.png"), "-q", env={"COLUMNS": "200"})
    assert loud.returncode == quiet.returncode == 0
    assert "warm" in loud.stderr and "ms" in loud.stderr  # the timing table names the node
    assert "ms" not in quiet.stderr and "warm" not in quiet.stderr
    assert np.array_equal(Image.load(tmp_path / "a.png").pixels, Image.load(tmp_path / "b.png").pixels)


def test_unknown_backend_is_named(registry):
    with pytest.raises(ValueError, match="unknown planner backend 'gpt'; use 'embedded' or 'server'"):
        make_planner(registry, "gpt")  # type: ignore[arg-type]
    proc = banana("plan", "blur it", "--backend", "gpt")
    assert proc.returncode == 2 and "unknown planner backend 'gpt'" in proc.stderr


def test_environment_selects_the_server_backend(registry, monkeypatch):
    monkeypatch.setenv("BANANA_PLANNER", "server")
    monkeypatch.setenv("BANANA_PLANNER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("BANANA_PLANNER_API_KEY", "k-123")
    planner = make_planner(registry)
    assert isinstance(planner.backend, ServerBackend)
    assert planner.backend.config.base_url == "http://127.0.0.1:9" and planner.backend.config.api_key == "k-123"


def test_missing_adapter_named_by_the_environment_is_an_error():
    proc = banana("plan", "blur it", env={"BANANA_PLANNER_ADAPTER": "/nonexistent/adapter"})
    assert proc.returncode == 2 and "/nonexistent/adapter" in proc.stderr


class _Server:
    """A real HTTP server on loopback that records requests; ``delay`` makes it answer late (or never)."""

    def __init__(self, delay: float = 0.0):
        self.seen: list[dict] = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if delay:
                    outer.release.wait(delay)
                answer = {"choices": [{"text": "blur amount=0.5\n"}]}
                data = json.dumps(answer).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_server_backend_sends_the_api_key(registry):
    server = _Server()
    try:
        backend = ServerBackend(registry, ServerConfig(base_url=server.url, surface="steps", api_key="sekret"))
        assert backend.generate(PlanRequest(instruction="blur it")) == "blur amount=0.5\n"
        assert server.seen[0]["auth"] == "Bearer sekret" and server.seen[0]["path"] == "/v1/completions"
        anonymous = ServerBackend(registry, ServerConfig(base_url=server.url, surface="steps"))
        anonymous.generate(PlanRequest(instruction="blur it"))
        assert server.seen[1]["auth"] is None
    finally:
        server.close()


def test_server_that_never_answers_fails_after_the_read_timeout(registry):
    server = _Server(delay=60)
    try:
        backend = ServerBackend(registry, ServerConfig(base_url=server.url, surface="steps", timeout_s=0.3, retries=2, backoff_s=0.0))
        with pytest.raises(ServerError, match=rf"{server.url} did not answer within 0.3 s \(BANANA_PLANNER_TIMEOUT sets the limit\)"):
            backend.generate(PlanRequest(instruction="blur it"))
        assert len(server.seen) == 1  # reached but silent: not asked again
    finally:
        server.close()


def test_the_planner_timeout_comes_from_the_environment(registry, monkeypatch):
    monkeypatch.setenv("BANANA_PLANNER", "server")
    monkeypatch.setenv("BANANA_PLANNER_TIMEOUT", "4.5")
    assert make_planner(registry).backend.config.timeout_s == 4.5
    monkeypatch.setenv("BANANA_PLANNER_TIMEOUT", "never")
    with pytest.raises(ValueError, match="BANANA_PLANNER_TIMEOUT='never': expected seconds"):
        make_planner(registry)


def test_a_server_that_is_not_there_is_retried_then_named(registry):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    backend = ServerBackend(registry, ServerConfig(base_url=url, surface="steps", retries=1, backoff_s=0.0))
    with pytest.raises(ServerError, match=f"no answer from {url} after 2 tries"):
        backend.generate(PlanRequest(instruction="blur it"))
