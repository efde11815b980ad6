"""The critic's checks of each built-in tool: measured on pixels, no vision-language model.

Each function takes a :class:`CheckCall` and returns :class:`CheckResult` lines; tools
declare them with ``@tool(..., checks=(...))``. Thresholds are module constants,
calibrated on the sample photos with ``python -m bench.critic`` (good results vs
deliberately broken ones; see the README for the distributions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np

from banana.experts.colors import LINEAR_OF_BYTE, linear_to_lab, parse_color, rgb_to_lab
from banana.experts.imaging import float_of
from banana.tools.checks import CheckCall, CheckResult, Fix
from banana.tools.memo import derived, recall
from banana.tools.values import Boxes, Image, Mask

T = TypeVar("T")

KEEP_TOL = 0.01  # mean |out - in| (RGB in 0..1) allowed where a foreground must be kept
KEEP_STEP = 3  # a pixel outside the mask "moved" when a channel changed by more than this (0..255)
KEEP_SHARE = 0.01  # share of the pixels outside a node's mask allowed to move
ADJUST_MIN_SHARE = 0.75  # share of the mask's tiles where adjust moved each asked statistic (at least half the asked size)
BLUR_MAX_RATIO = 0.6  # Laplacian variance of a 32 px tile, out / in, for the tile to count as blurred ...
BLUR_MAX_RATIO_LIGHT = 0.8  # ... or this, for a light blur (sigma under 1.5 px)
BLUR_MIN_SHARE = 0.75  # share of the mask's textured tiles that must be blurred
BLUR_MIN_TEXTURE = 1e-4  # tiles flatter than this (Laplacian variance, RGB 0..1) cannot show a blur
ADJUST_KEEP_L = 6.0  # the same for a saturation/warmth-only adjust (grey by luma moves Lab L a little on saturated colours)
TONE_KEEP_L = 3.0  # mean L (0..100) shift allowed where an edit should keep the tones (blur, recolor, saturation/warmth-only adjust)
STYLE_MIN_CHANGE = 0.03  # mean |out - in| a stylize must reach (times strength)
HUE_MAX_DEG = 25.0  # recolor: chroma-weighted mean hue within this of the target's
ACHROMATIC_MAX_CHROMA = 10.0  # recolor to white/black/grey: mean chroma at most this
REMOVE_MAX_LEFT = 0.5  # remove: the target re-segmented covers at most this share of what it did
REMOVE_MIN_CHANGE = 0.02
BG_MAX_DE = 12.0  # replace_background with a colour: mean Lab distance of the new background to it
HALO_MAX_DE = 20.0  # just outside the kept foreground: distance to the new colour
UPSCALE_MAX_DIFF = 0.04  # upscale downscaled back vs the input
SEAM_MAX_RATIO = 2.5  # gradient energy on the mask boundary, out / in
CLIP_MAX_RISE = 0.05  # share of pixels newly clipped to pure black/white
MIN_STD_L = 1.0  # a picture flatter than this (std of L) is broken
MASK_EMPTY = 0.001
MASK_FULL = 0.95
SKY_MAX_CENTRE = 0.55  # mean row of a sky mask, as a share of the height
FACE_KEEP = 0.9  # crop: share of each detected face's box inside the crop


# ---------------------------------------------------------------- measurements


def rgbf(image: Image) -> np.ndarray:
    """Float pixels, read-only; remembered by content while a memo is current (the input is the same every turn)."""
    return float_of(image)


def lab(image: Image) -> np.ndarray:
    """Lab of a picture, read-only; remembered like :func:`rgbf` (several checks of one node ask for it)."""
    return derived("lab", (image,), lambda: linear_to_lab(LINEAR_OF_BYTE[image.pixels]))  # equal to rgb_to_lab(rgbf(image))


def lab_after(src: Image, out: Image) -> np.ndarray:
    """``lab(out)`` for an edit of ``src``. When the input's Lab is remembered (an earlier turn measured it), only the
    pixels the edit changed are converted and the rest copied from it (Lab is per pixel: the same values, tested)."""
    def compute() -> np.ndarray:
        before = recall("lab", (src,))
        if before is None or src.pixels.shape != out.pixels.shape:
            return linear_to_lab(LINEAR_OF_BYTE[out.pixels])
        d = cv2.absdiff(src.pixels, out.pixels)
        changed = np.flatnonzero((d[..., 0] | d[..., 1] | d[..., 2]) != 0)
        if changed.size > 0.75 * out.height * out.width:
            return linear_to_lab(LINEAR_OF_BYTE[out.pixels])
        whole = before.copy()
        whole.reshape(-1, 3)[changed] = linear_to_lab(LINEAR_OF_BYTE[np.take(out.pixels.reshape(-1, 3), changed, axis=0)])
        return whole

    return derived("lab", (out,), compute)  # the slot lab(out) uses: the same value


def alpha_of(call: CheckCall, port: str = "mask") -> np.ndarray | None:
    """The node's mask at the output's size, or None when it has none."""
    mask = call.ports.get(port)
    out = call.output
    if not isinstance(mask, Mask) or not isinstance(out, Image):
        return None
    a = mask.alpha
    if a.shape != (out.height, out.width):
        a = cv2.resize(a, (out.width, out.height), interpolation=cv2.INTER_LINEAR)
    return a


def erode(region: np.ndarray, px: int) -> np.ndarray:
    if px <= 0 or not region.any():
        return region
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(region.astype(np.uint8), k).astype(bool)


def margin(image: Image) -> int:
    return max(2, round(0.01 * min(image.height, image.width)))


def inside(call: CheckCall) -> np.ndarray:
    """Where the node was asked to act, away from the soft edge (everything when it has no mask)."""
    out = call.output
    assert isinstance(out, Image)
    a = alpha_of(call)
    if a is None:
        return np.ones((out.height, out.width), bool)

    def core() -> np.ndarray:
        c = erode(a > 0.5, margin(out))
        return c if c.sum() >= 50 else a > 0.5

    return derived(f"inside@{out.height}x{out.width}", (call.ports["mask"],), core)


def outside(call: CheckCall) -> np.ndarray | None:
    a = alpha_of(call)
    if a is None:
        return None
    return derived(f"outside@{a.shape}", (call.ports["mask"],), lambda: erode(a <= 0.0, 1))


def sharpness(rgb: np.ndarray, region: np.ndarray) -> float:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    return float(lap[region].var()) if region.any() else 0.0


def noise(rgb: np.ndarray, region: np.ndarray) -> float:
    """Robust noise estimate: median absolute high-pass response (MAD), in 0..1 units."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    high = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    return float(np.median(np.abs(high[region]))) / 0.6745 if region.any() else 0.0


