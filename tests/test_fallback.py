"""The classical no-weights backbone on real photos: seams blend, far pixels stay, and it always says what it is."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from banana.agent.cli import app
from banana.backbone import harmonize
from banana.backbone.classical import ClassicalBackbone
from banana.backbone.harmonize import band_width
from banana.tools.backbone import BackboneError, BackboneMeta, get_backbone, set_backbone
from banana.tools.values import Image, Mask

# (photo, donor of the pasted patch, patch box y0, y1, x0, x1)
PASTES = [
    ("astronaut", "coffee", (300, 420, 180, 330)),
    ("chelsea", "china", (100, 220, 150, 330)),
    ("grace_hopper", "flower", (200, 330, 250, 400)),
]


@pytest.fixture(scope="module")
def classical() -> ClassicalBackbone:
    return ClassicalBackbone()


def pasted(photos, base: str, donor: str, box) -> tuple[Image, np.ndarray]:
    """``base`` with a patch of ``donor`` pasted in: a hard seam. Returns the picture and the keep mask (all but the patch)."""
    y0, y1, x0, x1 = box
    px = photos[base].pixels.copy()
    px[y0:y1, x0:x1] = photos[donor].pixels[: y1 - y0, : x1 - x0]
    keep = np.ones(px.shape[:2], np.float32)
    keep[y0:y1, x0:x1] = 0.0
    return Image(px), keep


def seam_energy(px: np.ndarray, box) -> float:
    """Sum of squared differences between the pixel pairs that straddle the patch's border."""
    y0, y1, x0, x1 = box
    f = px.astype(np.float64)
    return float(((f[y0:y1, x0] - f[y0:y1, x0 - 1]) ** 2).sum() + ((f[y0:y1, x1 - 1] - f[y0:y1, x1]) ** 2).sum()
                 + ((f[y0, x0:x1] - f[y0 - 1, x0:x1]) ** 2).sum() + ((f[y1 - 1, x0:x1] - f[y1, x0:x1]) ** 2).sum())


def texture(px: np.ndarray, region: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(px.astype(np.float32).mean(axis=2), cv2.CV_32F))[region].mean())


@pytest.mark.parametrize(("base", "donor", "box"), PASTES)
def test_seam_energy_drops_and_far_pixels_stay(classical, photos, base, donor, box):
    image, keep = pasted(photos, base, donor, box)
    before = seam_energy(image.pixels, box)
    y0, y1, x0, x1 = box
    results = {}
    for strength in (0.3, 1.0):
        out = classical.refine(image, strength=strength, keep_mask=Mask(keep))
        results[strength] = seam_energy(out.pixels, box)
        np.testing.assert_array_equal(out.pixels[keep == 1], image.pixels[keep == 1])  # kept: bit-identical
        reach = band_width(image.height, image.width, strength) + 1
        far = np.zeros_like(keep, bool)
        far[y0 + reach:y1 - reach, x0 + reach:x1 - reach] = True
        np.testing.assert_array_equal(out.pixels[far], image.pixels[far])  # beyond the band: bit-identical
        assert np.any(out.pixels != image.pixels)
    assert results[0.3] < 0.6 * before
    assert results[1.0] < 0.1 * before < results[0.3]


def test_the_patch_keeps_its_texture(classical, photos):
    image, keep = pasted(photos, *PASTES[0])
    y0, y1, x0, x1 = PASTES[0][2]
    inner = np.zeros_like(keep, bool)
    inner[y0 + 3:y1 - 3, x0 + 3:x1 - 3] = True
    out = classical.refine(image, strength=1.0, keep_mask=Mask(keep))
    assert texture(out.pixels, inner) == pytest.approx(texture(image.pixels, inner), rel=0.1)


def test_keeping_the_patch_blends_its_surroundings(classical, photos):
    base, donor, box = PASTES[1]
    image, keep = pasted(photos, base, donor, box)
    patch = 1.0 - keep
    out = classical.refine(image, strength=1.0, keep_mask=Mask(patch))
    np.testing.assert_array_equal(out.pixels[patch == 1], image.pixels[patch == 1])
    assert seam_energy(out.pixels, box) < 0.1 * seam_energy(image.pixels, box)
    y0, y1, x0, x1 = box
    reach = band_width(image.height, image.width, 1.0) + 1
    far = np.ones_like(keep, bool)
    far[max(0, y0 - reach):y1 + reach, max(0, x0 - reach):x1 + reach] = False
    np.testing.assert_array_equal(out.pixels[far], image.pixels[far])


def test_large_bands_are_solved_on_a_coarser_grid(classical, photos, monkeypatch):
    monkeypatch.setattr(harmonize, "MAX_UNKNOWNS", 3000)
    base, donor, box = PASTES[0]
    image, keep = pasted(photos, base, donor, box)
    out = classical.refine(image, strength=1.0, keep_mask=Mask(keep))
    np.testing.assert_array_equal(out.pixels[keep == 1], image.pixels[keep == 1])
    assert seam_energy(out.pixels, box) < 0.2 * seam_energy(image.pixels, box)


