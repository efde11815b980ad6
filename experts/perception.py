"""Perception tools: segment, detect, detect_faces, mask_from_boxes.

``segment`` routes a parsed target (see banana.experts.targets) to one implementation
through the expert manager, so a better expert for a kind (e.g. SAM on a GPU box)
can be added beside these without touching the tool. Masks are computed at most
1024 px on the long side and scaled back: every model here works far below that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import Field

from banana.experts import face_parts, openvocab, people, text_regions  # noqa: F401 - they register segment/detect experts
from banana.experts.checks import declared
from banana.experts.colour_regions import colour_regions
from banana.experts.faces import find_faces
from banana.experts.manager import Decision, Implementation, choose, implements
from banana.experts.matting import components, refine_edges
from banana.experts.sky import sky_region
from banana.experts.subject import subject_region
from banana.experts.targets import Target, cannot_find, parse_target, pick_box, pick_component
from banana.tools.spec import Resources, tool
from banana.tools.values import Boxes, Image, Mask

log = logging.getLogger(__name__)

WORK_SIDE = 1024
MIN_BOX_AREA = 0.002  # detect ignores regions smaller than this fraction of the picture
TargetPhrase = Annotated[str, Field(min_length=1, max_length=60)]


def _kind(kind: str) -> Callable[..., bool]:
    return lambda target, **_: target.kind == kind


def _found(mask: np.ndarray | None, target: Target, why: str) -> np.ndarray:
    if mask is None:
        raise ValueError(f"cannot find {target.phrase!r} in this picture ({why})")
    return mask


@implements("segment", "selfie-segmentation", applies=_kind("person"), cost=lambda **_: 40.0)
def _person(rgb: np.ndarray, target: Target) -> np.ndarray:
    return _found(people.person_mask(rgb), target, "no face and no body pose found")


@implements("segment", "face-mesh", applies=_kind("face"), cost=lambda **_: 30.0)
def _face(rgb: np.ndarray, target: Target) -> np.ndarray:
    return _found(people.face_mask(rgb), target, "no face found")


@implements("segment", "face-mesh-skin-colour", applies=_kind("skin"), cost=lambda **_: 200.0)
def _skin(rgb: np.ndarray, target: Target) -> np.ndarray:
    return _found(people.skin_mask(rgb), target, "no face found to learn the skin colour from")


@implements("segment", "face-mesh-hair-colour", applies=_kind("hair"), cost=lambda **_: 100.0)
def _hair(rgb: np.ndarray, target: Target) -> np.ndarray:
    return _found(people.hair_mask(rgb), target, "no face found, or nothing hair-like around it")


@implements("segment", "sky-colour-position", applies=_kind("sky"), cost=lambda **_: 30.0)
def _sky(rgb: np.ndarray, target: Target) -> np.ndarray:
    region = _found(sky_region(rgb), target, "no smooth blue or grey region along the top edge")
    return refine_edges(rgb, region.astype(np.float32))


@implements("segment", "saliency-grabcut", applies=_kind("subject"), cost=lambda **_: 400.0)
def _subject(rgb: np.ndarray, target: Target) -> np.ndarray:
    region = _found(subject_region(rgb), target, "nothing stands out from the rest")
    return refine_edges(rgb, region.astype(np.float32))


@implements("segment", "not-subject", applies=_kind("background"), cost=lambda **_: 400.0)
def _background(rgb: np.ndarray, target: Target) -> np.ndarray:
    """Everything but the people; in a picture without people, everything but the salient subject."""
    person = people.person_mask(rgb)
    if person is not None:
        return 1.0 - person
    region = _found(subject_region(rgb), target, "no person, and no subject stands out")
    return 1.0 - refine_edges(rgb, region.astype(np.float32))


@implements("segment", "colour-regions", applies=_kind("colour"), cost=lambda **_: 100.0)
def _colour(rgb: np.ndarray, target: Target) -> np.ndarray:
    regions = colour_regions(rgb, str(target.colour))
    if not regions:
        raise ValueError(f"cannot find {target.phrase!r}: nothing {target.colour} in this picture")
    if target.single and not target.pick:  # with a pick, segment_alpha chooses among them
        regions = regions[:1]
    region = np.zeros(rgb.shape[:2], np.float32)
    for r, _, _ in regions:
        region[r] = 1.0
    return refine_edges(rgb, region, radius=max(2, round(min(rgb.shape[:2]) / 128)))


def _working(image: Image) -> tuple[np.ndarray, float]:
    scale = min(1.0, WORK_SIDE / max(image.height, image.width))
    if scale == 1.0:
        return image.pixels, 1.0
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return cv2.resize(image.pixels, size, interpolation=cv2.INTER_AREA), scale


def _route(tool: str, parsed: Target) -> tuple[Implementation, Decision]:
    """The expert for a parsed target; an object noun with no open-vocabulary expert configured is refused by name."""
    try:
        return choose(tool, target=parsed)
    except LookupError:
        raise cannot_find(parsed.phrase, "(no open-vocabulary expert is configured)") from None


def segment_alpha(image: Image, target: str) -> np.ndarray:
    """The soft mask of a target phrase at the image's size; ValueError when it cannot be found."""
    parsed = parse_target(target)
    impl, decision = _route("segment", parsed)
    log.debug("segment %r: %s", target, decision.as_meta())
    rgb, scale = _working(image)
    alpha = impl.run(rgb, parsed)
    if parsed.pick:
        alpha = pick_component(alpha, parsed.pick)
    if scale != 1.0:
        alpha = cv2.resize(alpha, (image.width, image.height), interpolation=cv2.INTER_LINEAR)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


