"""BackboneConfig.from_env reads every variable; the backbone fingerprint is stable across processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from banana.tools.backbone import BackboneConfig, BackboneError

EVERY = {
    "BANANA_BACKBONE": "diffusers",
    "BANANA_BACKBONE_PIPELINE": "sdxl-inpaint",
    "BANANA_BACKBONE_WEIGHTS": "/w/sdxl",
    "BANANA_DEVICE": "cuda",
    "BANANA_DTYPE": "float16",
    "BANANA_OFFLOAD": "model",
    "BANANA_BACKBONE_STEPS": "12",
    "BANANA_BACKBONE_RESOLUTION": "768",
    "BANANA_BACKBONE_GUIDANCE": "4.5",
    "BANANA_BACKBONE_CONTROLNET": "/w/canny",
    "BANANA_BACKBONE_CONTROLNET_SCALE": "0.8",
    "BANANA_BACKBONE_ADAPTERS": "identity=/w/id.safetensors,style=/w/style.safetensors",
}


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("BANANA_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_every_variable_is_read(clean_env):
    for name, value in EVERY.items():
        clean_env.setenv(name, value)
    cfg = BackboneConfig.from_env()
    assert (cfg.kind, cfg.pipeline, str(cfg.weights)) == ("diffusers", "sdxl-inpaint", "/w/sdxl")
    assert (cfg.device, cfg.dtype, cfg.offload) == ("cuda", "float16", "model")
    assert (cfg.steps, cfg.resolution, cfg.guidance) == (12, 768, 4.5)
    assert (str(cfg.controlnet), cfg.controlnet_scale) == ("/w/canny", 0.8)
    assert {k: str(v) for k, v in cfg.adapters.items()} == {"identity": "/w/id.safetensors", "style": "/w/style.safetensors"}


def test_defaults_and_weights_imply_diffusers(clean_env):
    cfg = BackboneConfig.from_env()
    assert (cfg.kind, cfg.weights, cfg.device, cfg.steps, cfg.controlnet_scale) == ("classical", None, "auto", 28, 0.5)
    clean_env.setenv("BANANA_BACKBONE_WEIGHTS", "/w/sd15")
    assert BackboneConfig.from_env().kind == "diffusers"


@pytest.mark.parametrize(("name", "value", "why"), [
    ("BANANA_BACKBONE_CONTROLNET_SCALE", "3", "less than or equal to 2"),
    ("BANANA_BACKBONE_STEPS", "0", "greater than or equal to 1"),
    ("BANANA_BACKBONE_RESOLUTION", "big", "valid integer"),
    ("BANANA_BACKBONE_GUIDANCE", "-1", "greater than or equal to 0"),
    ("BANANA_DTYPE", "int8", "'auto', 'float32', 'float16' or 'bfloat16'"),
    ("BANANA_OFFLOAD", "disk", "'none', 'model' or 'sequential'"),
])
def test_bad_values_name_the_variable(clean_env, name, value, why):
    clean_env.setenv(name, value)
    with pytest.raises(BackboneError) as info:
        BackboneConfig.from_env()
    assert str(info.value).startswith(f"{name}={value!r}: ") and why in str(info.value)
    assert "\n" not in str(info.value)


def _fingerprint(env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BANANA_")}
    code = "from banana.tools.backbone import fingerprint; print(fingerprint())"
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def test_fingerprint_is_stable_across_processes_and_follows_the_configuration(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = {"BANANA_BACKBONE_WEIGHTS": str(tmp_path / "a"), "BANANA_BACKBONE_STEPS": "4"}
    first, second = _fingerprint(a), _fingerprint(a)
    assert first and first == second
    assert _fingerprint({**a, "BANANA_BACKBONE_WEIGHTS": str(tmp_path / "b")}) != first
    assert _fingerprint({**a, "BANANA_BACKBONE_STEPS": "8"}) != first
    assert _fingerprint({}) == _fingerprint({}) != first