def test_soft_keep_is_exact_where_it_is_one(classical, photos):
    image, keep = pasted(photos, *PASTES[0])
    soft = cv2.GaussianBlur(keep, (0, 0), 4)
    out = classical.refine(image, strength=1.0, keep_mask=Mask(soft))
    np.testing.assert_array_equal(out.pixels[soft >= 1.0], image.pixels[soft >= 1.0])
    assert np.any(out.pixels[soft < 0.5] != image.pixels[soft < 0.5])


def test_every_result_says_it_is_the_classical_fallback(classical, photos):
    image, keep = pasted(photos, *PASTES[0])
    info = BackboneMeta.read(classical.refine(image, keep_mask=Mask(keep)).meta)
    assert info is not None and info.backbone == "classical" and info.generative is False and info.operation == "refine"
    assert info.note.startswith("classical fallback (no diffusion weights configured): seams along the keep mask's edge blended")


def test_without_an_edit_boundary_nothing_changes_and_it_says_why(classical, photos):
    image = photos["coffee"]
    out = classical.refine(image, prompt="make it cinematic", strength=0.8, adapters={"style": 1.0})
    np.testing.assert_array_equal(out.pixels, image.pixels)
    assert "no keep mask marks an edit boundary, picture unchanged; prompt and adapters ignored" in out.meta["note"]
    keep = Mask(np.ones(image.pixels.shape[:2], np.float32))
    np.testing.assert_array_equal(classical.refine(image, strength=0.0, keep_mask=keep).pixels, image.pixels)


def test_inpaint_fills_from_the_surroundings_and_leaves_the_rest(classical, photos):
    image = photos["chelsea"]
    alpha = np.zeros(image.pixels.shape[:2], np.float32)
    alpha[200:260, 300:380] = 1.0
    out = classical.inpaint(image, Mask(alpha), prompt="a red ball")
    hole = alpha > 0
    np.testing.assert_array_equal(out.pixels[~hole], image.pixels[~hole])
    error = np.abs(out.pixels[hole].astype(float) - image.pixels[hole]).mean()
    grey_error = np.abs(128.0 - image.pixels[hole]).mean()
    assert error < 0.7 * grey_error  # it continues the fur; it does not paint a ball
    info = BackboneMeta.read(out.meta)
    assert info is not None and info.operation == "inpaint" and not info.generative
    assert "prompt 'a red ball' not drawn: that needs diffusion weights" in info.note


def test_thin_holes_are_filled_closely(classical, photos):
    image = photos["astronaut"]
    line = np.zeros(image.pixels.shape[:2], np.uint8)
    cv2.line(line, (20, 30), (250, 200), 1, 2)
    out = classical.inpaint(image, Mask(line.astype(np.float32)))
    hole = line > 0
    np.testing.assert_array_equal(out.pixels[~hole], image.pixels[~hole])
    assert np.abs(out.pixels[hole].astype(float) - image.pixels[hole]).mean() < 15


def test_edit_refuses_and_says_how_to_configure(classical, photos):
    with pytest.raises(BackboneError, match=r"needs diffusion weights.*BANANA_BACKBONE=diffusers.*BANANA_BACKBONE_WEIGHTS"):
        classical.edit(photos["coffee"], "make it snow")


@pytest.fixture
def no_backbone_env(monkeypatch):
    """No BANANA_* settings, and no backbone left over from another test."""
    for name in list(os.environ):
        if name.startswith("BANANA_"):
            monkeypatch.delenv(name)
    set_backbone(None)
    yield
    set_backbone(None)


def test_the_default_backbone_is_the_classical_fallback(no_backbone_env):
    backbone = get_backbone()
    assert isinstance(backbone, ClassicalBackbone) and backbone.generative is False


def test_cli_run_with_refine_says_the_fallback_ran(no_backbone_env, tmp_path, photos):
    program = tmp_path / "finish.json"
    program.write_text(json.dumps({"version": 1, "nodes": [
        {"id": "warm", "tool": "adjust", "args": {"image": "$input", "warmth": 0.3}},
        {"id": "finish", "tool": "refine", "args": {"image": "$warm", "strength": 0.5}},
        {"id": "soft", "tool": "blur", "args": {"image": "$finish", "amount": 0.1}}],
        "output": "$soft"}))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(app, ["run", str(program), "-i", "sample:coffee", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "classical fallback" in line]
    assert lines == ["finish (refine): classical fallback (no diffusion weights configured): "
                     "no keep mask marks an edit boundary, picture unchanged"]
    assert Image.load(out).pixels.shape == photos["coffee"].pixels.shape
