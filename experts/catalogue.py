"""Banana's built-in tools, registered through the ``banana.tools`` entry point ``core``."""

from experts.background import blur, replace_background
from experts.geometry import crop
from experts.identity import lock_identity, restore_identity
from experts.masks import combine, grow, invert
from experts.objects import recolor, remove, replace
from experts.perception import detect, detect_faces, mask_from_boxes, segment
from experts.restore import upscale
from experts.style import stylize
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
    "recolor",
    "remove",
    "replace",
    "replace_background",
    "restore_identity",
    "segment",
    "stylize",
    "upscale",
]