@tool(role="perception", resources=Resources(memory_mb=200), **declared("segment"), notes=(
    'targets are the nouns the user says, without the article ("the red car" -> "red car"); words for people (me, '
    'him, her, us, the guy, my friend) are "person"',
    'a position or size picks one of several: "person on the left", "cup on the right", "largest cup", "smallest '
    'cup"; a plural ("cups") is all of them; "one of the cups" is "largest cup"',
    'captions, watermarks and other writing are "text"; face parts are "eyes", "lips", "teeth", "eyebrows"',
))
def segment(image: Image, *, target: TargetPhrase) -> Mask:
    """Select a person, face, eyes, lips, teeth, brows, skin, hair, text, sky, background, main subject or colour ('the red car')."""
    return Mask(segment_alpha(image, target))


def _boxes(found: list[tuple[tuple[int, int, int, int], float]], label: str, image: Image) -> Boxes:
    return Boxes(tuple(b for b, _ in found), tuple(s for _, s in found), tuple(label for _ in found), (image.height, image.width))


@tool(role="identity", resources=Resources(memory_mb=20), **declared("detect_faces"), notes=(
    'hiding or anonymising faces: detect_faces, mask_from_boxes, then blur amount 1.0 (or pixelate when the user says pixelate)',
))
def detect_faces(image: Image) -> Boxes:
    """Find faces (mediapipe BlazeFace): pixel boxes, largest first; none is an empty list, not an error."""
    return _boxes([(f.box, f.score) for f in find_faces(image.pixels)], "face", image)


@tool(role="perception", resources=Resources(memory_mb=200), **declared("detect"))
def detect(image: Image, *, target: TargetPhrase) -> Boxes:
    """Boxes around faces, people, or any segment target's regions (colour regions: one per object), largest first."""
    parsed = parse_target(target)

    def found(boxes: list[tuple[tuple[int, int, int, int], float]], label: str) -> Boxes:
        return _boxes(pick_box(boxes, parsed.pick, (image.height, image.width)) if parsed.pick else boxes, label, image)

    if parsed.kind == "face":
        faces = find_faces(image.pixels)
        if not faces:
            raise ValueError(f"cannot find {target!r} in this picture (no face found)")
        return found([(f.box, f.score) for f in faces], "face")
    if parsed.kind == "colour":
        regions = colour_regions(image.pixels, str(parsed.colour), min_fraction=MIN_BOX_AREA)
        if not regions:
            raise ValueError(f"cannot find {target!r}: nothing {parsed.colour} in this picture")
        regions = regions[:1] if parsed.single and not parsed.pick else regions
        return found([(b, 1.0) for _, b, _ in regions], parsed.phrase)
    if parsed.kind == "object":  # an open-vocabulary detector, when one is configured
        impl, decision = _route("detect", parsed)
        log.debug("detect %r: %s", target, decision.as_meta())
        return found(impl.run(image.pixels, parsed), str(parsed.noun))
    alpha = segment_alpha(image, target)
    regions = components(alpha >= 0.5, min_area=max(1, round(MIN_BOX_AREA * alpha.size)))
    if not regions:
        raise cannot_find(target, "in this picture")
    return found([(b, float(alpha[r].mean())) for r, b, _ in regions], parsed.kind)


def _box_size(boxes: Boxes, image: Image | None) -> tuple[int, int]:
    if image is not None:
        return image.height, image.width
    if boxes.image_size is not None:
        return boxes.image_size
    raise ValueError("mask_from_boxes needs the picture's size: pass the image, or boxes that carry image_size (from detect)")


@tool(role="mask", **declared("mask_from_boxes"))
def mask_from_boxes(boxes: Boxes, image: Image | None = None, *, shape: Literal["box", "ellipse"] = "ellipse") -> Mask:
    """Fill boxes, or the ellipses inside them, as a mask with soft outer edges (e.g. faces to blur)."""
    h, w = _box_size(boxes, image)
    sy, sx = (h / boxes.image_size[0], w / boxes.image_size[1]) if boxes.image_size else (1.0, 1.0)
    alpha = np.zeros((h, w), np.float32)
    for x0, y0, x1, y1 in boxes.boxes:
        x0, x1, y0, y1 = x0 * sx, x1 * sx, y0 * sy, y1 * sy
        hard = np.zeros((h, w), np.uint8)
        if shape == "box":
            cv2.rectangle(hard, (round(x0), round(y0)), (round(x1) - 1, round(y1) - 1), 1, -1)
        else:
            centre, axes = (round((x0 + x1) / 2), round((y0 + y1) / 2)), (round((x1 - x0) / 2), round((y1 - y0) / 2))
            cv2.ellipse(hard, centre, axes, 0, 0, 360, 1, -1)
        feather = max(1.0, 0.05 * min(x1 - x0, y1 - y0))
        grown = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(feather) + 1,) * 2))
        soft = cv2.GaussianBlur(grown.astype(np.float32), (0, 0), feather / 2)
        alpha = np.maximum(alpha, np.maximum(hard.astype(np.float32), soft))
    return Mask(alpha)
