import json

import numpy as np
import pytest

from banana.tools.values import Boxes, Face, Identity, Image, Mask, Number, Text, value_type


def test_image_roundtrip_and_hash(tmp_path, astronaut):
    path = astronaut.save(tmp_path / "a.png")
    back = Image.load(path)
    assert np.array_equal(back.pixels, astronaut.pixels)
    assert back.content_hash == astronaut.content_hash
    px = astronaut.pixels.copy()
    px[0, 0, 0] ^= 1
    assert Image(px).content_hash != astronaut.content_hash


def test_image_meta_travels_in_the_png(tmp_path, astronaut):
    tagged = Image(astronaut.pixels, meta={"backbone": "classical", "generative": False})
    assert Image.load(tagged.save(tmp_path / "m.png")).meta == {"backbone": "classical", "generative": False}


def test_image_is_read_only(astronaut):
    with pytest.raises(ValueError):
        astronaut.pixels[0, 0, 0] = 0


def test_image_rejects_wrong_shape_and_dtype():
    with pytest.raises(ValueError, match="H x W x 3"):
        Image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Image(np.zeros((4, 4, 3), np.float32))


def test_image_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image"):
        Image.load(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        Image.load(bad)


def test_mask_keeps_soft_values_through_png(tmp_path):
    alpha = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    back = Mask.load(Mask(alpha).save(tmp_path / "m.png"))
    assert np.abs(back.alpha - alpha).max() < 1e-4
    assert Mask(alpha > 0.5).area == pytest.approx(0.5, abs=0.01)


def test_json_values_roundtrip(tmp_path):
    boxes = Boxes(((1, 2, 30, 40),), (0.9,), ("face",), (100, 200))
    assert Boxes.load(boxes.save(tmp_path / "b.json")).to_json() == boxes.to_json()
    assert Text.load(Text("hello").save(tmp_path / "t.json")).text == "hello"
    assert Number.load(Number(0.25).save(tmp_path / "n.json")).value == 0.25
    crop = np.full((8, 8, 3), 7, np.uint8)
    ident = Identity((Face((1, 2, 9, 10), (0.1,) * 128, ((3.0, 4.0),), crop),), (64, 64))
    back = Identity.load(ident.save(tmp_path / "i.json"))
    assert back.content_hash == ident.content_hash
    assert np.array_equal(back.faces[0].crop, crop)
    assert json.loads((tmp_path / "i.json").read_text())["type"] == "Identity"


def test_boxes_validate():
    with pytest.raises(ValueError, match="x0 <= x1"):
        Boxes(((10, 0, 5, 5),))


def test_value_type_lookup():
    assert value_type("Mask") is Mask
    with pytest.raises(KeyError, match="known: Image"):
        value_type("Picture")
