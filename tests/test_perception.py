"""Perception on real photos with the real packaged models (mediapipe, colour models), and the CLI on top."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from banana.agent.samples import sample
from banana.experts.perception import detect, detect_faces, mask_from_boxes, segment, segment_alpha
from banana.experts.targets import parse_target
from banana.tools.values import Boxes, Image

ASTRONAUT_FACE = (174, 68, 278, 172)
GRACE_FACE = (166, 128, 366, 329)


def iou(a, b):
    ix, iy = max(0, min(a[2], b[2]) - max(a[0], b[0])), max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="session")
def masks(photos):
    """Each (photo, target) mask computed once for the session."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    def get(name: str, target: str) -> np.ndarray:
        if (name, target) not in cache:
            cache[name, target] = segment(image=photos[name] if name in photos else sample(name), target=target).alpha
        return cache[name, target]

    return get


@pytest.mark.parametrize(("name", "face"), [("astronaut", ASTRONAUT_FACE), ("grace_hopper", GRACE_FACE)])
def test_detect_faces_finds_the_one_face(photos, name, face):
    boxes = detect_faces(image=photos[name])
    assert len(boxes) == 1 and boxes.labels == ("face",)
    assert iou(boxes.boxes[0], face) > 0.8
    assert boxes.scores[0] > 0.8
    assert boxes.image_size == (photos[name].height, photos[name].width)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "china"])
def test_detect_faces_finds_none_without_people(photos, name):
    assert len(detect_faces(image=photos[name])) == 0


