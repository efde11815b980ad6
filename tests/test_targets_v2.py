"""Catalogue v2 segment targets: face parts, text, and one instance picked by position or size, on real photos."""

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from banana.agent.samples import sample
from banana.experts.manager import choose
from banana.experts.perception import detect, segment
from banana.experts.targets import parse_target
from banana.tools.values import Image

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
ASTRONAUT_FACE = (175, 75, 280, 195)  # x0, y0, x1, y1 around Eileen Collins' face


def box_of(mask, threshold=0.5):
    ys, xs = np.nonzero(mask.alpha >= threshold)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(
    ("phrase", "kind", "pick", "noun"),
    [("the woman's eyes", "eyes", None, None), ("her lips", "lips", None, None), ("mouth", "lips", None, None),
     ("teeth", "teeth", None, None), ("eyebrows", "eyebrows", None, None), ("the watermark", "text", None, None),
     ("captions", "text", None, None), ("the person on the left", "person", "left", None),
     ("the largest face", "face", "largest", None),
     ("the left-most one in red", "colour", "left", None), ("the rightmost cup", "object", "right", "cup"),
     ("lamp post", "object", None, "lamp post"), ("the right eye", "eyes", "right", None),
     ("the face in the middle", "face", "center", None)],
)
def test_phrases(phrase, kind, pick, noun):
    t = parse_target(phrase)
    assert (t.kind, t.pick, t.noun) == (kind, pick, noun)


def test_two_positions_are_refused():
    with pytest.raises(ValueError, match="names top and left: pick one"):
        parse_target("the top left person")


def test_unknown_noun_without_open_vocabulary_says_how_to_enable_it(astronaut):
    with pytest.raises(ValueError, match=r"cannot find 'lamp post' \(no open-vocabulary expert is configured\).*BANANA_DETECTOR_WEIGHTS"):
        segment(image=astronaut, target="lamp post")
    with pytest.raises(ValueError, match="cannot find 'the cups'"):
        detect(image=astronaut, target="the cups")


@pytest.mark.parametrize("part", ["eyes", "lips", "teeth", "eyebrows"])
def test_face_parts_lie_inside_the_face_and_in_order(astronaut, part):
    mask = segment(image=astronaut, target=part)
    x0, y0, x1, y1 = box_of(mask)
    fx0, fy0, fx1, fy1 = ASTRONAUT_FACE
    assert fx0 <= x0 and x1 <= fx1 and fy0 <= y0 and y1 <= fy1
    assert 40 < (mask.alpha >= 0.5).sum() < 0.05 * (fx1 - fx0) * (fy1 - fy0)
    assert choose("segment", target=parse_target(part))[1].chosen == "face-mesh-parts"


def test_face_parts_are_where_faces_have_them(astronaut):
    centre_y = {p: (box_of(segment(image=astronaut, target=p))[1] + box_of(segment(image=astronaut, target=p))[3]) / 2
                for p in ("eyebrows", "eyes", "teeth", "lips")}
    assert centre_y["eyebrows"] < centre_y["eyes"] < centre_y["lips"]
    teeth, lips = segment(image=astronaut, target="teeth").alpha == 1, segment(image=astronaut, target="lips").alpha == 1
    assert not (teeth & lips).any()  # lips are the ring around the opening, teeth inside it
    lab = cv2.cvtColor(astronaut.pixels, cv2.COLOR_RGB2Lab).astype(float)
    assert lab[teeth, 0].mean() > lab[lips, 0].mean()  # teeth are lighter than lips


def test_closed_mouth_has_no_teeth(photos):
    with pytest.raises(ValueError, match=r"cannot find 'teeth' in this picture .*closed mouth"):
        segment(image=photos["grace_hopper"], target="teeth")


def two_faces() -> Image:
    """Grace Hopper, and beside her a smaller copy: two faces of different sizes side by side."""
    big = sample("grace_hopper").pixels
    small = cv2.resize(big, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    right = np.zeros_like(big)
    right[big.shape[0] - small.shape[0]:, : small.shape[1]] = small
    return Image(np.concatenate([big, right], axis=1))


def test_positional_pick_among_faces():
    photo = two_faces()
    whole = segment(image=photo, target="faces")
    left, right = segment(image=photo, target="the face on the left"), segment(image=photo, target="the rightmost face")
    middle_x = photo.width / 2
    assert box_of(left)[2] < middle_x <= box_of(right)[0]
    assert np.array_equal(segment(image=photo, target="the largest face").alpha, left.alpha)
    assert np.array_equal(segment(image=photo, target="the smallest face").alpha, right.alpha)
    np.testing.assert_array_equal(np.maximum(left.alpha, right.alpha) > 0.5, whole.alpha > 0.5)  # a split, nothing lost
    boxes = detect(image=photo, target="the face on the right")
    assert len(boxes) == 1 and boxes.boxes[0][0] >= middle_x
    eye = segment(image=photo, target="the left eye")
    assert box_of(eye)[2] < box_of(segment(image=photo, target="eyes"))[2]


def watermarked(text="BANANA STOCK", at=(60, 330)):
    photo = sample("coffee").pixels.copy()
    font = ImageFont.truetype(str(FONT), 36)
    picture = PILImage.fromarray(photo)
    draw = ImageDraw.Draw(picture)
    draw.text(at, text, font=font, fill=(255, 255, 255))
    return Image(np.asarray(picture)), draw.textbbox(at, text, font=font), photo


def edge_energy(rgb):
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)).mean())


def test_text_target_finds_a_drawn_caption():
    photo, drawn, _ = watermarked()
    mask = segment(image=photo, target="the watermark")
    assert iou(box_of(mask), drawn) > 0.6
    assert mask.alpha[: drawn[1] - 30].max() == 0.0  # nothing above it (the cup has no text)
    assert choose("segment", target=parse_target("text"))[1].chosen == "ppocr-text-detector"
    boxes = detect(image=photo, target="text")
    assert len(boxes) == 1 and iou(boxes.boxes[0], drawn) > 0.6


def test_no_text_is_refused(photos):
    with pytest.raises(ValueError, match=r"cannot find 'text' in this picture \(the text detector found no text\)"):
        segment(image=photos["coffee"], target="text")


def test_remove_text_lowers_its_edge_energy_and_leaves_far_pixels_alone(registry):
    photo, (x0, y0, x1, y1), clean = watermarked()
    mask = registry.get("segment")(image=photo, target="caption")
    out = registry.get("remove")(image=photo, mask=mask)
    area = (slice(y0, y1), slice(x0, x1))
    before, after, original = (edge_energy(p[area]) for p in (photo.pixels, out.pixels, clean))
    assert after < 0.5 * before  # the letters' edges are gone
    assert after < 1.5 * original + 2.0  # about as busy as the photo there was before the text
    far = mask.alpha == 0
    far[max(0, y0 - 40): y1 + 40, max(0, x0 - 40): x1 + 40] = False
    np.testing.assert_array_equal(out.pixels[far], photo.pixels[far])
