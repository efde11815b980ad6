"""The ``region`` tool: where something new goes ("on the left", "on the table", "around the cup") as a Mask.

A position is a box at a side or corner of the picture; a relation is a box placed
against a reference box (the first one given: ``detect`` lists the largest first).
Regions beside a reference share its ground line (bottom edge), because things
added next to something usually stand on the same floor. The mask is the box with
softly feathered outer edges, drawn by ``mask_from_boxes`` (one way to draw boxes).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from banana.experts.perception import mask_from_boxes
from banana.tools.spec import tool
from banana.tools.values import Boxes, Image, Mask

__all__ = ["region"]

Position = Literal["left", "right", "top", "bottom", "center", "top-left", "top-right", "bottom-left", "bottom-right"]
Relation = Literal["left-of", "right-of", "above", "below", "on", "around"]
Box = tuple[float, float, float, float]
POSITION_SIZE = 0.35  # a position's box, as a fraction of the picture's sides
RELATION_SIZE = 1.0  # a relation's box, as a fraction of the reference box's sides
GAP = 0.05  # space between a reference and a region beside it, as a fraction of the reference's size
MIN_KEPT = 0.1  # a region cut by the picture's edge to less than this fraction of itself is refused


def position_box(height: int, width: int, position: Position, size: float) -> Box:
    """A box of ``size`` times the picture's sides, against the named edges, centred along the others."""
    bw, bh = size * width, size * height
    x0 = 0.0 if "left" in position else width - bw if "right" in position else (width - bw) / 2
    y0 = 0.0 if "top" in position else height - bh if "bottom" in position else (height - bh) / 2
    return x0, y0, x0 + bw, y0 + bh


def relation_box(ref: Box, relation: Relation, size: float) -> Box:
    """A box placed against ``ref``; ``around`` returns the grown box (the caller cuts the reference out)."""
    x0, y0, x1, y1 = ref
    bw, bh = x1 - x0, y1 - y0
    w, h = size * bw, size * bh
    cx = (x0 + x1) / 2
    if relation == "left-of":
        return x0 - GAP * bw - w, y1 - h, x0 - GAP * bw, y1
    if relation == "right-of":
        return x1 + GAP * bw, y1 - h, x1 + GAP * bw + w, y1
    if relation == "above":
        return cx - w / 2, y0 - GAP * bh - h, cx + w / 2, y0 - GAP * bh
    if relation == "below":
        return cx - w / 2, y1 + GAP * bh, cx + w / 2, y1 + GAP * bh + h
    if relation == "on":  # standing on the reference's top surface, sunk into it a little
        side = 0.5 * w
        return cx - side / 2, y0 + 0.1 * bh - side, cx + side / 2, y0 + 0.1 * bh
    pad = 0.25 * size * max(bw, bh)
    return x0 - pad, y0 - pad, x1 + pad, y1 + pad


def _clip(box: Box, height: int, width: int, what: str) -> Box:
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
    area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    kept = max(0.0, cx1 - cx0) * max(0.0, cy1 - cy0)
    if area <= 0 or kept < MIN_KEPT * area or kept < 1:
        raise ValueError(f"region: {what} falls outside the picture ({width}x{height}); pick another relation or position")
    return cx0, cy0, cx1, cy1


def _reference(boxes: Boxes, image: Image) -> Box:
    if not len(boxes):
        raise ValueError("region: the boxes are empty (detect found nothing), so there is nothing to place against")
    sy, sx = (image.height / boxes.image_size[0], image.width / boxes.image_size[1]) if boxes.image_size else (1.0, 1.0)
    x0, y0, x1, y1 = boxes.boxes[0]
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy


@tool(role="mask", one_of=[["position", "relation"]])
def region(
    image: Image,
    boxes: Boxes | None = None,
    *,
    position: Position | None = None,
    relation: Relation | None = None,
    size: Annotated[float, Field(gt=0, le=2)] | None = None,
) -> Mask:
    """Where something goes: a side or corner of the picture, or left-of/right-of/above/below/on/around the first box."""
    h, w = image.height, image.width
    if relation is None:
        if boxes is not None:
            raise ValueError("region: boxes are only used with a relation (left-of, right-of, above, below, on, around)")
        assert position is not None  # one_of: exactly one of position / relation
        if size is not None and size > 1:
            raise ValueError(f"region: size {size} for a position is a fraction of the picture, at most 1")
        box = position_box(h, w, position, POSITION_SIZE if size is None else size)
        return mask_from_boxes.fn(Boxes((box,), image_size=(h, w)), image, shape="box")
    if boxes is None:
        raise ValueError(f"region: relation {relation!r} needs boxes to place against (e.g. from detect)")
    ref = _reference(boxes, image)
    box = _clip(relation_box(ref, relation, RELATION_SIZE if size is None else size), h, w, f"{relation} the box {[round(v) for v in ref]}")
    mask = mask_from_boxes.fn(Boxes((box,), image_size=(h, w)), image, shape="box")
    if relation == "around":
        inner = mask_from_boxes.fn(Boxes((ref,), image_size=(h, w)), image, shape="box")
        return Mask(mask.alpha * (1.0 - inner.alpha))
    return mask
