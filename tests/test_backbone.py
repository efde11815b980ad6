"""The diffusers backbone on tiny random pipelines, saved and reloaded offline (``from_pretrained(local_files_only=True)``).

The pictures are noise: these tests check shapes, seeds, exact keep masks, adapters and
configuration, never looks. Every pipeline is built once per session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from banana.backbone import tiny
from banana.backbone.classical import ClassicalBackbone
from banana.backbone.diffusion import DiffusersBackbone, crop_box, resolve_weights
from banana.backbone.pixels import keep_exact, working_size
from banana.tools.backbone import BackboneConfig, BackboneError, BackboneMeta, get_backbone, load_backbone, set_backbone
from banana.tools.spec import Cancelled, ToolContext
from banana.tools.values import Image, Mask

torch.set_num_threads(1)

REFINERS = ["sd-inpaint", "sd-img2img", "sdxl-inpaint", "flux-kontext"]
INPAINTERS = ["sd-inpaint", "sd-img2img", "sdxl-inpaint", "flux-kontext"]
EDITORS = ["flux-kontext", "instruct-pix2pix"]
WITH_LORA = ["sd-inpaint", "flux-kontext"]


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Every tiny pipeline kind saved as a diffusers folder, plus two LoRA files for the UNet and the FLUX transformer."""
    root = tmp_path_factory.mktemp("tiny-pipelines")
    out = {kind: tiny.save(kind, root / kind) for kind in tiny.PIPELINE_CLASSES}
    for kind in WITH_LORA:
        out[f"{kind}/style"] = tiny.save_lora(kind, root / f"{kind}-style.safetensors", seed=1)
        out[f"{kind}/identity"] = tiny.save_lora(kind, root / f"{kind}-identity.safetensors", seed=2)
    out["controlnet"] = tiny.save_controlnet(root / "controlnet-canny")
    return out


def config(weights: dict[str, Path], kind: str, **extra) -> BackboneConfig:
    return BackboneConfig(**{"kind": "diffusers", "weights": weights[kind], "steps": 2, "resolution": 64, **extra})


@pytest.fixture(scope="session")
def backbones(weights) -> dict[str, DiffusersBackbone]:
    """One loaded backbone per kind (the pipeline kind is read from each folder's model_index.json)."""
    return {kind: DiffusersBackbone(config(weights, kind)) for kind in tiny.PIPELINE_CLASSES}


@pytest.fixture(scope="session")
def photo(astronaut) -> Image:
    """A real photo, 70 x 90: not a multiple of 8, and larger than the 64 px the tiny pipelines work at."""
    return Image(np.ascontiguousarray(astronaut.pixels[::5, ::5][:70, :90]))


@pytest.fixture(scope="session")
def keep() -> Mask:
    a = np.zeros((70, 90), np.float32)
    a[5:35, 10:50] = 1.0
    return Mask(a)


@pytest.fixture(scope="session")
def hole() -> Mask:
    a = np.zeros((70, 90), np.float32)
    a[35:62, 45:80] = 1.0
    return Mask(a)


def changed(a: Image, b: Image) -> bool:
    return not np.array_equal(a.pixels, b.pixels)


# -- loading and configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(tiny.PIPELINE_CLASSES))
def test_kind_is_read_from_the_weights_folder(backbones, kind):
    assert backbones[kind].kind.name == kind


def test_no_weights_is_an_error_not_a_download():
    with pytest.raises(BackboneError, match="needs weights: set BANANA_BACKBONE_WEIGHTS"):
        DiffusersBackbone(BackboneConfig(kind="diffusers"))


