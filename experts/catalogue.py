"""Banana's built-in tools, registered through the ``banana.tools`` entry point ``core``."""

from banana.experts.background import blur, replace_background
from banana.experts.generative import edit, insert
from banana.experts.geometry import crop
from banana.experts.identity import lock_identity, restore_identity
from banana.experts.masks import combine, grow, invert
from banana.experts.objects import recolor, remove, replace
from banana.experts.perception import detect, detect_faces, mask_from_boxes, segment
from banana.experts.region import region
from banana.experts.restore import upscale
from banana.experts.style import stylize
from banana.experts.tone import adjust

__all__ = [
    "adjust",
    "blur",
    "combine",
    "crop",
    "detect",
    "detect_faces",
    "edit",
    "grow",
    "insert",
    "invert",
    "lock_identity",
    "mask_from_boxes",
    "recolor",
    "region",
    "remove",
    "replace",
    "replace_background",
    "restore_identity",
    "segment",
    "stylize",
    "upscale",
]
