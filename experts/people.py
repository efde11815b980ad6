"""Person, face, skin and hair masks from mediapipe's person and face-mesh models plus colour models.

Each function returns a soft H x W float32 mask, or None when the picture does not
show what was asked for (so the caller can say so instead of returning a wrong mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from banana.experts.colour_model import ColourModel, to_lab
from banana.experts.faces import (
    FACE_OVAL,
    LEFT_BROW,
    LEFT_EYE,
    LIPS_OUTER,
    RIGHT_BROW,
    RIGHT_EYE,
    face_landmarks,
    find_faces,
    has_pose,
    person_alpha,
)
from banana.experts.matting import components, refine_edges, touching

MIN_PERSON_PART = 0.005  # selfie-segmentation specks smaller than this fraction of the picture are dropped


def _disk(diameter: float) -> np.ndarray:
    d = max(3, int(diameter) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


@dataclass(frozen=True)
class Head:
    """One face as the face mesh sees it."""

    landmarks: np.ndarray  # (468, 2) pixel coordinates

    def polygon(self, indices: tuple[int, ...], shape: tuple[int, int]) -> np.ndarray:
        m = np.zeros(shape, np.uint8)
        cv2.fillPoly(m, [np.round(self.landmarks[list(indices)]).astype(np.int32)], 1)
        return m.astype(bool)

    @property
    def box(self) -> tuple[float, float, float, float]:
        pts = self.landmarks[list(FACE_OVAL)]
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def row(self, indices: tuple[int, ...], top: bool = False) -> int:
        """Mean (or, with ``top``, smallest) y of some landmarks."""
        ys = self.landmarks[list(indices), 1]
        return int(ys.min() if top else ys.mean())

    def oval(self, shape: tuple[int, int]) -> np.ndarray:
        return self.polygon(FACE_OVAL, shape)

    def features(self, shape: tuple[int, int]) -> np.ndarray:
        """Eyes, brows and lips, grown a little: not skin, whatever their colour."""
        m = np.zeros(shape, bool)
        for part in (LEFT_EYE, RIGHT_EYE, LEFT_BROW, RIGHT_BROW, LIPS_OUTER):
            m |= self.polygon(part, shape)
        return cv2.dilate(m.astype(np.uint8), _disk(self.width * 0.05)).astype(bool)

    def skin_model(self, lab: np.ndarray) -> ColourModel:
        shape = lab.shape[:2]
        return ColourModel.fit(lab[self.oval(shape) & ~self.features(shape)])


def heads(rgb: np.ndarray) -> list[Head]:
    return [Head(lm) for lm in face_landmarks(rgb)]


def person_region(rgb: np.ndarray) -> np.ndarray | None:
    """Boolean person mask, or None when no face and no body pose is seen.

    Selfie segmentation alone calls a cat a person; a face or a pose must confirm it.
    """
    if not find_faces(rgb) and not has_pose(rgb):
        return None
    binary = person_alpha(rgb) >= 0.5
    kept = np.zeros_like(binary)
    for region, _, _ in components(binary, min_area=max(1, round(MIN_PERSON_PART * binary.size))):
        kept |= region
    return kept if kept.any() else None


def person_mask(rgb: np.ndarray) -> np.ndarray | None:
    region = person_region(rgb)
    return None if region is None else refine_edges(rgb, region.astype(np.float32))


def face_mask(rgb: np.ndarray) -> np.ndarray | None:
    """Face-mesh ovals (brow to chin); an ellipse in the detector's box where the mesh fails (profiles)."""
    shape = rgb.shape[:2]
    region = np.zeros(shape, np.uint8)
    found = heads(rgb)
    for head in found:
        region |= head.oval(shape).astype(np.uint8)
    if not found:
        for face in find_faces(rgb):
            x0, y0, x1, y1 = face.box
            cv2.ellipse(region, ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 1, -1)
    if not region.any():
        return None
    return refine_edges(rgb, region.astype(np.float32), radius=max(2, round(min(shape) / 128)))


def _hair_region(head: Head, lab: np.ndarray, person: np.ndarray, skin: ColourModel) -> np.ndarray:
    """Hair of one head: the part of the person around the face oval that matches the colour at the temples."""
    shape = lab.shape[:2]
    x0, y0, x1, _ = head.box
    zone = np.zeros(shape, np.uint8)
    centre = (round((x0 + x1) / 2), round(y0 + 0.35 * head.height))
    cv2.ellipse(zone, centre, (round(0.8 * head.width), round(0.8 * head.height)), 0, 0, 360, 1, -1)
    oval = cv2.dilate(head.oval(shape).astype(np.uint8), _disk(head.width * 0.02)).astype(bool)
    zone_b = zone.astype(bool) & person & ~oval
    brow, eyes = head.row(LEFT_BROW + RIGHT_BROW, top=True), head.row(LEFT_EYE + RIGHT_EYE)
    below_brow = np.zeros(shape, bool)
    below_brow[brow:] = True
    zone_b &= ~(below_brow & (skin.distance(lab) < 3.0))  # ears and neck are skin, not hair
    # Seeds at the temples: hats and backdrops rarely reach there, hair almost always does.
    ring = cv2.dilate(head.oval(shape).astype(np.uint8), _disk(head.width * 0.25)).astype(bool)
    temples = np.zeros(shape, bool)
    temples[max(0, round(brow - 0.15 * head.height)) : eyes] = True
    seeds = zone_b & ring & temples
    if seeds.sum() < max(10, 0.005 * head.width * head.height):
        return np.zeros(shape, bool)
    hair = ColourModel.fit(lab[seeds], lightness_weight=0.3)
    region = touching(zone_b & (hair.distance(lab) < 3.5), seeds)
    return region if region.sum() >= 0.03 * head.width * head.height else np.zeros(shape, bool)


def _hair(found: list[Head], person: np.ndarray | None, lab: np.ndarray) -> np.ndarray | None:
    if not found or person is None:
        return None
    region = np.zeros(lab.shape[:2], bool)
    for head in found:
        region |= _hair_region(head, lab, person, head.skin_model(lab))
    return region if region.any() else None


def hair_mask(rgb: np.ndarray) -> np.ndarray | None:
    """Hair around each face; a hat of the hair's colour is taken for hair, hair below the chin is missed."""
    region = _hair(heads(rgb), person_region(rgb), to_lab(rgb))
    return None if region is None else refine_edges(rgb, region.astype(np.float32))


def skin_mask(rgb: np.ndarray) -> np.ndarray | None:
    """Skin of the people in the picture: the face (less eyes, brows, lips) and whatever on them matches its colour."""
    found = heads(rgb)
    if not found:
        return None
    shape = rgb.shape[:2]
    lab = to_lab(rgb)
    person = person_region(rgb)
    face, body = np.zeros(shape, bool), np.zeros(shape, bool)
    for head in found:
        face |= head.oval(shape) & ~head.features(shape)
        if person is not None:
            body |= person & (head.skin_model(lab).distance(lab) < 3.0)
    body = cv2.morphologyEx(body.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    region = face | body
    hair = _hair(found, person, lab)
    if hair is not None:
        region &= ~hair
    return refine_edges(rgb, region.astype(np.float32), radius=max(2, round(min(shape) / 128)))
