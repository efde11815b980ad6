"""Hostile and careless inputs: what a program may read, and picture files that are odd, huge or broken.

Every picture here is a real file written in the test; nothing of PIL or OpenCV is mocked.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from banana.agent.executor import Executor
from banana.agent.program import planner_schema, validate
from banana.agent.surface import steps_grammar
from banana.experts.perception import detect_faces
from banana.tools.files import REFUSAL, ReadPolicy, ReadRefused, file_args
from banana.tools.values import META_KEY, Image, PictureError
from bench.fuzz import check_program, program_case

BANANA = Path(sys.executable).parent / "banana"
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # our own limit speaks instead


# ---------------------------------------------------------------- what a program may read


@pytest.fixture()
def places(tmp_path: Path) -> dict[str, Path]:
    """A granted folder with a backdrop, and outside it a secret picture, a secret text, and links out."""
    granted, outside = tmp_path / "granted", tmp_path / "outside"
    granted.mkdir()
    outside.mkdir()
    PILImage.new("RGB", (64, 48), (0, 200, 0)).save(granted / "green.png")
    PILImage.new("RGB", (64, 48), (200, 0, 0)).save(outside / "secret.png")
    (outside / "secret.txt").write_text("password")
    (granted / "link.png").symlink_to(outside / "secret.png")
    (granted / "dangling.png").symlink_to(outside / "missing.png")
    (granted / "sub").symlink_to(outside, target_is_directory=True)
    return {"granted": granted, "outside": outside}


def hostile_names(places: dict[str, Path]) -> list[str]:
    out = places["outside"]
    return [
        str(out / "secret.png"),  # absolute, exists, a picture
        str(out / "secret.txt"),  # absolute, exists, not a picture
        str(out / "missing.png"),  # absolute, does not exist
        "/etc/passwd",
        "../outside/secret.png",  # .. out of the granted folder
        "green.png/../../outside/secret.png",
        f"{places['granted']}/../outside/secret.png",
        "~/secret.png",
        "~root/.bashrc",
        "link.png",  # a symlink inside the granted folder pointing out
        "dangling.png",
        "sub/secret.png",  # a symlinked folder pointing out
        "nope.png",  # inside the granted folder, missing
    ]


def test_every_refusal_is_the_same_sentence(places):
    policy = ReadPolicy(dirs=[places["granted"]])
    for name in hostile_names(places):
        with pytest.raises(ReadRefused) as info:
            policy.read(name)
        assert str(info.value) == REFUSAL.format(name=name), name
        with pytest.raises(ReadRefused):
            policy.digest(name)


def test_nothing_is_granted_by_default(places):
    with pytest.raises(ReadRefused):
        ReadPolicy().read(str(places["granted"] / "green.png"))


def test_granted_folder_and_input_files_are_readable(places, tmp_path, monkeypatch):
    green = places["granted"] / "green.png"
    policy = ReadPolicy(dirs=[places["granted"]], files=[places["outside"] / "secret.png"])
    assert policy.read(str(green)) == green.read_bytes()  # absolute, inside
    assert policy.read("green.png") == green.read_bytes()  # relative to the granted folder
    monkeypatch.chdir(tmp_path)
    assert policy.read("granted/green.png") == green.read_bytes()  # relative to the working directory
    assert policy.read(str(places["outside"] / "secret.png"))  # a session input, granted alone
    with pytest.raises(ReadRefused):
        policy.read(str(places["outside"] / "secret.txt"))  # its neighbour is not
    with pytest.raises(ValueError, match="not a directory"):
        ReadPolicy(dirs=[green])


def test_digest_follows_the_content_not_the_path(places):
    policy = ReadPolicy(dirs=[places["granted"]])
    before = policy.digest("green.png")
    PILImage.new("RGB", (64, 48), (0, 0, 200)).save(places["granted"] / "green.png")
    assert policy.digest("green.png") != before


def test_planner_is_not_offered_file_args(registry):
    spec = registry.get("replace_background")
    assert file_args(spec) == ["file"]
    variant = next(v for v in planner_schema(registry)["properties"]["nodes"]["items"]["anyOf"]
                   if v["properties"]["tool"] == {"const": "replace_background"})
    assert set(variant["properties"]["args"]["properties"]) == {"image", "mask", "color", "color2", "prompt"}
    rule = next(line for line in steps_grammar(registry).splitlines() if line.startswith("step_replace_background ::="))
    assert "prompt=" in rule and "file=" not in rule
    assert "file" in spec.describe()["args"]  # people writing programs still see it


def _backdrop_program(file: str) -> dict:
    return {"version": 1, "output": "$bg", "nodes": [
        {"id": "person", "tool": "segment", "args": {"image": "$input", "target": "person"}},
        {"id": "bg", "tool": "replace_background", "args": {"image": "$input", "mask": "$person", "file": file}}]}


def test_executor_refuses_before_the_node_runs_and_keys_on_content(registry, astronaut, places):
    secret = str(places["outside"] / "secret.png")
    with Executor(registry, files=ReadPolicy(dirs=[places["granted"]])) as ex:
        errors = []
        for name in (secret, str(places["outside"] / "missing.png")):
            result = ex.run(validate(_backdrop_program(name), registry), {"input": astronaut})
            assert not result.ok
            errors.append(result.failures["bg"].error)
        assert errors[0].replace(secret, "X") == errors[1].replace(str(places["outside"] / "missing.png"), "X")
        assert REFUSAL.format(name=secret) in errors[0]
        green = str(places["granted"] / "green.png")
        first = ex.run(validate(_backdrop_program(green), registry), {"input": astronaut})
        corner = first.output.pixels[0, 0]
        assert abs(int(corner[1]) - 200) <= 2 and corner[0] <= 2  # the granted green backdrop
        PILImage.new("RGB", (64, 48), (0, 0, 200)).save(green)  # same path, new content
        second = ex.run(validate(_backdrop_program(green), registry), {"input": astronaut})
        assert "bg" not in second.cached and "person" in second.cached
        assert abs(int(second.output.pixels[0, 0][2]) - 200) <= 2


def test_cli_allow_read(places, tmp_path):
    program = tmp_path / "p.json"
    program.write_text(json.dumps(_backdrop_program("green.png")))
    cmd = [str(BANANA), "run", str(program), "-i", "sample:astronaut", "-o", str(tmp_path / "o.png"), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 1 and "'green.png' is not readable by this program" in refused.stderr
    allowed = subprocess.run([*cmd, "--allow-read", str(places["granted"])], capture_output=True, text=True, env=env, timeout=300)
    assert allowed.returncode == 0, allowed.stderr
    assert Image.load(tmp_path / "o.png").pixels[0, 0][1] > 190
    bad = subprocess.run([*cmd, "--allow-read", str(tmp_path / "none")], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "not a directory" in bad.stderr


# ---------------------------------------------------------------- pictures: correct or a clear error


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that *says* it is width x height but holds no pixel data: decoding it would fail as truncated."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def test_huge_pictures_are_refused_from_the_header(tmp_path):
    for w, h in ((12000, 12000), (20000, 20000), (40000, 10)):
        path = tmp_path / f"{w}x{h}.png"
        path.write_bytes(png_header_only(w, h))
        with pytest.raises(PictureError) as info:
            Image.load(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and "is over the limit of 40 MP and 16384 px per side" in msg
        assert "BANANA_MAX_PIXELS / BANANA_MAX_SIDE" in msg
        # our own header check says the size; past 179 MP PIL's guard fires first, and says it in the same words
        assert (f"{w}x{h} pixels" if w * h < 178_956_970 else f"{w * h / 1e6:.1f} MP is over") in msg
    # not the size: with the limits raised, the same file gets as far as decoding and is truncated
    with pytest.raises(PictureError, match="truncated or corrupt"):
        Image.load(tmp_path / "12000x12000.png", max_pixels=200_000_000, max_side=20000)


def test_a_real_12000_square_png_is_refused(tmp_path):
    path = tmp_path / "big.png"
    PILImage.new("L", (12000, 12000)).save(path)  # 140 KB on disk
    with pytest.raises(PictureError, match=r"12000x12000 pixels \(144\.0 MP\) is over the limit of 40 MP"):
        Image.load(path)


def test_limits_come_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    PILImage.new("RGB", (300, 200)).save(path)
    monkeypatch.setenv("BANANA_MAX_PIXELS", "50000")
    with pytest.raises(PictureError, match=r"over the limit of 0\.05 MP"):
        Image.load(path)
    monkeypatch.setenv("BANANA_MAX_PIXELS", "60000")
    monkeypatch.setenv("BANANA_MAX_SIDE", "256")
    with pytest.raises(PictureError, match="256 px per side"):
        Image.load(path)
    assert Image.load(path, max_side=300).width == 300  # Python arguments win over the environment
    monkeypatch.setenv("BANANA_MAX_SIDE", "lots")
    with pytest.raises(ValueError, match="BANANA_MAX_SIDE='lots': give a whole number"):
        Image.load(path)


def test_decompression_bomb_is_the_same_clear_error(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(PictureError, match=f"{path}: refused by PIL as a decompression bomb"):
        Image.load(path, max_pixels=10**12, max_side=10**6)  # past our limit, PIL's own guard still speaks clearly


def test_exif_orientation_is_applied(tmp_path):
    px = np.zeros((20, 40, 3), np.uint8)
    px[:, :20] = 255  # left half white
    im = PILImage.fromarray(px)
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to show
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = Image.load(tmp_path / "rot.jpg").pixels
    assert out.shape == (40, 20, 3)
    assert out[:15].mean() > 240 and out[25:].mean() < 15  # the white half is now on top


def test_transparency_is_composited_onto_white(tmp_path):
    px = np.zeros((8, 30, 4), np.uint8)
    px[..., 0] = 255
    px[:, 10:20, 3] = 128
    px[:, 20:, 3] = 255
    PILImage.fromarray(px, "RGBA").save(tmp_path / "a.png")
    out = Image.load(tmp_path / "a.png").pixels.astype(int)
    assert (out[:, :10] == 255).all()  # transparent: white, not the hidden red
    assert np.abs(out[0, 15] - (255, 127, 127)).max() <= 1
    assert (out[:, 20:] == (255, 0, 0)).all()
    pal = PILImage.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.save(tmp_path / "t.png", transparency=1)
    assert (Image.load(tmp_path / "t.png").pixels == 255).all()


def test_16_bit_grey_keeps_its_tones(tmp_path):
    ramp = np.linspace(0, 65535, 200 * 300).reshape(200, 300).astype(np.uint16)
    PILImage.fromarray(ramp).save(tmp_path / "g16.png")
    assert PILImage.open(tmp_path / "g16.png").mode == "I;16"
    out = Image.load(tmp_path / "g16.png").pixels
    assert abs(out.mean() - ramp.mean() / 257) < 0.5
    assert (out == 255).mean() < 0.01  # not 99.6 % white
    assert (out[..., 0] == out[..., 1]).all()


@pytest.mark.parametrize("mode", ["I", "F", "I;16B", "1", "L", "LA", "CMYK"])
def test_other_modes_convert(tmp_path, mode):
    path = tmp_path / ("m.png" if mode == "LA" else "m.tif")
    PILImage.new(mode, (6, 4)).save(path)
    out = Image.load(path)
    assert out.pixels.shape == (4, 6, 3) and out.pixels.dtype == np.uint8


def test_cmyk_jpeg_and_palette_gif(tmp_path):
    PILImage.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert np.abs(Image.load(tmp_path / "c.jpg").pixels[8, 8].astype(int) - (255, 0, 0)).max() < 12
    PILImage.new("RGB", (16, 16), (0, 0, 255)).convert("P").save(tmp_path / "p.gif")
    assert PILImage.open(tmp_path / "p.gif").mode == "P"
    assert (Image.load(tmp_path / "p.gif").pixels[8, 8] == (0, 0, 255)).all()


def test_animated_gif_gives_the_first_frame_and_says_so(tmp_path, caplog):
    frames = [PILImage.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING):
        out = Image.load(tmp_path / "anim.gif")
    assert (out.pixels == (255, 0, 0)).all()
    assert "animated (3 frames): the first frame was used" in out.meta["load_note"]
    assert "animated (3 frames)" in caplog.text


def test_broken_files_name_themselves(tmp_path):
    buf = io.BytesIO()
    PILImage.new("RGB", (64, 64), (10, 20, 30)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:60])
    with pytest.raises(PictureError, match=r"cut\.png: truncated or corrupt picture file"):
        Image.load(tmp_path / "cut.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(PictureError, match=r"text\.jpg: not an image file PIL can read"):
        Image.load(tmp_path / "text.jpg")
    meta = tmp_path / "meta.png"
    Image(np.zeros((4, 4, 3), np.uint8), meta={"a": 1}).save(meta)
    info = PngInfo()
    info.add_text(META_KEY, "[" * 50_000)  # deeply nested JSON in the meta chunk: ignored, not fatal
    PILImage.new("RGB", (4, 4)).save(tmp_path / "deep.png", pnginfo=info)
    assert Image.load(tmp_path / "deep.png").meta == {}


SEEDS: dict[str, bytes] = {}


def _seed(fmt: str, mode: str = "RGB", **kw) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(len(SEEDS))
    im = PILImage.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).convert(mode)
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def seeds() -> list[bytes]:
    if not SEEDS:
        for name, args in {"png": ("PNG",), "jpeg": ("JPEG",), "gif": ("GIF", "P"), "bmp": ("BMP",), "tiff": ("TIFF",),
                           "webp": ("WEBP",), "rgba": ("PNG", "RGBA"), "cmyk": ("JPEG", "CMYK")}.items():
            SEEDS[name] = _seed(*args)
    return list(SEEDS.values())


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "dup", "insert"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80]))
        elif op == "cut":
            data = data[:i]
        elif op == "dup":
            data[i:i] = data[i: i + draw(st.integers(1, 64))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_picture_bytes_give_a_picture_or_a_picture_error(data):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about each odd tag it skips; the outcome is what is tested
            out = Image.decode(data, "fuzz.bin")
    except PictureError as exc:
        assert str(exc).startswith("fuzz.bin: ")
        return
    assert out.pixels.dtype == np.uint8 and out.pixels.ndim == 3 and out.pixels.shape[2] == 3
    assert out.width * out.height <= 40_000_000


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.integers(0, 2**31))
def test_random_and_mutated_programs_give_a_program_or_a_program_error(registry, case):
    """The same cases ``make fuzz`` runs 10,000 of (bench/fuzz.py), a few per test run."""
    data, inputs = program_case(case, registry)
    assert check_program(data, inputs, registry) in ("valid", "refused")


# ---------------------------------------------------------------- perception on pictures OpenCV cannot take whole

HUGE = """
import numpy as np
from banana.tools.registry import default_registry
from banana.tools.values import Image
img = Image(np.full(({h}, {w}, 3), 128, np.uint8))
r = default_registry()
print("faces", len(r.get("detect_faces")(image=img)))
print("identity", len(r.get("lock_identity")(image=img).faces))
try:
    r.get("segment")(image=img, target="person")
except ValueError as exc:
    print("segment", exc)
"""


@pytest.mark.parametrize(("w", "h"), [(40000, 10), (10, 40000)])
def test_sides_past_opencvs_limit_do_not_abort(w, h):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", HUGE.format(w=w, h=h)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]  # was 134: mediapipe's OpenCV aborted the process
    assert "faces 0" in proc.stdout and "identity 0" in proc.stdout
    assert "segment cannot find 'person' in this picture" in proc.stdout


def test_faces_in_a_big_picture_map_back(astronaut):
    small = detect_faces(image=astronaut)
    big = Image(np.repeat(np.repeat(astronaut.pixels, 6, axis=0), 6, axis=1))  # 3072 px: past the 2048 working side
    found = detect_faces(image=big)
    assert len(small) == len(found) == 1
    expected = np.asarray(small.boxes[0]) * 6
    assert np.abs(np.asarray(found.boxes[0]) - expected).max() < 0.05 * (expected[2] - expected[0])
