"""Identity: lock the faces of a picture, measure how far an edit moved them, and bring them back.

``lock_identity`` keeps, per face, its box, face-mesh landmarks, dlib embedding and
the pixels around it. ``restore_identity`` finds each locked face in the edited
picture; where the embedding drifted past the threshold it clones the locked face
back in at the same place (seamless cloning, or a feathered paste when cloning's
colour matching drifts the identity more). Pixels away from the faces are not touched.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.embeddings import distance, embedder
from banana.experts.faces import FACE_OVAL, face_landmarks, find_faces, landmarks_in
from banana.tools.spec import Resources, tool
from banana.tools.values import Face, Identity, Image

CROP_MARGIN = 0.35  # of the face box on each side: context for cloning, and room for the oval's forehead
MIN_IOU = 0.3  # a face in the edited picture is the locked one when their boxes overlap this much


def crop_box(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region kept around a face box, clipped to a picture of ``size`` (height, width)."""
    x0, y0, x1, y1 = box
    mx, my = round((x1 - x0) * CROP_MARGIN), round((y1 - y0) * CROP_MARGIN)
    return max(0, x0 - mx), max(0, y0 - my), min(size[1], x1 + mx), min(size[0], y1 + my)


_FACES: OrderedDict[str, list[Face]] = OrderedDict()  # picture content hash -> its faces (a chat re-checks the same input each turn)
_FACES_LOCK = threading.Lock()
FACES_REMEMBERED = 8


def faces_of(image: Image) -> list[Face]:
    """Every face with its embedding, landmarks (when the mesh finds it) and surrounding pixels, largest first.

    Remembered for the last few pictures by content: the critic asks again about an unchanged input on every turn.
    """
    key = image.content_hash
    with _FACES_LOCK:
        if key in _FACES:
            _FACES.move_to_end(key)
            return list(_FACES[key])
    faces = _find_faces_of(image)
    with _FACES_LOCK:
        _FACES[key] = faces
        while len(_FACES) > FACES_REMEMBERED:
            _FACES.popitem(last=False)
    return list(faces)


def _find_faces_of(image: Image) -> list[Face]:
    rgb = image.pixels
    found = find_faces(rgb)
    meshes = face_landmarks(rgb) if found else []
    faces = []
    for f in found:
        lm = landmarks_in(meshes, f.box)
        x0, y0, x1, y1 = crop_box(f.box, (image.height, image.width))
        faces.append(
            Face(
                box=f.box,
                embedding=tuple(float(v) for v in embedder().embed(rgb, f.box)),
                landmarks=() if lm is None else tuple((round(float(x), 2), round(float(y), 2)) for x, y in lm),
                crop=np.ascontiguousarray(rgb[y0:y1, x0:x1]),
            )
        )
    return faces


@tool(role="identity", resources=Resources(memory_mb=150), **declared("lock_identity"), notes=(
    'keeping a face recognisable through a heavy edit: lock_identity on the input first, restore_identity on the edited picture last',
))
def lock_identity(image: Image) -> Identity:
    """Remember the faces (embeddings, landmarks, pixels) so restore_identity can bring them back after an edit."""
    return Identity(tuple(faces_of(image)), (image.height, image.width))


def _embeddings(x: Image | Identity, which: str) -> list[np.ndarray]:
    faces = x.faces if isinstance(x, Identity) else tuple(faces_of(x))
    if not faces:
        raise ValueError(f"identity_distance: no face in the {which} picture")
    return [np.asarray(f.embedding) for f in faces]