def test_weights_errors_name_what_was_wrong(tmp_path, weights):
    with pytest.raises(BackboneError, match="no such folder"):
        DiffusersBackbone(BackboneConfig(kind="diffusers", weights=tmp_path / "missing"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(BackboneError, match="found a file"):
        DiffusersBackbone(BackboneConfig(kind="diffusers", weights=tmp_path / "file.bin"))
    with pytest.raises(BackboneError, match=r"no model_index\.json"):
        DiffusersBackbone(BackboneConfig(kind="diffusers", weights=tmp_path))
    with pytest.raises(BackboneError, match="hub id: also set BANANA_BACKBONE_PIPELINE"):
        DiffusersBackbone(BackboneConfig(kind="diffusers", weights="hf:some-org/some-model"))
    with pytest.raises(BackboneError, match="unknown diffusers pipeline 'sd3'"):
        DiffusersBackbone(BackboneConfig(kind="diffusers", weights=weights["sd-inpaint"], pipeline="sd3"))
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(BackboneError, match="holds a WanPipeline pipeline"):
        DiffusersBackbone(BackboneConfig(kind="diffusers", weights=tmp_path))


def test_hub_id_is_used_only_when_named(weights):
    assert resolve_weights("hf:some-org/some-model") == ("some-org/some-model", False)
    assert resolve_weights(weights["sd-inpaint"]) == (str(weights["sd-inpaint"]), True)
    with pytest.raises(BackboneError, match=r"'models/sdxl': no such folder \(a hub id is written hf:org/name\)"):
        resolve_weights("models/sdxl")  # a mistyped local path is never taken for a hub id


def test_a_hub_id_with_the_hub_offline_fails_clearly(photo, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = DiffusersBackbone(BackboneConfig(kind="diffusers", weights="hf:some-org/not-cached", pipeline="sd-inpaint", steps=2))
    with pytest.raises(BackboneError, match="could not load sd-inpaint weights"):
        backbone.refine(photo)


def test_entry_points_build_both_backbones(weights):
    assert isinstance(load_backbone(BackboneConfig()), ClassicalBackbone)
    assert isinstance(load_backbone(config(weights, "sd-inpaint")), DiffusersBackbone)
    with pytest.raises(BackboneError, match="unknown backbone 'nope'; installed: classical, diffusers"):
        load_backbone(BackboneConfig(kind="nope"))


def test_config_from_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("BANANA_"):
            monkeypatch.delenv(name)
    assert BackboneConfig.from_env().kind == "classical"
    monkeypatch.setenv("BANANA_BACKBONE_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("BANANA_BACKBONE_STEPS", "4")
    monkeypatch.setenv("BANANA_BACKBONE_ADAPTERS", "identity=/w/id.safetensors, style=/w/style.safetensors")
    cfg = BackboneConfig.from_env()
    assert cfg.kind == "diffusers"  # naming weights is enough
    assert cfg.steps == 4
    assert cfg.adapters == {"identity": Path("/w/id.safetensors"), "style": Path("/w/style.safetensors")}
    monkeypatch.setenv("BANANA_BACKBONE_ADAPTERS", "identity")
    with pytest.raises(BackboneError, match="expected name=path pairs"):
        BackboneConfig.from_env()
    monkeypatch.delenv("BANANA_BACKBONE_ADAPTERS")
    monkeypatch.setenv("BANANA_DEVICE", "tpu")
    with pytest.raises(BackboneError, match="BANANA_DEVICE='tpu': Input should be"):
        BackboneConfig.from_env()


# -- the three operations --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", REFINERS)
def test_refine_shape_seed_and_exact_keep(backbones, photo, keep, kind):
    backbone = backbones[kind]
    a = backbone.refine(photo, "a red cat", strength=0.5, keep_mask=keep, seed=0)
    b = backbone.refine(photo, "a red cat", strength=0.5, keep_mask=keep, seed=0)
    c = backbone.refine(photo, "a red cat", strength=0.5, keep_mask=keep, seed=1)
    assert a.pixels.shape == photo.pixels.shape
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert changed(a, c)
    kept = keep.alpha == 1
    np.testing.assert_array_equal(a.pixels[kept], photo.pixels[kept])
    assert not np.array_equal(a.pixels[~kept], photo.pixels[~kept])
    info = BackboneMeta.read(a.meta)
    assert info is not None and info.generative and info.backbone == "diffusers" and info.pipeline == kind and info.seed == 0


def test_refine_follows_the_prompt(backbones, photo):
    sd = backbones["sd-inpaint"]
    assert changed(sd.refine(photo, "a red cat", strength=1.0), sd.refine(photo, "a blue dog", strength=1.0))


def test_refine_strength_zero_returns_the_input(backbones, photo):
    out = backbones["sd-inpaint"].refine(photo, "a red cat", strength=0.0)
    np.testing.assert_array_equal(out.pixels, photo.pixels)


def test_refine_keeps_a_soft_mask_exactly_where_it_is_one(backbones, photo):
    a = np.zeros((70, 90), np.float32)
    a[:, :30] = 1.0
    a[:, 30:40] = np.linspace(1.0, 0.0, 10, dtype=np.float32)
    out = backbones["sd-img2img"].refine(photo, "", strength=1.0, keep_mask=Mask(a))
    np.testing.assert_array_equal(out.pixels[:, :31], photo.pixels[:, :31])
    assert not np.array_equal(out.pixels[:, 40:], photo.pixels[:, 40:])


@pytest.mark.parametrize("kind", INPAINTERS)
def test_inpaint_changes_only_the_mask(backbones, photo, hole, kind):
    a = backbones[kind].inpaint(photo, hole, "a red cat", seed=0)
    b = backbones[kind].inpaint(photo, hole, "a red cat", seed=0)
    inside = hole.alpha > 0
    assert a.pixels.shape == photo.pixels.shape
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.pixels[~inside], photo.pixels[~inside])
    assert not np.array_equal(a.pixels[inside], photo.pixels[inside])
    assert a.meta["generative"] is True and a.meta["operation"] == "inpaint"


def test_inpaint_works_on_a_crop_around_a_small_mask(backbones, astronaut):
    """A small mask in a big picture is inpainted at the pipeline's size on a crop, not on the whole photo."""
    alpha = np.zeros(astronaut.pixels.shape[:2], np.float32)
    alpha[200:230, 300:340] = 1.0
    y0, y1, x0, x1 = crop_box(alpha > 0, 0.5, 8)
    assert (y0, y1, x0, x1) == (185, 245, 280, 360)
    out = backbones["sd-inpaint"].inpaint(astronaut, Mask(alpha), "a red cat")
    np.testing.assert_array_equal(out.pixels[alpha == 0], astronaut.pixels[alpha == 0])
    assert "region 80x60 at 64x48" in out.meta["note"]
    speck = np.zeros_like(alpha)
    speck[100:104, 100:104] = 1.0  # a tiny crop goes up to the pipeline's native size
    assert "region 20x20 at 64x64" in backbones["sd-inpaint"].inpaint(astronaut, Mask(speck), "a red cat").meta["note"]


@pytest.mark.parametrize("kind", EDITORS)
def test_edit_follows_instructions_with_exact_keep(backbones, photo, keep, kind):
    backbone = backbones[kind]
    a = backbone.edit(photo, "make the sky red", seed=0, keep_mask=keep)
    assert a.pixels.shape == photo.pixels.shape
    np.testing.assert_array_equal(a.pixels, backbone.edit(photo, "make the sky red", seed=0, keep_mask=keep).pixels)
    assert changed(a, backbone.edit(photo, "make the sky red", seed=1, keep_mask=keep))
    assert changed(a, backbone.edit(photo, "turn it into a dog", seed=0, keep_mask=keep))
    np.testing.assert_array_equal(a.pixels[keep.alpha == 1], photo.pixels[keep.alpha == 1])
    assert a.meta["operation"] == "edit" and a.meta["pipeline"] == kind


def test_edit_needs_an_instruction_model(backbones, photo):
    with pytest.raises(BackboneError, match=r"sd-inpaint weights cannot follow instructions.*flux-kontext or instruct-pix2pix"):
        backbones["sd-inpaint"].edit(photo, "make it red")


def test_what_instruct_pix2pix_cannot_do_falls_back_labelled(backbones, photo, keep, hole):
    ip2p = backbones["instruct-pix2pix"]
    refined = ip2p.refine(photo, "a red cat", strength=0.5, keep_mask=keep)
    info = BackboneMeta.read(refined.meta)
    assert info is not None and not info.generative and info.backbone == "classical"
    assert info.note.startswith("classical fallback (instruct-pix2pix weights cannot refine at a strength)")
    filled = ip2p.inpaint(photo, hole, "a red cat")
    assert "classical fallback (instruct-pix2pix weights cannot inpaint)" in filled.meta["note"]


def test_progress_per_step_and_cancellation(weights, photo):
    backbone = DiffusersBackbone(config(weights, "sd-inpaint", steps=4, adapters={"style": weights["sd-inpaint/style"]}))
    seen: list[tuple[float, str]] = []
    base = backbone.refine(photo, "a red cat", strength=1.0, progress=lambda f, m: seen.append((f, m)))
    assert seen == [(0.25, "step 1/4"), (0.5, "step 2/4"), (0.75, "step 3/4"), (1.0, "step 4/4")]

    def cancel_at_half(fraction: float, message: str) -> None:
        if fraction >= 0.5:
            raise Cancelled("node 'finish' was cancelled")

    with pytest.raises(Cancelled):
        backbone.refine(photo, "a red cat", strength=1.0, adapters={"style": 1.0}, progress=cancel_at_half)
    # a cancelled call leaves no adapter switched on
    np.testing.assert_array_equal(backbone.refine(photo, "a red cat", strength=1.0).pixels, base.pixels)


def test_refine_tool_stops_when_its_node_is_cancelled(registry, backbones, photo):
    cancel = threading.Event()
    seen: list[float] = []

    def on_progress(fraction: float, message: str) -> None:
        seen.append(fraction)
        cancel.set()  # cancel after the first step

    set_backbone(backbones["sd-inpaint"])
    try:
        with pytest.raises(Cancelled):
            registry.get("refine")(ToolContext(node_id="finish", on_progress=on_progress, cancel=cancel), image=photo, strength=1.0)
    finally:
        set_backbone(None)
    assert seen == [0.5]


# -- LoRA experts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WITH_LORA)
def test_lora_adapters_weights_and_schedules(weights, photo, kind):
    backbone = DiffusersBackbone(config(weights, kind, adapters={"style": weights[f"{kind}/style"],
                                                                 "identity": weights[f"{kind}/identity"]}))

    def run(adapters):
        return backbone.refine(photo, "a red cat", strength=1.0, seed=0, adapters=adapters).pixels

    base = run(None)
    style = run({"style": 1.0})
    assert not np.array_equal(style, base)
    np.testing.assert_array_equal(run({}), base)  # adapters are switched off between calls
    half = run({"style": 0.5})
    assert not np.array_equal(half, base) and not np.array_equal(half, style)
    np.testing.assert_array_equal(run({"style": 0.0}), base)  # weight 0 is exactly off
    np.testing.assert_array_equal(run({"style": 0.0, "identity": 0.0}), base)
    np.testing.assert_array_equal(run({"style": 1.0}), style)
    assert not np.array_equal(run({"identity": 1.0, "style": 0.5}), half)
    np.testing.assert_array_equal(run({"style": [0.5, 0.5]}), half)  # a flat schedule is the constant weight
    faded = run({"style": [1.0, 0.0]})  # per step: full weight first, off at the last step
    assert not np.array_equal(faded, style) and not np.array_equal(faded, base)
    out = backbone.refine(photo, "a red cat", strength=1.0, adapters={"style": 1.0})
    assert out.meta["adapters"] == {"style": 1.0} and "LoRA style=1.0" in out.meta["note"]
    with pytest.raises(BackboneError, match=r"unknown LoRA adapter\(s\) 'detail'; configured: identity, style"):
        run({"detail": 1.0})
    backbone.unload_adapters()
    np.testing.assert_array_equal(run(None), base)
    with pytest.raises(BackboneError, match=r"unknown LoRA adapter\(s\) 'style'"):
        run({"style": 1.0})


def test_a_missing_lora_file_is_named(weights, photo, tmp_path):
    backbone = DiffusersBackbone(config(weights, "sd-inpaint", adapters={"style": tmp_path / "nope.safetensors"}))
    with pytest.raises(BackboneError, match="LoRA adapter 'style': no weights file at"):
        backbone.refine(photo)


# -- ControlNet ------------------------------------------------------------------------------------------


def test_sdxl_refine_held_by_a_canny_controlnet(weights, backbones, photo, keep, hole):
    held = DiffusersBackbone(config(weights, "sdxl-inpaint", controlnet=weights["controlnet"]))
    a = held.refine(photo, "a red cat", strength=0.5, keep_mask=keep, seed=0)
    np.testing.assert_array_equal(a.pixels, held.refine(photo, "a red cat", strength=0.5, keep_mask=keep, seed=0).pixels)
    np.testing.assert_array_equal(a.pixels[keep.alpha == 1], photo.pixels[keep.alpha == 1])
    assert changed(a, backbones["sdxl-inpaint"].refine(photo, "a red cat", strength=0.5, keep_mask=keep, seed=0))
    assert f"Canny ControlNet {weights['controlnet']} at 0.5" in a.meta["note"]
    weaker = DiffusersBackbone(config(weights, "sdxl-inpaint", controlnet=weights["controlnet"], controlnet_scale=0.1))
    assert changed(a, weaker.refine(photo, "a red cat", strength=0.5, keep_mask=keep, seed=0))
    # inpainting draws new content, so it is not held to the old edges: the same as without a ControlNet
    np.testing.assert_array_equal(held.inpaint(photo, hole, "a red cat").pixels,
                                  backbones["sdxl-inpaint"].inpaint(photo, hole, "a red cat").pixels)


def test_controlnet_only_where_supported(weights):
    with pytest.raises(BackboneError, match="ControlNet is supported with sdxl-inpaint only, not sd-inpaint"):
        DiffusersBackbone(config(weights, "sd-inpaint", controlnet=weights["controlnet"]))


# -- devices and precision -------------------------------------------------------------------------------


def test_derived_pipelines_keep_the_precision(weights):
    """``from_pipe`` casts shared modules to float32 unless told the dtype; the inpaint pipeline derived from img2img must not."""
    backbone = DiffusersBackbone(config(weights, "sd-img2img", dtype="bfloat16"))
    derived = backbone._pipeline("StableDiffusionInpaintPipeline")
    assert derived.unet is backbone._pipeline("StableDiffusionImg2ImgPipeline").unet  # shared, not copied
    assert derived.unet.dtype == torch.bfloat16 and derived.vae.dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_offload_without_a_gpu_is_skipped_and_said(weights, photo):
    backbone = DiffusersBackbone(config(weights, "sd-inpaint", offload="model"))
    out = backbone.refine(photo, "a red cat", strength=0.5)
    assert "offload=model ignored: it needs a GPU" in out.meta["note"]
    with pytest.raises(RuntimeError, match="requires accelerator"):  # why: accelerate's hooks need a device
        tiny.build("sd-inpaint").enable_model_cpu_offload()


def test_out_of_gpu_memory_says_what_the_pipeline_needs(weights, photo, monkeypatch):
    backbone = DiffusersBackbone(config(weights, "sdxl-inpaint"))
    pipe = backbone._pipeline("StableDiffusionXLInpaintPipeline")

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(pipe), "__call__", out_of_memory)
    with pytest.raises(BackboneError, match="sdxl-inpaint pipeline ran out of GPU memory \\(it needs ~10 GB fp16\\); try BANANA_OFFLOAD"):
        backbone.refine(photo, "a red cat", strength=0.5)


# -- pixel plumbing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "longest", "multiple", "expected"), [
    ((512, 512), 512, 8, (512, 512)),
    ((3000, 4000), 1024, 16, (768, 1024)),
    ((70, 90), 64, 8, (48, 64)),
    ((517, 389), 1024, 8, (1024, 768)),  # small pictures go up to the native size
    ((5, 300), 512, 8, (8, 512)),
])
def test_working_size(size, longest, multiple, expected):
    h, w = working_size(*size, longest, multiple)
    assert (h, w) == expected and h % multiple == 0 and w % multiple == 0 and max(h, w) == longest


