"""Identity on real photos with dlib's packaged face embedding: lock, measure, restore."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from banana.experts.identity import crop_box, identity_distance, lock_identity, restore_identity
from banana.experts.tone import adjust
from banana.tools.values import Identity, Image

FACE = (slice(60, 180), slice(170, 285))  # the astronaut's face, rows then columns


@pytest.fixture(scope="session")
def locked(photos) -> Identity:
    return lock_identity(image=photos["astronaut"])


@pytest.fixture(scope="session")
def face_swapped(photos) -> Image:
    """The astronaut with Grace Hopper's face pasted over hers: an edit that lost the identity."""
    px = photos["astronaut"].pixels.copy()
    px[FACE] = cv2.resize(photos["grace_hopper"].pixels[128:329, 166:366], (115, 120), interpolation=cv2.INTER_AREA)
    return Image(px)


def test_lock_identity_keeps_box_landmarks_embedding_and_pixels(locked, photos):
    assert locked.image_size == (512, 512) and len(locked.faces) == 1
    face = locked.faces[0]
    assert len(face.embedding) == 128 and 1.0 < np.linalg.norm(face.embedding) < 2.0
    assert len(face.landmarks) == 468
    x0, y0, x1, y1 = crop_box(face.box, locked.image_size)
    assert np.array_equal(face.crop, photos["astronaut"].pixels[y0:y1, x0:x1])


def test_identity_survives_a_file_round_trip(locked, tmp_path):
    again = Identity.load(locked.save(tmp_path / "id.json"))
    assert identity_distance(again, locked) < 1e-4
    assert np.array_equal(again.faces[0].crop, locked.faces[0].crop)


def test_distance_separates_people_and_tolerates_edits(photos, locked):
    assert identity_distance(photos["astronaut"], photos["grace_hopper"]) > 0.6
    adjusted = adjust(image=photos["astronaut"], brightness=0.1, contrast=0.1, warmth=0.2)
    assert identity_distance(locked, adjusted) < 0.3
    assert identity_distance(locked, photos["astronaut"]) < 1e-6


def test_distance_without_a_face_says_which(photos, locked):
    with pytest.raises(ValueError, match="no face in the second picture"):
        identity_distance(locked, photos["coffee"])
    with pytest.raises(ValueError, match="no face in the first picture"):
        identity_distance(photos["chelsea"], locked)


def test_restore_brings_a_swapped_face_back(locked, face_swapped, photos):
    assert identity_distance(locked, face_swapped) > 0.6
    out = restore_identity(image=face_swapped, identity=locked)
    assert identity_distance(locked, out) < 0.35
    (report,) = out.meta["restore_identity"]
    assert report["restored"] and report["distance"] > 0.6 and report["distance_after"] < 0.35
    x0, y0, x1, y1 = crop_box(locked.faces[0].box, locked.image_size)
    away = np.ones((512, 512), bool)
    away[y0:y1, x0:x1] = False
    assert np.array_equal(out.pixels[away], face_swapped.pixels[away])


def test_restore_leaves_a_kept_identity_alone(locked, photos):
    adjusted = adjust(image=photos["astronaut"], brightness=0.1)
    out = restore_identity(image=adjusted, identity=locked)
    assert np.array_equal(out.pixels, adjusted.pixels)
    assert out.meta["restore_identity"][0]["restored"] is False


def test_restore_on_a_resized_edit(locked, face_swapped):
    bigger = Image(cv2.resize(face_swapped.pixels, (1024, 1024), interpolation=cv2.INTER_CUBIC))
    out = restore_identity(image=bigger, identity=locked)
    assert out.pixels.shape == (1024, 1024, 3)
    assert out.meta["restore_identity"][0]["restored"]
    assert identity_distance(locked, out) < 0.35
    assert np.array_equal(out.pixels[600:], bigger.pixels[600:])


def test_restore_refuses_another_shape(locked, photos):
    with pytest.raises(ValueError, match="another shape"):
        restore_identity(image=Image(photos["astronaut"].pixels[:, :300]), identity=locked)


def test_a_picture_without_faces_locks_nothing_and_restores_nothing(photos):
    nothing = lock_identity(image=photos["coffee"])
    assert nothing.faces == ()
    out = restore_identity(image=photos["coffee"], identity=nothing)
    assert np.array_equal(out.pixels, photos["coffee"].pixels)


def test_threshold_is_bounded(registry, locked, photos):
    spec = registry.get("restore_identity")
    assert spec.args_schema()["properties"]["threshold"]["default"] == 0.35
    with pytest.raises(ValueError, match="greater than 0"):
        spec(image=photos["astronaut"], identity=locked, threshold=0)


def test_faces_of_a_picture_are_remembered_by_content(photos):
    """The critic asks about the same unchanged input every turn: the second answer is the first, not a new search."""
    from banana.experts import identity
    from banana.tools.values import Image

    picture = Image(photos["astronaut"].pixels.copy())
    first = identity.faces_of(picture)
    again = identity.faces_of(Image(photos["astronaut"].pixels.copy()))  # another object, same content
    assert again == first and again is not first
    assert all(a is b for a, b in zip(again, first, strict=True))  # the same Face objects: nothing was recomputed
    changed = Image(np.ascontiguousarray(photos["astronaut"].pixels[:, ::-1]))
    assert identity.faces_of(changed)[0].box != first[0].box