def test_person_covers_the_figure_with_soft_edges(masks):
    person = masks("astronaut", "person")
    assert person[400, 100] > 0.95 and person[120, 226] > 0.95  # suit, face
    assert person[5, 500] < 0.05 and person[40, 20] < 0.05  # backdrop corner, flag
    soft = (person > 0.05) & (person < 0.95)
    assert 0.002 < soft.mean() < 0.1  # soft, but only along the outline
    edge = cv2.morphologyEx((person >= 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((15, 15), np.uint8)) > 0
    assert soft[~edge].mean() < 0.01


def test_face_lies_inside_the_person(masks):
    face, person = masks("astronaut", "face"), masks("astronaut", "person")
    assert face[120, 226] > 0.95 and face[400, 100] < 0.01
    assert 0.01 < face.mean() < 0.1
    assert (face * (person < 0.5)).sum() < 0.02 * face.sum()


def test_skin_and_hair_of_the_astronaut(masks):
    skin, hair = masks("astronaut", "skin"), masks("astronaut", "hair")
    assert skin[125, 200] > 0.9 and skin[85, 226] > 0.9  # cheek, forehead
    assert skin[145, 226] < 0.5  # lips are not skin
    assert skin[400, 100] < 0.05  # the orange suit is not skin
    assert hair[35, 226] > 0.5 and hair[110, 165] > 0.5  # top of the head, beside the temple
    assert hair[125, 200] < 0.05 and hair[400, 100] < 0.05
    assert (np.minimum(skin, hair) > 0.5).mean() < 0.001


def test_background_is_the_complement_of_the_person(masks):
    assert np.abs(masks("astronaut", "background") - (1.0 - masks("astronaut", "person"))).max() < 1e-5


def test_background_without_people_is_everything_but_the_subject(masks):
    background = masks("flower", "background")
    assert background[210, 300] < 0.1  # the dahlia in the middle
    assert background[20, 20] > 0.9 and background[20, 620] > 0.9


def test_sky_over_the_pagoda(masks):
    sky = masks("china", "sky")
    assert sky[:40].mean() > 0.9
    assert sky[-120:].mean() < 0.01
    assert 0.15 < sky.mean() < 0.6


@pytest.mark.parametrize("name", ["flower", "coffee", "chelsea", "astronaut", "grace_hopper"])
def test_no_sky_is_refused(photos, name):
    """Studio backdrops (grey on astronaut, blue on grace_hopper) touch the top too, but they are not smooth sky."""
    with pytest.raises(ValueError, match="cannot find 'sky' in this picture"):
        segment(image=photos[name], target="sky")


@pytest.mark.parametrize("target", ["cat", "giraffe", "the cup", "the lamp post"])  # "person on the left" is a target now
def test_unknown_targets_are_refused_naming_what_works(photos, target):
    with pytest.raises(ValueError, match=f"cannot find '{target}'.*segment knows person.*sky.*colour words"):
        segment(image=photos["coffee"], target=target)


@pytest.mark.parametrize("target", ["person", "face", "skin", "hair", "the man"])
def test_people_targets_on_a_cat_are_refused(photos, target):
    """Selfie segmentation calls the cat a person (mean 0.9); the face/pose gate must refuse."""
    with pytest.raises(ValueError, match=f"cannot find '{target}' in this picture"):
        segment(image=photos["chelsea"], target=target)


def test_colour_words_select_by_colour(photos, masks):
    red = masks("coffee", "red")
    assert red[330, 150] > 0.5  # the saucer
    assert red[20, 580] < 0.05 and red[40, 40] < 0.05  # the wooden table
    assert masks("astronaut", "orange")[400, 100] > 0.9  # the suit is orange, not red
    one = masks("coffee", "the red one")
    assert one.sum() <= red.sum() + 1e-3 and one[330, 150] > 0.5


def test_colour_with_an_unseen_noun_takes_the_largest_region(masks):
    bike = masks("motorcycle", "red motorcycle")
    assert bike[180, 420] > 0.5  # the tank
    n, _ = cv2.connectedComponents((bike >= 0.5).astype(np.uint8))
    assert n - 1 == 1


def test_no_such_colour_is_refused(photos):
    with pytest.raises(ValueError, match="nothing purple in this picture"):
        segment(image=photos["coffee"], target="purple")


@pytest.mark.parametrize(
    ("phrase", "kind", "colour", "single"),
    [
        ("person", "person", None, False),
        ("the woman's hair", "hair", None, False),
        ("her", "person", None, False),
        ("my friend", "person", None, False),
        ("Her Face", "face", None, False),
        ("the background", "background", None, False),
        ("blue sky", "sky", None, False),
        ("red", "colour", "red", False),
        ("the red one", "colour", "red", True),
        ("blue car", "colour", "blue", True),
        ("yellow flowers", "colour", "yellow", False),
        ("light grey", "colour", "grey", False),
    ],
)
def test_target_phrases(phrase, kind, colour, single):
    t = parse_target(phrase)
    assert (t.kind, t.colour, t.single) == (kind, colour, single)


@pytest.mark.parametrize(
    ("phrase", "message"), [("face and hair", "one at a time"), ("red and blue", "one colour at a time"), ("", "cannot")]
)
def test_target_phrases_refused(phrase, message):
    with pytest.raises(ValueError, match=message):
        parse_target(phrase)


def test_segment_works_on_large_pictures(photos):
    big = Image(cv2.resize(photos["astronaut"].pixels, (2048, 2048), interpolation=cv2.INTER_CUBIC))
    mask = segment(image=big, target="person")
    assert mask.shape == (2048, 2048)
    assert mask.alpha[1600, 400] > 0.95 and mask.alpha[20, 2000] < 0.05


def test_detect_boxes(photos):
    assert detect(image=photos["astronaut"], target="face").boxes == detect_faces(image=photos["astronaut"]).boxes
    person = detect(image=photos["astronaut"], target="person")
    assert len(person) >= 1 and person.labels[0] == "person"
    x0, y0, x1, y1 = person.boxes[0]
    fx0, fy0, fx1, _ = ASTRONAUT_FACE
    assert x0 <= fx0 and y0 <= fy0 + 10 and x1 >= fx1 and y1 >= 500
    red = detect(image=photos["coffee"], target="the red one")
    assert len(red) == 1 and iou(red.boxes[0], (78, 84, 469, 391)) > 0.8
    sky = detect(image=photos["china"], target="sky")
    assert sky.boxes[0][1] == 0 and sky.boxes[0][3] < 0.6 * photos["china"].height


@pytest.mark.parametrize(("name", "target"), [("coffee", "giraffe"), ("chelsea", "person"), ("coffee", "face")])
def test_detect_refuses_like_segment(photos, name, target):
    with pytest.raises(ValueError, match=f"cannot find '{target}'"):
        detect(image=photos[name], target=target)


def test_mask_from_boxes(photos):
    image = photos["astronaut"]
    boxes = Boxes(((100, 50, 200, 150),), image_size=(512, 512))
    box = mask_from_boxes(boxes=boxes, shape="box").alpha
    assert box.shape == (512, 512)
    assert box[50:150, 100:200].min() == 1.0 and box[300, 300] == 0.0
    assert 0 < box[160, 150] < 1  # soft outside the edge
    ellipse = mask_from_boxes(boxes=boxes, image=image).alpha
    assert ellipse[100, 150] == 1.0 and ellipse[52, 102] < 0.5  # centre in, corner out
    twice = mask_from_boxes(boxes=boxes, image=Image(np.zeros((1024, 1024, 3), np.uint8)), shape="box").alpha
    assert twice[100:300, 200:400].min() == 1.0  # boxes scaled to the bigger picture
    assert mask_from_boxes(boxes=Boxes((), image_size=(20, 30))).alpha.max() == 0.0


def test_mask_from_boxes_needs_a_size():
    with pytest.raises(ValueError, match="needs the picture's size"):
        mask_from_boxes(boxes=Boxes(((0, 0, 10, 10),)))


def test_tools_are_registered_with_typed_args(registry):
    seg = registry.get("segment")
    assert seg.inputs["image"].type == "Image" and seg.output == "Mask" and seg.role == "perception"
    assert seg.args_schema()["properties"]["target"]["maxLength"] == 60
    assert registry.get("detect_faces").output == "Boxes"
    mfb = registry.get("mask_from_boxes")
    assert mfb.inputs["image"].required is False
    assert mfb.args_schema()["properties"]["shape"]["enum"] == ["box", "ellipse"]
    with pytest.raises(ValueError, match="at most 60"):
        seg(image=Image(np.zeros((8, 8, 3), np.uint8)), target="x" * 61)


def test_segment_alpha_matches_the_tool(photos, masks):
    assert np.array_equal(segment_alpha(photos["astronaut"], "face"), masks("astronaut", "face"))


def sharpness(pixels, where):
    """Laplacian variance over some pixels only."""
    return cv2.Laplacian(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), cv2.CV_64F)[where].var()


def test_cli_blurs_the_background_of_a_person(tmp_path, photos, masks):
    program = {"version": 1, "nodes": [
        {"id": "person", "tool": "segment", "args": {"image": "$input", "target": "person"}},
        {"id": "bg", "tool": "invert", "args": {"mask": "$person"}},
        {"id": "soft", "tool": "blur", "args": {"image": "$input", "mask": "$bg", "amount": 0.6}}],
        "output": "$soft"}  # fmt: skip
    path = tmp_path / "portrait.json"
    path.write_text(json.dumps(program))
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "banana.agent.cli", "run", str(path), "--input", "sample:astronaut", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result, source = Image.load(out).pixels, photos["astronaut"].pixels
    x0, y0, x1, y1 = ASTRONAUT_FACE
    face = (slice(y0, y1), slice(x0, x1))
    assert structural_similarity(result[face], source[face], channel_axis=2) >= 0.98
    far = cv2.erode((masks("astronaut", "person") < 0.05).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    assert far.mean() > 0.1
    assert sharpness(result, far) <= 0.5 * sharpness(source, far)