def mean_diff(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    d = np.abs(a - b).mean(axis=-1)
    if region is None:
        return float(d.mean())
    return float(d[region].mean()) if region.any() else 0.0


def chroma(lab_px: np.ndarray) -> np.ndarray:
    return np.hypot(lab_px[..., 1], lab_px[..., 2])


def mean_hue(lab_px: np.ndarray) -> tuple[float, float]:
    """Chroma-weighted circular mean hue in degrees, and the mean chroma."""
    c = chroma(lab_px)
    if c.size == 0 or c.sum() < 1e-6:
        return 0.0, 0.0
    h = np.arctan2(lab_px[..., 2], lab_px[..., 1])
    ang = np.degrees(np.arctan2((np.sin(h) * c).sum(), (np.cos(h) * c).sum()))
    return float(ang % 360.0), float(c.mean())


def hue_gap(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def same_size(call: CheckCall, port: str = "image") -> tuple[Image, Image] | None:
    src, out = call.ports.get(port), call.output
    if isinstance(src, Image) and isinstance(out, Image) and (src.height, src.width) == (out.height, out.width):
        return src, out
    return None


def boundary(a: np.ndarray, px: int) -> np.ndarray:
    hard = (a > 0.5).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return (cv2.dilate(hard, k) - cv2.erode(hard, k)).astype(bool)


def gradient(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def grey_of(image: Image) -> np.ndarray:
    return derived("grey", (image,), lambda: cv2.cvtColor(rgbf(image), cv2.COLOR_RGB2GRAY))


def gradient_of(image: Image) -> np.ndarray:
    """:func:`gradient` of a picture, remembered (the same values: the grey picture is shared with :func:`laplacian_of`)."""
    def compute() -> np.ndarray:
        grey = grey_of(image)
        return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))

    return derived("gradient", (image,), compute)


def laplacian_of(image: Image) -> np.ndarray:
    """Laplacian of the grey picture (sharpness per pixel)."""
    return derived("laplacian", (image,), lambda: cv2.Laplacian(grey_of(image), cv2.CV_32F))


def flat_of(image: Image) -> np.ndarray:
    """Pixels clipped to pure black or white (every channel 0, or every channel 255)."""
    px = image.pixels

    def flat() -> np.ndarray:
        found = cv2.inRange(px, (0, 0, 0), (0, 0, 0))
        found |= cv2.inRange(px, (255, 255, 255), (255, 255, 255))
        return found != 0

    return derived("flat", (image,), flat)


# ---------------------------------------------------------------- shared checks


def keep_outside(call: CheckCall) -> list[CheckResult]:
    """Pixels outside the node's mask are unchanged: the share that moved by more than a rounding step."""
    pair, region = same_size(call), outside(call)
    if pair is None or region is None or not region.any():
        return []
    d = cv2.absdiff(pair[0].pixels, pair[1].pixels)  # |a - b| of uint8, exact
    moved = (d[..., 0] > KEEP_STEP) | (d[..., 1] > KEEP_STEP) | (d[..., 2] > KEEP_STEP)
    share = float(moved[region].mean())
    return [call.result("keep outside mask", "keep", share, KEEP_SHARE, share <= KEEP_SHARE,
                        f"{share:.1%} of the pixels outside {call.words.get('mask', 'the mask')} changed; the edit leaked out of its mask")]


def quality(call: CheckCall) -> list[CheckResult]:
    """Not flat, no new clipping, no seam along the mask edge."""
    out = call.output
    if not isinstance(out, Image):
        return []
    res = []
    src = call.ports.get("image")
    std_l = float((lab_after(src, out) if isinstance(src, Image) else lab(out))[..., 0].std())
    res.append(call.result("not constant", "quality", std_l, MIN_STD_L, std_l >= MIN_STD_L,
                           "the result is a flat picture; the edit destroyed the image"))
    pair = same_size(call)
    if pair is None:
        return res
    region = inside(call)

    def clipped(x: Image) -> float:
        return float(flat_of(x)[region].mean()) if region.any() else 0.0

    rise = clipped(pair[1]) - clipped(pair[0])
    res.append(call.result("no clipping", "quality", rise, CLIP_MAX_RISE, rise <= CLIP_MAX_RISE,
                           "the edit pushed many pixels to pure black or white; use a smaller amount", hard=False))
    a = alpha_of(call)
    if a is not None and 0.001 < (a > 0.5).mean() < 0.999:
        band = boundary(a, 2)
        g_in = float(gradient_of(pair[0])[band].mean()) + 1e-3
        seam = float(gradient_of(pair[1])[band].mean()) / g_in
        res.append(call.result("seam energy", "quality", seam, SEAM_MAX_RATIO, seam <= SEAM_MAX_RATIO,
                               "a visible seam runs along the mask edge; grow or feather the mask"))
    return res


def mask_sanity(call: CheckCall) -> list[CheckResult]:
    """A mask tool's output is neither empty nor (for a part) everything; sky is not at the bottom."""
    m = call.output
    if not isinstance(m, Mask):
        return []
    area = m.area
    target = str(call.args.get("target", "")).strip().lower()
    what = f"{call.tool} {target!r}" if target else call.tool
    res = [call.result("mask not empty", "mask", area, MASK_EMPTY, area >= MASK_EMPTY,
                       f"mask from {what} covers {area:.1%} of the picture: nothing was selected; try another target "
                       "(e.g. 'background', 'subject' or a colour)")]
    part = call.tool == "segment" and target and not any(w in target for w in ("background", "backdrop", "surroundings"))
    full_limit = MASK_FULL if part else 0.999
    res.append(call.result("mask not everything", "mask", area, full_limit, area <= full_limit,
                           f"mask from {what} covers {area:.0%} of the picture, not a part of it; "
                           "use a narrower target or drop the mask to edit everything"))
    if call.tool == "segment" and "sky" in target and area >= MASK_EMPTY:
        rows = np.arange(m.shape[0], dtype=np.float32)[:, None] / max(1, m.shape[0] - 1)
        centre = float((m.alpha * rows).sum() / max(m.alpha.sum(), 1e-6))
        res.append(call.result("sky at the top", "mask", centre, SKY_MAX_CENTRE, centre <= SKY_MAX_CENTRE,
                               f"the 'sky' mask sits low in the picture (centre at {centre:.0%} of the height); "
                               "there may be no sky: try 'background'"))
    return res


def boxes_found(call: CheckCall) -> list[CheckResult]:
    out = call.output
    n = len(out) if isinstance(out, Boxes) else 0
    return [call.result("something detected", "mask", n, 1, n >= 1, f"{call.tool} found nothing; try another target", hard=False)]


# ---------------------------------------------------------------- per tool


def tiles(region: np.ndarray, size: int = 32) -> list[tuple[slice, slice]]:
    """Square tiles mostly (>= 50 %) inside a region."""
    h, w = region.shape
    out = []
    for y in range(0, h - size // 2, size):
        for x in range(0, w - size // 2, size):
            t = (slice(y, min(h, y + size)), slice(x, min(w, x + size)))
            if region[t].mean() >= 0.5:
                out.append(t)
    return out


def in_region(call: CheckCall, kind: str, compute: Callable[[], T]) -> T:
    """A measurement of the node's input picture inside its mask (``inside(call)``): remembered by their content,
    since a follow-up that changes only an argument measures the same input in the same region again."""
    values = tuple(v for v in (call.ports.get("image"), call.ports.get("mask")) if v is not None)
    out = call.output
    assert isinstance(out, Image)
    return derived(f"{kind}@{out.height}x{out.width}", values, compute)


def mean_l_shift(src: Image, out: Image, region: np.ndarray) -> float:
    return float(abs(lab_after(src, out)[..., 0][region].mean() - lab(src)[..., 0][region].mean())) if region.any() else 0.0


def blur_follow(call: CheckCall) -> list[CheckResult]:
    """Blur lowers sharpness over (nearly) all of its mask, and keeps the tones."""
    pair = same_size(call)
    if pair is None:
        return []
    region = inside(call)
    grey_src, grey_dst = laplacian_of(pair[0]), laplacian_of(pair[1])

    def texture() -> tuple[list[tuple[slice, slice]], list[np.floating]]:
        found = [(t, grey_src[t].var()) for t in tiles(region)]
        return [t for t, v in found if v > BLUR_MIN_TEXTURE], [v for t, v in found if v > BLUR_MIN_TEXTURE]

    textured, before = in_region(call, "blur.texture", texture)
    if not textured:
        return []
    amount = float(call.args.get("amount", 0.5))
    sigma = amount * float(np.hypot(*region.shape)) / 60.0  # the blur tool's own scale: the check expects what the amount asks
    limit = BLUR_MAX_RATIO if sigma >= 1.5 else BLUR_MAX_RATIO_LIGHT
    share = float(np.mean([grey_dst[t].var() / v <= limit for t, v in zip(textured, before, strict=True)]))
    step = Fix(args={"amount": round(min(1.0, amount + 0.3), 2)}) if amount < 1.0 else None
    l_src = in_region(call, "mean L", lambda: lab(pair[0])[..., 0][region].mean() if region.any() else None)
    shift = float(abs(lab_after(*pair)[..., 0][region].mean() - l_src)) if l_src is not None else 0.0
    return [call.result("blur lowers sharpness", "follow", share, BLUR_MIN_SHARE, share >= BLUR_MIN_SHARE,
                        f"only {share:.0%} of {call.words.get('mask', 'the picture')} is blurred; raise amount", fix=step),
            call.result("blur keeps the tones", "follow", shift, TONE_KEEP_L, shift <= TONE_KEEP_L,
                        f"the blurred region changed brightness by {shift:.1f} L: a seam or a wrong paste, not a blur")]


def _lab_stats(px: np.ndarray) -> dict[str, float]:
    """Lightness, its spread, chroma and warmth of Lab pixels (N x 3)."""
    return {"brightness": float(px[:, 0].mean()), "contrast": float(px[:, 0].std()), "saturation": float(chroma(px).mean()),
            "warmth": float((px[:, 2] + 0.5 * px[:, 1]).mean())}


def _adjust_stats(call: CheckCall, src: Image, out: Image, region: np.ndarray) -> dict[str, tuple[float, float]]:
    before = in_region(call, "adjust stats", lambda: _lab_stats(lab(src)[region]))
    after = _lab_stats(lab_after(src, out)[region])
    return {name: (before[name], after[name]) for name in before}


LIGHTNESS_ARGS = ("brightness", "contrast", "shadows", "highlights")  # adjust args that move lightness on purpose
ADJUST_MIN = {"brightness": 3.0, "contrast": 0.1, "saturation": 0.2, "warmth": 2.0}  # per unit of the arg


def adjust_follow(call: CheckCall) -> list[CheckResult]:
    """Each statistic moves in the sign of its arg, by at least a rough share of it."""
    pair = same_size(call)
    if pair is None:
        return []
    region = inside(call)
    if not region.any():
        return []
    stats = _adjust_stats(call, pair[0], pair[1], region)
    res = []
    if all(abs(float(call.args.get(k, 0) or 0)) < 0.05 for k in LIGHTNESS_ARGS):
        shift = abs(stats["brightness"][1] - stats["brightness"][0])
        res.append(call.result("adjust keeps the lightness", "follow", shift, ADJUST_KEEP_L, shift <= ADJUST_KEEP_L,
                               f"lightness moved by {shift:.1f} L though no brightness change was asked: a seam or a wrong paste"))
    for name, (before, after) in stats.items():
        amount = float(call.args.get(name, 0.0) or 0.0)
        if abs(amount) < 0.05:
            continue
        if name in ("contrast", "saturation"):
            moved = (after - before) / max(before, 1e-3)  # relative change
        else:
            moved = after - before
        need = ADJUST_MIN[name] * abs(amount)
        if name == "saturation" and amount <= -0.95:  # grayscale: chroma must be (nearly) gone
            ok, value, need = after <= 2.0, after, 2.0
        else:
            value = moved * np.sign(amount)
            ok = value >= need
        headroom = abs(amount) < 1.0
        step = Fix(args={name: round(float(np.clip(amount * 1.6, -1, 1)), 2)}) if headroom and value > 0 else None
        res.append(call.result(f"adjust {name}", "follow", value, need, bool(ok),
                               f"{name} inside {call.words.get('mask', 'the picture')} moved too little; use a larger {name}",
                               fix=step))
    res += _adjust_coverage(call, pair[0], pair[1], region)
    return res


def _adjust_coverage(call: CheckCall, src: Image, out: Image, region: np.ndarray) -> list[CheckResult]:
    """Brightness and warmth move over (nearly) all of the mask, not in one corner of it."""
    a, b = lab(src), lab_after(src, out)
    res: list[CheckResult] = []
    for name in ("brightness", "warmth"):
        amount = float(call.args.get(name, 0.0) or 0.0)
        if abs(amount) < 0.05:
            continue
        stat = (lambda x: x[..., 0]) if name == "brightness" else (lambda x: x[..., 2] + 0.5 * x[..., 1])
        cells = in_region(call, "tiles", lambda: tiles(region))
        if not cells:
            continue
        sb = stat(b)

        def tile_means(stat: Callable[[np.ndarray], np.ndarray] = stat, cells: list[tuple[slice, slice]] = cells) -> list[np.floating]:
            sa = stat(a)
            return [sa[t].mean() for t in cells]

        before = in_region(call, f"adjust {name} tiles", tile_means)
        need = 0.5 * ADJUST_MIN[name] * abs(amount)
        share = float(np.mean([(sb[t].mean() - m) * np.sign(amount) >= need for t, m in zip(cells, before, strict=True)]))
        res.append(call.result(f"adjust {name} covers the mask", "follow", share, ADJUST_MIN_SHARE, share >= ADJUST_MIN_SHARE,
                               f"{name} changed over only {share:.0%} of {call.words.get('mask', 'the picture')}"))
    return res


def recolor_follow(call: CheckCall) -> list[CheckResult]:
    pair = same_size(call)
    if pair is None:
        return []
    region = inside(call)
    src_lab = lab(pair[0])
    mid = region & (src_lab[..., 0] > 15) & (src_lab[..., 0] < 95)  # deep shadows and highlights cannot hold colour
    if mid.sum() < 20:
        return []
    px = lab_after(*pair)[mid]
    target = rgb_to_lab(parse_color(str(call.args.get("color", "grey"))).reshape(1, 3))[0]
    t_chroma = float(np.hypot(target[1], target[2]))
    if t_chroma < ACHROMATIC_MAX_CHROMA:
        c = float(chroma(px).mean())
        return [call.result("recolor reaches the colour", "follow", c, ACHROMATIC_MAX_CHROMA, c <= ACHROMATIC_MAX_CHROMA,
                            f"{call.words.get('mask', 'the region')} is still coloured (chroma {c:.0f})")]  # white/black move L on purpose
    shift = mean_l_shift(pair[0], pair[1], mid)
    shading = call.result("recolor keeps the shading", "follow", shift, TONE_KEEP_L, shift <= TONE_KEEP_L,
                          f"the recoloured region changed lightness by {shift:.1f} L: a seam or a wrong paste")
    hue, _ = mean_hue(px)
    want = float(np.degrees(np.arctan2(target[2], target[1])) % 360.0)
    gap = hue_gap(hue, want)
    return [shading, call.result("recolor reaches the hue", "follow", gap, HUE_MAX_DEG, gap <= HUE_MAX_DEG,
                                 f"{call.words.get('mask', 'the region')} is {gap:.0f} degrees of hue away from {call.args.get('color')}")]


def remove_follow(call: CheckCall) -> list[CheckResult]:
    pair = same_size(call)
    if pair is None:
        return []
    a = alpha_of(call)
    region = (a > 0.5) if a is not None else np.ones(pair[0].pixels.shape[:2], bool)
    d = mean_diff(rgbf(pair[0]), rgbf(pair[1]), region)
    res = [call.result("remove changed the region", "follow", d, REMOVE_MIN_CHANGE, d >= REMOVE_MIN_CHANGE,
                       f"{call.words.get('mask', 'the region')} looks the same after remove")]
    target = call.targets.get("mask", "")
    if target and not target.startswith("not ") and a is not None:
        from banana.experts.perception import segment

        def area(img: Image) -> float:
            try:
                m = segment(image=img, target=target)
            except ValueError:
                return 0.0
            return float(((m.alpha > 0.5) & (a > 0.5)).mean())

        before = area(pair[0])
        if before > 0:
            left = area(pair[1]) / before
            res.append(call.result("target gone", "follow", left, REMOVE_MAX_LEFT, left <= REMOVE_MAX_LEFT,
                                   f"{target!r} is still found where it was ({left:.0%} left); grow the mask"))
    return res


def replace_background_checks(call: CheckCall) -> list[CheckResult]:
    pair = same_size(call)
    a = alpha_of(call)
    if pair is None or a is None:
        return []
    src, dst = rgbf(pair[0]), rgbf(pair[1])
    m = margin(pair[1])
    fg, bg = erode(a >= 0.99, m), erode(a <= 0.01, m)
    res = []
    if fg.any():
        d = mean_diff(src, dst, fg)
        res.append(call.result("foreground kept", "keep", d, KEEP_TOL, d <= KEEP_TOL,
                               f"{call.words.get('mask', 'the foreground')} changed (mean {d:.3f})"))
    if not bg.any():
        return res
    color, color2 = call.args.get("color"), call.args.get("color2")
    if color and not color2:
        want = rgb_to_lab(parse_color(str(color)).reshape(1, 3))[0]
        out_lab = rgb_to_lab(dst)
        de = float(np.linalg.norm(out_lab[bg] - want, axis=-1).mean())
        res.append(call.result("background is the colour", "follow", de, BG_MAX_DE, de <= BG_MAX_DE,
                               f"the background is not {color} (mean distance {de:.0f}); check the mask covers the foreground"))
        ring = boundary(a, m) & (a <= 0.05)
        if ring.any():
            halo = float(np.linalg.norm(out_lab[ring] - want, axis=-1).mean())
            res.append(call.result("no halo", "quality", halo, HALO_MAX_DE, halo <= HALO_MAX_DE,
                                   "the old background shows around the foreground; grow the mask by a few pixels"))
    else:
        d = mean_diff(src, dst, bg)
        res.append(call.result("background changed", "follow", d, REMOVE_MIN_CHANGE, d >= REMOVE_MIN_CHANGE,
                               "the background looks the same as before"))
    return res


def _locate(small: np.ndarray, big: np.ndarray) -> tuple[int, int]:
    """Where a crop sits inside the picture it came from (top-left corner)."""
    res = cv2.matchTemplate(cv2.cvtColor(big, cv2.COLOR_RGB2GRAY), cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), cv2.TM_SQDIFF)
    _, _, loc, _ = cv2.minMaxLoc(res)
    return int(loc[0]), int(loc[1])


def crop_checks(call: CheckCall) -> list[CheckResult]:
    src, out = call.ports.get("image"), call.output
    if not isinstance(src, Image) or not isinstance(out, Image):
        return []
    res = []
    aspect = call.args.get("aspect")
    if aspect:
        aw, ah = (int(v) for v in str(aspect).split(":"))
        want, got = aw / ah, out.width / out.height
        err = abs(got - want) / want
        tol = 0.01 + 2.0 / min(out.width, out.height)
        res.append(call.result("crop aspect", "follow", err, tol, err <= tol, f"the crop is {got:.3f}:1, not {aspect}"))
    smaller = out.width * out.height < src.width * src.height or call.args.get("box") is not None
    res.append(call.result("crop made it smaller", "follow", out.width * out.height, src.width * src.height,
                           out.width * out.height <= src.width * src.height and smaller, "the crop did not cut anything"))
    if out.width * out.height < src.width * src.height:
        from banana.experts.faces import find_faces

        faces = find_faces(src.pixels)
        if faces:
            x, y = _locate(out.pixels, src.pixels)
            kept = []
            for f in faces:
                x0, y0, x1, y1 = f.box
                ix = max(0, min(x1, x + out.width) - max(x0, x))
                iy = max(0, min(y1, y + out.height) - max(y0, y))
                kept.append(ix * iy / max(1, (x1 - x0) * (y1 - y0)))
            worst = float(min(kept))
            res.append(call.result("crop keeps faces", "keep", worst, FACE_KEEP, worst >= FACE_KEEP,
                                   "the crop cuts through a face; crop to the face's box or pick another aspect", hard=False))
    return res


def upscale_checks(call: CheckCall) -> list[CheckResult]:
    src, out = call.ports.get("image"), call.output
    if not isinstance(src, Image) or not isinstance(out, Image):
        return []
    factor = int(call.args.get("factor", 2))
    size_ok = (out.width, out.height) == (src.width * factor, src.height * factor)
    res = [call.result("upscale size", "follow", out.width / max(1, src.width), factor, size_ok,
                       f"the result is {out.width}x{out.height}, not {factor}x the input")]
    back = cv2.resize(out.pixels, (src.width, src.height), interpolation=cv2.INTER_AREA)
    d = mean_diff(rgbf(src), back.astype(np.float32) / 255.0)
    res.append(call.result("upscale matches the input", "keep", d, UPSCALE_MAX_DIFF, d <= UPSCALE_MAX_DIFF,
                           "the enlarged picture, scaled back down, differs from the input; the upscaler invented content"))
    return res


def stylize_follow(call: CheckCall) -> list[CheckResult]:
    pair = same_size(call)
    if pair is None:
        return []
    strength = float(call.args.get("strength", 1.0))
    need = STYLE_MIN_CHANGE * strength
    d = mean_diff(rgbf(pair[0]), rgbf(pair[1]), inside(call))
    return [call.result("stylize changed the picture", "follow", d, need, d >= need,
                        "the style barely changed the picture; raise strength or pick another style",
                        fix=Fix(args={"strength": 1.0}) if strength < 1.0 else None)]


def _ratio_inside(call: CheckCall, measure: Callable[[np.ndarray, np.ndarray], float]) -> float | None:
    """``measure`` of the result over ``measure`` of the input, inside the node's mask (None: sizes differ)."""
    pair = same_size(call)
    if pair is None:
        return None
    region = inside(call)
    return measure(rgbf(pair[1]), region) / max(measure(rgbf(pair[0]), region), 1e-9)


def sharpen_follow(call: CheckCall) -> list[CheckResult]:
    ratio = _ratio_inside(call, sharpness)
    if ratio is None:
        return []
    return [call.result("sharpen raises sharpness", "follow", ratio, 1.05, ratio >= 1.05,
                        "the picture is not sharper; raise amount")]


def denoise_follow(call: CheckCall) -> list[CheckResult]:
    ratio = _ratio_inside(call, noise)
    if ratio is None:
        return []
    return [call.result("denoise lowers noise", "follow", ratio, 0.95, ratio <= 0.95, "the noise estimate did not drop; raise strength")]


def geometry_follow(call: CheckCall) -> list[CheckResult]:
    """rotate / flip: the output equals the input turned or mirrored as the args say (when the args name an exact turn)."""
    src, out = call.ports.get("image"), call.output
    if not isinstance(src, Image) or not isinstance(out, Image):
        return []
    a = src.pixels
    if call.tool == "flip":
        axis = str(call.args.get("direction", call.args.get("axis", "horizontal")))
        want = a[:, ::-1] if axis.startswith("h") else a[::-1]
    else:
        deg = call.args.get("degrees", call.args.get("angle"))
        if deg is None or float(deg) % 90:
            return []
        want = np.rot90(a, round(float(deg) / 90) % 4)  # counter-clockwise, as rotate's degrees are
    if want.shape != out.pixels.shape:
        return [call.result(f"{call.tool} geometry", "follow", 1.0, 0.02, False, f"the result has the wrong size for a {call.tool}")]
    d = mean_diff(want.astype(np.float32) / 255.0, out.pixels.astype(np.float32) / 255.0)
    return [call.result(f"{call.tool} geometry", "follow", d, 0.02, d <= 0.02, f"the result is not the input after {call.tool}")]


def border_follow(call: CheckCall) -> list[CheckResult]:
    """The frame has the width and the colour asked, and the picture sits unchanged inside it."""
    src, out = call.ports.get("image"), call.output
    if not isinstance(src, Image) or not isinstance(out, Image):
        return []
    px = int(call.args.get("pixels", 20))
    if (out.width, out.height) != (src.width + 2 * px, src.height + 2 * px):
        return [call.result("border size", "follow", out.width - src.width, 2 * px, False,
                            f"the result is not framed by {px} px on each side")]
    want = rgb_to_lab(parse_color(str(call.args.get("color", "white"))).reshape(1, 3))[0]
    frame = np.ones((out.height, out.width), bool)
    frame[px:-px, px:-px] = False
    de = float(np.linalg.norm(lab(out)[frame] - want, axis=-1).mean())
    inner = mean_diff(rgbf(src), rgbf(out)[px:-px, px:-px])
    return [call.result("border colour", "follow", de, BG_MAX_DE, de <= BG_MAX_DE, f"the frame is not {call.args.get('color')}"),
            call.result("picture kept inside the border", "keep", inner, KEEP_TOL, inner <= KEEP_TOL,
                        "the picture inside the frame changed")]


def pixelate_follow(call: CheckCall) -> list[CheckResult]:
    """Inside the mask the picture became blocks: far less fine detail."""
    ratio = _ratio_inside(call, sharpness)
    if ratio is None:
        return []
    return [call.result("pixelate removes detail", "follow", ratio, 0.8, ratio <= 0.8,
                        f"{call.words.get('mask', 'the picture')} still shows its detail; use a larger block")]


def changed_somewhere(call: CheckCall) -> list[CheckResult]:
    """The tool changed something (the output is not the input)."""
    pair = same_size(call)
    if pair is None:
        return []
    d = mean_diff(rgbf(pair[0]), rgbf(pair[1]), inside(call))
    return [call.result(f"{call.tool} changed the picture", "follow", d, 0.002, d >= 0.002, f"{call.tool} left the picture as it was")]


IMAGE_EDIT = (keep_outside, quality)
CHECKS = {
    "blur": (*IMAGE_EDIT, blur_follow),
    "adjust": (*IMAGE_EDIT, adjust_follow),
    "recolor": (*IMAGE_EDIT, recolor_follow),
    "remove": (*IMAGE_EDIT, remove_follow),
    "replace": IMAGE_EDIT,
    "stylize": (*IMAGE_EDIT, stylize_follow),
    "replace_background": (quality, replace_background_checks),
    "crop": (quality, crop_checks),
    "upscale": (quality, upscale_checks),
    "segment": (mask_sanity,),
    "invert": (mask_sanity,),
    "combine": (mask_sanity,),
    "grow": (mask_sanity,),
    "mask_from_boxes": (mask_sanity,),
    "detect": (boxes_found,),
    "detect_faces": (boxes_found,),
    "sharpen": (*IMAGE_EDIT, sharpen_follow),
    "denoise": (*IMAGE_EDIT, denoise_follow),
    "rotate": (quality, geometry_follow),
    "flip": (quality, geometry_follow),
    "dehaze": (quality, changed_somewhere),
    "enhance": (*IMAGE_EDIT, changed_somewhere),
    "retouch": (*IMAGE_EDIT,),
    "pixelate": (*IMAGE_EDIT, pixelate_follow),
    "border": (quality, border_follow),
    "add_text": (quality, changed_somewhere),
    "straighten": (quality,),
    "insert": IMAGE_EDIT,
    "edit": IMAGE_EDIT,
    "region": (mask_sanity,),
}

PHRASES = {
    "blur": "blur {mask}, amount {amount}",
    "adjust": "change the tone of {mask}[, brightness {brightness}][, contrast {contrast}][, saturation {saturation}][, warmth {warmth}]",
    "recolor": "recolor {mask} to {color}",
    "remove": "remove {mask} and fill the hole",
    "replace": "replace {mask} with {prompt}",
    "replace_background": "put a new background behind {mask}[, {color}][ fading to {color2}][: {prompt}][ from {file}]",
    "stylize": "repaint {mask} in the {style} style[, strength {strength}]",
    "upscale": "upscale the picture {factor}x",
    "crop": "crop the picture[ to {aspect}][ to the box {box}][ to {boxes}]",
    "segment": "the {target}",
    "detect": "the {target}",
    "detect_faces": "the faces",
    "mask_from_boxes": "{boxes}",
    "invert": "everything except {mask}",
    "combine": "{a} {op} {b}",
    "grow": "{mask} grown by {pixels} px",
    "lock_identity": "remember the faces",
    "restore_identity": "restore the remembered faces",
    "sharpen": "sharpen {mask}, amount {amount}",
    "denoise": "remove the noise from {mask}, amount {amount}",
    "dehaze": "remove the haze, amount {amount}",
    "enhance": "auto-enhance {mask}, amount {amount}",
    "retouch": "retouch the skin of {mask}, amount {amount}",
    "pixelate": "pixelate {mask}, block {block}",
    "rotate": "rotate the picture {degrees} degrees counter-clockwise",
    "flip": "flip the picture {direction}",
    "straighten": "straighten the tilted horizon",
    "border": "add a {color} border of {pixels} px",
    "add_text": "write '{text}' at the {position} in {color}",
    "region": "the area[ at the {position}][ {relation} {boxes}]",
    "insert": "add {prompt} in {mask}",
    "edit": "edit {mask}: {instruction}",
}


def declared(tool: str) -> dict[str, object]:
    """The checks and phrase a built-in tool declares on its spec: ``@tool(..., **declared("blur"))``."""
    return {"checks": CHECKS.get(tool, ()), "phrase": PHRASES.get(tool, "")}
