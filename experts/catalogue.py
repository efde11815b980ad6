"""Banana's built-in tools, registered through the ``banana.tools`` entry point ``core``."""

from experts.background import blur
from experts.geometry import crop
from experts.identity import lock_identity, restore_identity
from experts.masks import combine, grow, invert
from experts.perception import detect, detect_faces, mask_from_boxes, segment
from experts.tone import adjust

__all__ = [
    "adjust",
    "blur",
    "combine",
    "crop",
    "detect",
    "detect_faces",
    "grow",
    "invert",
    "lock_identity",
    "mask_from_boxes",
    "restore_identity",
    "segment",
]
