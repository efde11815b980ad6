"""Shared fixtures: one thread for small models, real sample photos, a toy registry."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"  # forced, not defaulted: no test may reach a model hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Hermetic routing: `banana edit` records traces and routes with what they teach; tests must not read or
# grow the user's ~/.cache/banana/traces.sqlite (a self-play run there would change which expert tests get).
os.environ["BANANA_TRACES"] = os.path.join(tempfile.mkdtemp(prefix="banana-test-traces-"), "traces.sqlite")

import pytest

from banana.agent.samples import sample
from banana.tools.registry import Registry, default_registry
from banana.tools.values import Image


@pytest.fixture(scope="session")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="session")
def astronaut() -> Image:
    return sample("astronaut")


@pytest.fixture(scope="session")
def photos() -> dict[str, Image]:
    return {n: sample(n) for n in ("astronaut", "coffee", "chelsea", "china", "flower", "grace_hopper")}


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """A real diffusers backbone on a tiny random pipeline, built once per session."""
    from tests.backbones import tiny_diffusion

    return tiny_diffusion(tmp_path_factory.mktemp("tiny-backbone"))
