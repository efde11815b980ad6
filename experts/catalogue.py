"""Banana's built-in tools, registered through the ``banana.tools`` entry point ``core``."""

from banana.experts.background import blur, replace_background
from banana.experts.captions import add_text
from banana.experts.enhance import dehaze, denoise, enhance, sharpen
from banana.experts.generative import edit, insert
from banana.experts.geometry import border, crop, flip, rotate, straighten
from banana.experts.identity import lock_identity, restore_identity
from banana.experts.masks import combine, grow, invert
from banana.experts.objects import recolor, remove, replace
from banana.experts.perception import detect, detect_faces, mask_from_boxes, segment
from banana.experts.pixelate import pixelate
from banana.experts.region import region
from banana.experts.restore import upscale
from banana.experts.retouch import retouch
from banana.experts.style import stylize
from banana.experts.tone import adjust

__all__ = [
    "add_text",
    "adjust",
    "blur",
    "border",
    "combine",
    "crop",
    "dehaze",
    "denoise",
    "detect",
    "detect_faces",
    "edit",
    "enhance",
    "flip",
    "grow",
    "insert",
    "invert",
    "lock_identity",
    "mask_from_boxes",
    "pixelate",
    "recolor",
    "region",
    "remove",
    "replace",
    "replace_background",
    "restore_identity",
    "retouch",
    "rotate",
    "segment",
    "sharpen",
    "straighten",
    "stylize",
    "upscale",
]
