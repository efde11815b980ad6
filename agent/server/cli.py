"""``banana serve``: the API and the web page on uvicorn (loopback unless an API key is set)."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from banana.agent.console import error


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve_cmd(
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs BANANA_API_KEY")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    store: Annotated[Path | None, typer.Option("--store", help="session store folder (default: $BANANA_HOME)")] = None,
    workers: Annotated[int, typer.Option(help="jobs that run at once (one loaded agent serves them all)")] = 1,
    queue: Annotated[int, typer.Option(help="jobs that may wait beyond those running; more get 429 + Retry-After")] = 8,
    max_upload_mb: Annotated[float, typer.Option(help="largest uploaded file, MB")] = 20.0,
    max_files: Annotated[int, typer.Option(help="uploaded files per request")] = 8,
    max_megapixels: Annotated[float, typer.Option(help="largest uploaded picture, megapixels (checked from its header)")] = 25.0,
    preload: Annotated[bool, typer.Option(help="load the planner before taking requests")] = True,
    web: Annotated[bool, typer.Option(help="the Gradio page at /")] = True,
    critic: Annotated[bool, typer.Option(help="judge each edit with the critic and fix what fails")] = True,
    cache_mb: Annotated[float, typer.Option(help="the executor's in-memory result cache, MB (0: none)")] = 1024,
    grace: Annotated[float, typer.Option(help="seconds running jobs get at shutdown before they are cancelled")] = 30.0,
) -> None:
    """Serve the API (OpenAI-compatible POST /v1/images/edits; sessions, plans, programs under /v1; docs at /docs) and the web page."""
    key = os.environ.get("BANANA_API_KEY") or None
    if not is_loopback(host) and key is None:
        error(f"refusing to bind {host}: set BANANA_API_KEY (every request must then send 'Authorization: Bearer <key>'), "
              "or bind 127.0.0.1")
        raise typer.Exit(2)
    import uvicorn

    from banana.agent.server.app import create_app
    from banana.agent.server.engine import ServerConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(store=store, workers=workers, queue=queue, max_upload_bytes=int(max_upload_mb * 2**20),
                          max_request_bytes=int(max_upload_mb * 2**20 * max_files + 2**20), max_files=max_files,
                          max_pixels=int(max_megapixels * 1e6), preload=preload, web=web, critic=critic, grace=grace, api_key=key,
                          cache_mb=cache_mb)
    app = create_app(config)
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=int(grace) + 1 if grace else None, log_level="info",
                server_header=False)
