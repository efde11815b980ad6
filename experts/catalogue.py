"""Banana's built-in tools, registered through the ``banana.tools`` entry point ``core``."""

from experts.background import blur
from experts.geometry import crop
from experts.masks import combine, grow, invert
from experts.tone import adjust

__all__ = ["adjust", "blur", "combine", "crop", "grow", "invert"]
