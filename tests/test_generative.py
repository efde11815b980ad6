"""insert and edit: generative tools that stop before any work without weights, and run on a (tiny) diffusers backbone."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from banana.agent.executor import Executor
from banana.agent.preflight import NeedsWeights, generative_nodes, preflight
from banana.agent.program import validate
from banana.experts.manager import manager
from banana.tools.backbone import BackboneConfig, BackboneError, load_backbone
from banana.tools.values import Image, Mask
from tests.backbones import classical, installed

PROGRAM = {"version": 1, "nodes": [
    {"id": "person", "tool": "segment", "args": {"image": "$input", "target": "person"}},
    {"id": "spot", "tool": "region", "args": {"image": "$input", "position": "bottom-right"}},
    {"id": "vase", "tool": "insert", "args": {"image": "$input", "mask": "$spot", "prompt": "a vase of tulips"}},
    {"id": "dusk", "tool": "edit", "args": {"image": "$vase", "mask": "$person", "instruction": "make it dusk"}}],
    "output": "$dusk"}
NO_BACKBONE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("BANANA_BACKBONE")}


@pytest.fixture(scope="module")
def ip2p(tmp_path_factory):
    """A real diffusers backbone over a tiny random InstructPix2Pix pipeline (edit, no inpaint)."""
    from banana.backbone import tiny

    folder = tiny.save("instruct-pix2pix", tmp_path_factory.mktemp("ip2p") / "ip2p")
    return load_backbone(BackboneConfig(kind="diffusers", weights=folder, steps=2, resolution=64))


def test_tools_are_marked_generative(registry):
    assert registry.get("insert").needs == registry.get("edit").needs == "generative"
    assert registry.get("refine").needs is None and registry.get("replace").needs is None  # they have a labelled fallback
    assert registry.get("insert").describe()["needs"] == "generative"


def test_cli_run_exits_3_before_any_node_runs(tmp_path):
    program, cache = tmp_path / "p.json", tmp_path / "cache"
    program.write_text(json.dumps(PROGRAM))
    proc = subprocess.run([sys.executable, "-m", "banana.agent.cli", "run", str(program), "-i", "sample:astronaut",
                           "-o", str(tmp_path / "out.png"), "--cache-dir", str(cache)],
                          capture_output=True, text=True, timeout=300, env=NO_BACKBONE_ENV)
    assert proc.returncode == 3, proc.stderr
    message = " ".join(proc.stderr.split())
    assert "insert (node 'vase'), edit (node 'dusk') need diffusion weights" in message
    assert "BANANA_BACKBONE_WEIGHTS" in message and "nothing was run" in message
    assert list(cache.iterdir()) == []  # not even the segment node ran
    assert not (tmp_path / "out.png").exists()


def test_executor_stops_before_any_event_or_model_load(registry, astronaut):
    valid = validate(PROGRAM, registry)
    events, loads = [], list(manager().loads)
    with installed(classical()), Executor(registry) as executor, pytest.raises(NeedsWeights) as err:
        executor.run(valid, {"input": astronaut}, on_event=events.append)
    assert events == [] and manager().loads == loads
    assert err.value.tools == {"insert": ["vase"], "edit": ["dusk"]}
    blurred = {**PROGRAM, "nodes": [*PROGRAM["nodes"], {"id": "soft", "tool": "blur", "args": {"image": "$input"}}], "output": "$soft"}
    assert generative_nodes(validate(blurred, registry), registry) == {}  # nodes the output does not need do not count


def test_misconfigured_weights_also_stop_before_work(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("BANANA_BACKBONE_WEIGHTS", str(tmp_path / "missing"))
    with installed(None), pytest.raises(NeedsWeights, match=r"cannot be set up .*no such folder"):
        preflight(validate(PROGRAM, registry), registry)


def test_insert_on_tiny_pipeline_keeps_everything_outside_the_mask(registry, tiny_backbone, astronaut):
    spot = registry.get("region")(image=astronaut, position="bottom-right", size=0.25)
    with installed(tiny_backbone):
        out = registry.get("insert")(image=astronaut, mask=spot, prompt="a vase of tulips", seed=3)
    assert out.pixels.shape == astronaut.pixels.shape
    outside = spot.alpha == 0
    np.testing.assert_array_equal(out.pixels[outside], astronaut.pixels[outside])
    inside = spot.alpha == 1
    assert np.abs(out.pixels[inside].astype(int) - astronaut.pixels[inside]).mean() > 5  # random weights draw something else
    assert out.meta["generative"] is True and out.meta["operation"] == "inpaint"


def test_program_with_insert_runs_when_a_generative_backbone_is_configured(registry, tiny_backbone, astronaut):
    program = {**PROGRAM, "output": "$vase"}
    with installed(tiny_backbone), Executor(registry) as executor:
        result = executor.run(validate(program, registry), {"input": astronaut})
    assert result.ok and result.output.pixels.shape == astronaut.pixels.shape
    assert "person" not in result.executed  # only what the output needs


def test_edit_inside_a_mask_on_tiny_instruct_pix2pix(registry, ip2p):
    photo = Image(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    alpha = np.zeros((96, 128), np.float32)
    alpha[20:70, 30:90] = 1.0
    with installed(ip2p):
        out = registry.get("edit")(image=photo, mask=Mask(alpha), instruction="make it snow")
        whole = registry.get("edit")(image=photo, instruction="make it snow")
    assert out.pixels.shape == whole.pixels.shape == photo.pixels.shape
    np.testing.assert_array_equal(out.pixels[alpha == 0], photo.pixels[alpha == 0])
    assert not np.array_equal(out.pixels[alpha == 1], photo.pixels[alpha == 1])
    assert out.meta["operation"] == "edit" and out.meta["pipeline"] == "instruct-pix2pix"


def test_insert_refuses_a_backbone_that_cannot_inpaint(registry, ip2p, astronaut):
    spot = registry.get("region")(image=astronaut, position="center")
    with installed(ip2p), pytest.raises(BackboneError, match="insert: the configured backbone could not draw it"):
        registry.get("insert")(image=astronaut, mask=spot, prompt="a vase")
