"""Captions: text drawn onto the picture with matplotlib's bundled DejaVu Sans Bold (no font download, same on every machine)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from pydantic import AfterValidator, Field

from banana.experts.checks import declared
from banana.experts.colors import parse_color
from banana.experts.imaging import luminance
from banana.tools.spec import tool
from banana.tools.values import Image

Position = Literal["top", "bottom", "center", "top-left", "top-right", "bottom-left", "bottom-right"]
MARGIN = 0.04  # of the shorter side, between the text and the picture's edge
MAX_WIDTH = 0.92  # of the picture's width that a line may take


def _printable(text: str) -> str:
    text = text.strip()
    if not text:
        raise ValueError("text is empty")
    if not text.isprintable():
        raise ValueError("text must be printable characters on one line (no control characters or line breaks)")
    return text


Caption = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_printable)]


@cache
def font_file() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap to ``width`` pixels (a single word wider than that stays on its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def layout(draw: ImageDraw.ImageDraw, text: str, height: int, width: int, size: float) -> tuple[ImageFont.FreeTypeFont, str]:
    """The font and wrapped text: at most three lines, smaller type when the words still do not fit."""
    px = max(8, round(size * height))
    while True:
        font = ImageFont.truetype(str(font_file()), px)
        lines = _wrap(draw, text, font, MAX_WIDTH * width)
        longest = max(draw.textlength(line, font=font) for line in lines)
        if (len(lines) <= 3 and longest <= MAX_WIDTH * width) or px <= 8:
            return font, "\n".join(lines)
        px = max(8, round(px * 0.85))


def anchor_point(position: str, height: int, width: int) -> tuple[float, float, str, str]:
    """(x, y, PIL anchor, alignment) for a position name."""
    m = MARGIN * min(height, width)
    vertical, _, horizontal = position.partition("-")
    y, v = {"top": (m, "a"), "bottom": (height - m, "d"), "center": (height / 2.0, "m")}[vertical]
    x, h, align = {"left": (m, "l", "left"), "right": (width - m, "r", "right")}.get(horizontal, (width / 2.0, "m", "center"))
    return x, y, h + v, align


@tool(role="object", **declared("add_text"), notes=(
    "text is the user's words exactly; position and color only when the user says them",
))
def add_text(
    image: Image,
    *,
    text: Caption,
    position: Position = "bottom",
    color: Annotated[str, Field(min_length=1, max_length=40)] = "white",
    size: Annotated[float, Field(ge=0.02, le=0.3)] = 0.08,
) -> Image:
    """Write a caption on the picture at a position, in a colour, size = letter height as a fraction of the picture's height."""
    rgb = tuple(int(v) for v in np.round(parse_color(color) * 255.0))
    outline = (0, 0, 0) if luminance(np.array(rgb, np.float32) / 255.0) > 0.5 else (255, 255, 255)
    canvas = PILImage.fromarray(image.pixels)
    draw = ImageDraw.Draw(canvas)
    font, wrapped = layout(draw, text, image.height, image.width, size)
    x, y, anchor, align = anchor_point(position, image.height, image.width)
    stroke = max(1, round(font.size / 18))
    kwargs = {"font": font, "anchor": anchor, "align": align, "stroke_width": stroke}
    box = draw.multiline_textbbox((x, y), wrapped, **kwargs)
    draw.multiline_text((x, y), wrapped, fill=rgb, stroke_fill=outline, **kwargs)
    return Image(np.asarray(canvas), meta={"text_box": [int(v) for v in box]})