def identity_distance(a: Image | Identity, b: Image | Identity) -> float:
    """Mean, over the faces of ``a``, of the embedding distance to the closest face of ``b`` (same person < 0.6)."""
    ea, eb = _embeddings(a, "first"), _embeddings(b, "second")
    return float(np.mean([min(distance(x, y) for y in eb) for x in ea]))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _blend_mask(face: Face, size: tuple[int, int]) -> np.ndarray:
    """uint8 0/255 mask of the face inside its crop (locked-picture pixels): the mesh oval, else the box's ellipse."""
    h, w = face.crop.shape[:2] if face.crop is not None else (0, 0)
    x0, y0 = crop_box(face.box, size)[:2]
    m = np.zeros((h, w), np.uint8)
    if face.landmarks:
        oval = np.asarray(face.landmarks, np.float32)[list(FACE_OVAL)] - (x0, y0)
        cv2.fillPoly(m, [np.round(oval).astype(np.int32)], 255)
    else:
        bx0, by0, bx1, by1 = face.box
        centre = ((bx0 + bx1) // 2 - x0, (by0 + by1) // 2 - y0)
        cv2.ellipse(m, centre, ((bx1 - bx0) // 2, (by1 - by0) // 2), 0, 0, 360, 255, -1)
    grow = max(3, round(0.04 * (face.box[2] - face.box[0]))) | 1
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    m[:1], m[-1:], m[:, :1], m[:, -1:] = 0, 0, 0, 0  # seamlessClone needs a margin inside its source
    return m


def _paste(rgb: np.ndarray, face: Face, size: tuple[int, int], scale: tuple[float, float]) -> list[tuple[str, np.ndarray]]:
    """Candidate pictures with the locked face put back at its place (scaled when the picture was resized)."""
    assert face.crop is not None
    x0, y0, x1, y1 = crop_box(face.box, size)
    sx, sy = scale
    tx0, ty0 = round(x0 * sx), round(y0 * sy)
    tw, th = max(2, round((x1 - x0) * sx)), max(2, round((y1 - y0) * sy))
    H, W = rgb.shape[:2]
    src = cv2.resize(face.crop, (tw, th), interpolation=cv2.INTER_LINEAR) if (tw, th) != face.crop.shape[1::-1] else face.crop
    mask = cv2.resize(_blend_mask(face, size), (tw, th), interpolation=cv2.INTER_NEAREST)
    src, mask = src[: H - ty0, : W - tx0], mask[: H - ty0, : W - tx0]  # rounding may overshoot by a pixel
    th, tw = mask.shape
    if not mask.any():
        return []
    region = np.zeros((H, W), np.uint8)
    region[ty0 : ty0 + th, tx0 : tx0 + tw] = mask
    bx, by, bw, bh = cv2.boundingRect(mask)
    centre = (tx0 + bx + bw // 2, ty0 + by + bh // 2)
    out = []
    inside = region > 0
    try:
        bgr = cv2.seamlessClone(src[:, :, ::-1].copy(), rgb[:, :, ::-1].copy(), mask, centre, cv2.NORMAL_CLONE)
    except cv2.error:  # a face at the picture's edge leaves cloning no border to solve from
        bgr = None
    if bgr is not None:
        cloned = rgb.copy()
        cloned[inside] = bgr[:, :, ::-1][inside]
        out.append(("seamless", cloned))
    feather = max(1.0, 0.03 * tw)
    alpha = np.zeros((H, W), np.float32)
    alpha[ty0 : ty0 + th, tx0 : tx0 + tw] = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), feather)
    alpha[~inside] = 0.0
    placed = rgb.astype(np.float32).copy()
    placed[ty0 : ty0 + th, tx0 : tx0 + tw] = src
    mixed = np.round(placed * alpha[..., None] + rgb.astype(np.float32) * (1.0 - alpha[..., None])).astype(np.uint8)
    mixed[~inside] = rgb[~inside]
    out.append(("feathered", mixed))
    return out


@tool(role="identity", resources=Resources(memory_mb=150), **declared("restore_identity"))
def restore_identity(
    image: Image,
    identity: Identity,
    *,
    threshold: Annotated[float, Field(gt=0.0, le=2.0)] = 0.35,
) -> Image:
    """Bring locked faces back where an edit changed who they look like (embedding distance above threshold)."""
    h0, w0 = identity.image_size
    sx, sy = image.width / w0, image.height / h0
    if abs(sx - sy) > 0.01 * max(sx, sy):
        raise ValueError(
            f"restore_identity: the picture is {image.width}x{image.height} but the identity was locked on {w0}x{h0} "
            "(another shape): lock the identity after cropping, or restore before it"
        )
    rgb = image.pixels
    report: list[dict[str, Any]] = []
    for i, face in enumerate(identity.faces):
        locked = np.asarray(face.embedding)
        expected = tuple(v * s for v, s in zip(face.box, (sx, sy, sx, sy), strict=True))
        found = [f for f in find_faces(rgb) if _iou(f.box, expected) >= MIN_IOU]
        before = distance(locked, embedder().embed(rgb, found[0].box)) if found else float("inf")
        entry: dict[str, Any] = {"face": i, "distance": round(before, 4) if found else None, "restored": False}
        if before > threshold and face.crop is not None:
            where = tuple(round(v) for v in expected)
            candidates = _paste(rgb, face, identity.image_size, (sx, sy))
            scored = [(distance(locked, embedder().embed(c, where)), name, c) for name, c in candidates]
            if scored:
                # seamless cloning blends best; take it unless its colour matching moved the identity past the threshold
                after, name, rgb = next((s for s in scored if s[0] <= threshold), min(scored, key=lambda s: s[0]))
                entry.update(restored=True, blend=name, distance_after=round(after, 4))
        report.append(entry)
    return Image(rgb, meta={**image.meta, "restore_identity": report})