def test_keep_exact_rejects_a_wrong_shape(photo):
    with pytest.raises(ValueError, match="must have the input's shape"):
        keep_exact(np.zeros((64, 64, 3), np.uint8), photo, None)


# -- the refine tool and the CLI -------------------------------------------------------------------------


def test_refine_tool_runs_the_configured_backbone(registry, backbones, photo, keep):
    spec = registry.get("refine")
    assert spec.role == "finalize" and spec.resources.device == "gpu"
    assert set(spec.inputs) == {"image", "keep"} and not spec.inputs["keep"].required
    assert spec.arg_names == ["prompt", "strength", "seed", "adapters"]
    set_backbone(backbones["sd-inpaint"])
    try:
        out = spec(image=photo, keep=keep, prompt="a red cat", strength=0.5, seed=3)
        assert get_backbone() is backbones["sd-inpaint"]
    finally:
        set_backbone(None)
    assert out.meta["backbone"] == "diffusers" and out.meta["seed"] == 3
    np.testing.assert_array_equal(out.pixels[keep.alpha == 1], photo.pixels[keep.alpha == 1])
    with pytest.raises(ValueError, match="less than or equal to 2"):
        spec(image=photo, adapters={"style": 5.0})


def test_cli_runs_refine_on_configured_tiny_weights(tmp_path, weights, astronaut):
    program = tmp_path / "finish.json"
    program.write_text(json.dumps({"version": 1, "nodes": [
        {"id": "small", "tool": "crop", "args": {"image": "$input", "box": [100, 0, 190, 70]}},
        {"id": "finish", "tool": "refine", "args": {"image": "$small", "prompt": "a red cat", "strength": 0.5}}],
        "output": "$finish"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANANA_")}
    env.update(BANANA_BACKBONE_WEIGHTS=str(weights["sd-inpaint"]), BANANA_BACKBONE_STEPS="2", BANANA_BACKBONE_RESOLUTION="64")
    out = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-m", "banana.agent.cli", "run", str(program), "-i", "sample:astronaut", "-o", str(out), "-q"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"finish (refine): diffusers sd-inpaint from {weights['sd-inpaint']}, seed 0, strength 0.5 at 64x48" in proc.stderr
    result = Image.load(out)
    assert result.pixels.shape == (70, 90, 3)
    assert not np.array_equal(result.pixels, astronaut.pixels[0:70, 100:190])
