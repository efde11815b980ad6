"""The web page at / in a real headless Chromium (Debian's, never a downloaded one), against a real uvicorn:
upload a photo, type an instruction, see the edited picture, undo, and the original is back.

The planner is a table (the page and the server are under test); everything else is the real app."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from banana.agent.samples import sample
from banana.agent.server.app import create_app
from banana.agent.server.engine import ServerConfig
from banana.agent.sessions import Store
from banana.agent.surface import parse_steps
from banana.tools.registry import default_registry
from tests.serving import served

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make browser installs it)"),
              pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]  # gradio's own pandas deprecations


class TablePlanner:
    def plan(self, request: object) -> object:
        text = getattr(request, "instruction", request)
        assert text == "make it black and white", text
        return type("Plan", (), {"program": parse_steps("adjust saturation=-1", default_registry()), "refusal": None})()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_upload_edit_undo_in_a_real_browser(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    photo = tmp_path / "coffee.png"
    small = PILImage.fromarray(sample("coffee").pixels).resize((240, 160))
    small.save(photo)
    original = np.asarray(small).astype(int)
    app = create_app(ServerConfig(store=tmp_path / "store", web=True), planner_factory=TablePlanner)
    with served(app) as (base, _), sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
                                                        args=FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)  # a turn on 2 busy cores can take more than the default 5 s
            page.goto(base + "/")
            page.locator("#photo input[type=file]").set_input_files(str(photo))
            expect(page.locator("#chat")).to_contain_text("Opened coffee.png (240x160)")
            result = page.locator("#result img")
            expect(result).to_have_count(1)
            first_src = result.get_attribute("src") or ""
            assert np.array_equal(pixels(page.request.get(first_src).body()), original)

            page.locator("#instruction textarea").fill("make it black and white")
            page.locator("#send").click()
            expect(page.locator("#plan")).to_contain_text("adjust saturation=-1")
            expect(page.locator("#critique")).to_contain_text("Critique")
            expect(result).not_to_have_attribute("src", first_src)
            edited = pixels(page.request.get(result.get_attribute("src")).body())
            assert (edited.max(axis=2) - edited.min(axis=2)).mean() < 3 and not np.array_equal(edited, original)

            page.locator("#undo").click()
            expect(page.locator("#chat")).to_contain_text("undo: now at turn 0")
            expect(page.locator("#plan")).to_contain_text("Turn 0")
            assert np.array_equal(pixels(page.request.get(result.get_attribute("src")).body()), original)
        finally:
            browser.close()
    with Store(tmp_path / "store") as store:  # the page wrote to the same store as the API and `banana chat`
        (name,) = store.sessions()
        assert [t.instruction for t in store.turns(name)] == ["/open coffee.png", "make it black and white"]
        assert store.current(name).n == 0


def test_with_a_key_the_browser_signs_in_first(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    app = create_app(ServerConfig(store=tmp_path / "store", web=True, api_key="k3y-for-the-page"), planner_factory=TablePlanner)
    with served(app) as (base, _), sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
                                                        args=FLAGS)
        try:
            page = browser.new_page()
            expect.set_options(timeout=60_000)
            page.goto(base + "/")
            assert page.url == base + "/login"
            page.locator("input[name=key]").fill("not the key")
            page.locator("button[type=submit]").click()
            expect(page.locator("body")).to_contain_text("That is not the key.")
            page.locator("input[name=key]").fill("k3y-for-the-page")
            page.locator("button[type=submit]").click()
            expect(page.locator("#plan")).to_contain_text("Upload a photo")
            photo = tmp_path / "grey.png"
            PILImage.new("RGB", (64, 48), (90, 90, 90)).save(photo)
            page.locator("#photo input[type=file]").set_input_files(str(photo))  # the page's own calls carry the cookie
            expect(page.locator("#chat")).to_contain_text("Opened grey.png (64x48)")
        finally:
            browser.close()
