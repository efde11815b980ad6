"""End to end: does the picture Banana answers with do what was asked? Single pass vs the critique loop.

The cases (``bench/outcomes/blind_v1.jsonl``) were written blind by someone who did not write
the planner's generator, the critic or the loop: a sample photo, an instruction, and predicates
on the output's pixels (vocabulary: ``bench/outcomes/README.md``). Each case runs twice with the
embedded planner, each time with a fresh result cache: one pass (plan, run) and the loop (plan,
run, critique, repair). Reports pass rates, how many the loop fixed and made worse, and median /
p90 latency (planning included; models are loaded before timing starts).

Run: ``python -m bench.outcomes [--only ID,ID] [--limit N] [--out results.json] [--traces PATH]``.
``--traces``: route with the router learned from that traces file (exploiting, as ``banana edit`` does; nothing is
written to it, so every case sees the same router); without it, the fixed cost order.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from banana.agent.executor import Executor, ResultCache
from banana.agent.loop import LoopResult, run_loop
from banana.agent.planner import PlanningError, make_planner
from banana.agent.router import Router, routing
from banana.agent.samples import sample
from banana.agent.traces import TraceStore
from banana.experts.colors import parse_color, rgb_to_lab
from banana.tools.registry import Registry, default_registry
from banana.tools.values import Image

HERE = Path(__file__).parent / "outcomes"


# ---------------------------------------------------------------- regions and statistics


@cache
def _segment(photo: str, target: str) -> np.ndarray:
    """A segment target on the INPUT photo (empty when it cannot be found)."""
    from banana.experts.perception import segment

    img = sample(photo)
    try:
        return segment(image=img, target=target).alpha > 0.5
    except ValueError:
        return np.zeros((img.height, img.width), bool)


def region(photo: str, spec: Any) -> np.ndarray:
    img = sample(photo)
    h, w = img.height, img.width
    if spec in (None, "all"):
        r = np.ones((h, w), bool)
    elif isinstance(spec, dict) and "box" in spec:
        x0, y0, x1, y1 = spec["box"]
        r = np.zeros((h, w), bool)
        r[int(y0 * h) : int(np.ceil(y1 * h)), int(x0 * w) : int(np.ceil(x1 * w))] = True
    elif isinstance(spec, str) and spec.startswith("not "):
        r = ~_segment(photo, spec[4:])
    else:
        r = _segment(photo, str(spec))
    px = max(1, round(0.02 * min(h, w)))
    if spec in (None, "all"):
        return r
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(r.astype(np.uint8), k).astype(bool)


def rgbf(img: Image) -> np.ndarray:
    return img.pixels.astype(np.float32) / 255.0


def lab(img: Image) -> np.ndarray:
    return rgb_to_lab(rgbf(img))


def laplace_var(img: Image, r: np.ndarray) -> float:
    grey = cv2.cvtColor(rgbf(img), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[r].var())


def noise(img: Image, r: np.ndarray) -> float:
    grey = cv2.cvtColor(rgbf(img), cv2.COLOR_RGB2GRAY)
    return float(np.median(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[r]))


STATS = {
    "L": lambda x: float(x[..., 0].mean()),
    "stdL": lambda x: float(x[..., 0].std()),
    "chroma": lambda x: float(np.hypot(x[..., 1], x[..., 2]).mean()),
    "warm": lambda x: float((x[..., 2] + 0.5 * x[..., 1]).mean()),
}


def stat(kind: str, photo: str, spec: Any, src: Image, out: Image) -> tuple[float, float] | None:
    """A statistic before and after, in the region (whole pictures when sizes differ and the region is all)."""
    f = STATS[kind]
    if (src.height, src.width) == (out.height, out.width):
        r = region(photo, spec)
        if not r.any():
            return None
        return f(lab(src)[r]), f(lab(out)[r])
    if spec in (None, "all"):
        return f(lab(src).reshape(-1, 3)), f(lab(out).reshape(-1, 3))
    return None


def hue_of(x: np.ndarray) -> tuple[float, float]:
    c = np.hypot(x[..., 1], x[..., 2])
    h = np.arctan2(x[..., 2], x[..., 1])
    ang = np.degrees(np.arctan2((np.sin(h) * c).sum(), (np.cos(h) * c).sum())) % 360
    return float(ang), float(c.mean())


# ---------------------------------------------------------------- predicates


def holds(p: dict[str, Any], photo: str, src: Image, out: Image) -> tuple[bool, str]:
    """Whether one predicate holds on the output, and the measured value."""
    kind, spec = p["kind"], p.get("region", "all")
    same = (src.height, src.width) == (out.height, out.width)
    if kind in ("changed", "unchanged"):
        if not same:
            return False, "size differs"
        r = region(photo, spec)
        d = float(np.abs(rgbf(src) - rgbf(out)).mean(axis=-1)[r].mean()) if r.any() else 0.0
        return (d >= p.get("min", 0.03)) if kind == "changed" else (d <= p.get("max", 0.02)), f"{d:.4f}"
    if kind in ("brighter", "darker", "more_saturated", "less_saturated", "warmer", "cooler"):
        which = {
            "brighter": "L",
            "darker": "L",
            "more_saturated": "chroma",
            "less_saturated": "chroma",
            "warmer": "warm",
            "cooler": "warm",
        }[kind]
        default = {"L": 3.0, "chroma": 3.0, "warm": 2.0}[which]
        s = stat(which, photo, spec, src, out)
        if s is None:
            return False, "no region"
        delta = s[1] - s[0]
        up = kind in ("brighter", "more_saturated", "warmer")
        return (delta >= p.get("min", default)) if up else (-delta >= p.get("min", default)), f"{delta:+.2f}"
    if kind in ("more_contrast", "less_contrast"):
        s = stat("stdL", photo, spec, src, out)
        if s is None:
            return False, "no region"
        ratio = s[1] / max(s[0], 1e-6)
        want = p.get("min_ratio", 1.1)
        return (ratio >= want) if kind == "more_contrast" else (ratio <= 1 / want), f"{ratio:.3f}"
    if kind == "grayscale":
        x = lab(out)[region(photo, spec)] if same else (lab(out).reshape(-1, 3) if spec in (None, "all") else None)
        if x is None or not len(x):
            return False, "no region"
        c = float(np.hypot(x[..., 1], x[..., 2]).mean())
        return c <= p.get("max_chroma", 4), f"{c:.2f}"
    if kind in ("hue_near", "color_near"):
        x = lab(out)[region(photo, spec)] if same else (lab(out).reshape(-1, 3) if spec in (None, "all") else None)
        if x is None or not len(x):
            return False, "no region"
        target = rgb_to_lab(parse_color(p["color"]).reshape(1, 3))[0]
        if kind == "color_near":
            de = float(np.linalg.norm(x.mean(axis=0) - target))
            return de <= p.get("max_de", 25), f"dE {de:.1f}"
        hue, chroma = hue_of(x)
        want = float(np.degrees(np.arctan2(target[2], target[1])) % 360)
        gap = min(abs(hue - want) % 360, 360 - abs(hue - want) % 360)
        return gap <= p.get("max_deg", 30) and chroma >= 10, f"{gap:.0f} deg, chroma {chroma:.0f}"
    if kind in ("blurrier", "sharper", "less_noise"):
        if not same:
            return False, "size differs"
        r = region(photo, spec)
        if not r.any():
            return False, "no region"
        f = noise if kind == "less_noise" else laplace_var
        ratio = f(out, r) / max(f(src, r), 1e-12)
        if kind == "blurrier":
            return ratio <= p.get("max_ratio", 0.6), f"{ratio:.3f}"
        if kind == "sharper":
            return ratio >= p.get("min_ratio", 1.2), f"{ratio:.3f}"
        return ratio <= p.get("max_ratio", 0.8), f"{ratio:.3f}"
    if kind == "aspect":
        got = out.width / out.height
        return abs(got - p["ratio"]) <= p.get("tol", 0.02) * p["ratio"], f"{got:.4f}"
    if kind == "size":
        if "scale" in p:
            ok = (out.width, out.height) == (round(src.width * p["scale"]), round(src.height * p["scale"]))
        else:
            ok = (out.width, out.height) == (p["width"], p["height"])
        return ok, f"{out.width}x{out.height}"
    if kind == "same_size":
        return same, f"{out.width}x{out.height}"
    if kind == "smaller":
        return out.width * out.height < src.width * src.height, f"{out.width}x{out.height}"
    if kind in ("flipped", "rotated"):
        a = src.pixels
        if kind == "flipped":
            want = a[:, ::-1] if p.get("axis", "horizontal").startswith("h") else a[::-1]
        else:
            want = np.rot90(a, {90: 1, 180: 2, 270: 3}[int(p["degrees"])])
        if want.shape != out.pixels.shape:
            return False, f"shape {out.pixels.shape[:2]}"
        d = float(np.abs(want.astype(np.float32) - out.pixels.astype(np.float32)).mean() / 255)
        return d <= p.get("max", 0.03), f"{d:.4f}"
    if kind == "less_of":
        from banana.experts.perception import segment

        def area(img: Image) -> float:
            try:
                return float((segment(image=img, target=p["target"]).alpha > 0.5).mean())
            except ValueError:
                return 0.0

        before = area(src)
        return area(out) <= p.get("max_ratio", 0.5) * before, f"{before:.3f}"
    if kind in ("identity_kept", "faces_kept"):
        from banana.experts.embeddings import distance
        from banana.experts.identity import faces_of

        a, b = faces_of(src), faces_of(out)
        if kind == "faces_kept":
            return len(b) >= len(a), f"{len(a)} -> {len(b)}"
        if not a:
            return True, "no face"
        worst = max(min((distance(np.asarray(f.embedding), np.asarray(g.embedding)) for g in b), default=9.9) for f in a)
        return worst <= p.get("max", 0.6), f"{worst:.3f}"
    if kind == "not_constant":
        s = float(lab(out)[..., 0].std())
        return s >= 2, f"{s:.1f}"
    raise ValueError(f"unknown predicate kind {kind!r}")


def judge(case: dict[str, Any], out: Image | None) -> tuple[bool, list[str]]:
    if out is None:
        return False, ["no picture"]
    src = sample(case["image"])
    notes, ok = [], True
    for p in case["expect"]:
        good, value = holds(p, case["image"], src, out)
        ok &= good
        notes.append(f"{'ok' if good else 'FAIL'} {p['kind']}({p.get('region', 'all')}) = {value}")
    return ok, notes


# ---------------------------------------------------------------- the run


def attempt(case: dict[str, Any], planner: Any, registry: Registry, critic: bool,
            router: Router | None = None) -> tuple[LoopResult | None, float, str]:  # fmt: skip
    t = time.perf_counter()
    with Executor(registry, cache=ResultCache()) as ex, routing(router):
        try:
            result = run_loop(case["instruction"], {"input": sample(case["image"])}, planner, ex, registry, critic=critic)
        except (PlanningError, ValueError, RuntimeError) as exc:  # NeedsWeights and the like: no picture
            return None, time.perf_counter() - t, f"{type(exc).__name__}: {exc}"
    return result, time.perf_counter() - t, ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=Path, default=HERE / "blind_v1.jsonl")
    ap.add_argument("--only", default="", help="comma-separated case ids")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--traces", type=Path, default=None, help="route with the router learned from this traces file (default: fixed order)")
    args = ap.parse_args()
    if args.traces is not None and not args.traces.is_file():
        ap.error(f"--traces {args.traces}: no such traces file")
    cases = [json.loads(line) for line in args.cases.read_text().splitlines() if line.strip()]
    if args.only:
        cases = [c for c in cases if c["id"] in args.only.split(",")]
    if args.limit:
        cases = cases[: args.limit]
    registry = default_registry()
    planner = make_planner(registry)
    router = None
    if args.traces is not None:
        router = Router(TraceStore(args.traces))
        print("routing with what the traces teach:\n" + "\n".join(r["rule"] for r in router.rules() if r["chosen"]), flush=True)
    warm = cases[0]  # load the experts the first case needs before timing anything
    attempt(warm, planner, registry, True, router)
    rows = []
    for case in cases:
        one, t1, err1 = attempt(case, planner, registry, critic=False, router=router)
        ok1, notes1 = judge(case, one.image if one and isinstance(one.image, Image) else None)
        loop, t2, err2 = attempt(case, planner, registry, critic=True, router=router)
        ok2, notes2 = judge(case, loop.image if loop and isinstance(loop.image, Image) else None)
        row = {
            "id": case["id"],
            "instruction": case["instruction"],
            "single": ok1,
            "loop": ok2,
            "single_s": round(t1, 3),
            "loop_s": round(t2, 3),
            "single_plan": one.attempts[0].description if one and one.attempts else err1 or (one.refusal if one else ""),
            "loop_plan": loop.critique.description if loop and loop.critique else err2 or (loop.refusal if loop else ""),
            "loop_attempts": len(loop.attempts) if loop else 0,
            "loop_passed_critic": bool(loop and loop.passed),
            "loop_stopped": loop.stopped if loop else err2,
            "loop_how": [a.how for a in loop.attempts] if loop else [],
            "single_notes": notes1,
            "loop_notes": notes2,
        }
        rows.append(row)
        mark = {(True, True): "ok  ", (False, True): "FIX ", (True, False): "WORSE", (False, False): "fail"}[(ok1, ok2)]
        print(
            f"{mark} {case['id']:24s} 1-pass {t1:5.1f}s loop {t2:5.1f}s x{row['loop_attempts']} "
            f"critic={'pass' if row['loop_passed_critic'] else 'FAIL'} "
            f"| {row['loop_plan'][:70]} | {'; '.join(n for n in notes2 if n.startswith('FAIL'))}",
            flush=True,
        )
    n = len(rows)
    single = sum(r["single"] for r in rows)
    looped = sum(r["loop"] for r in rows)
    fixed = sum(r["loop"] and not r["single"] for r in rows)
    worse = sum(r["single"] and not r["loop"] for r in rows)
    critic_agrees = sum(r["loop_passed_critic"] == r["loop"] for r in rows)
    t1s, t2s = np.array([r["single_s"] for r in rows]), np.array([r["loop_s"] for r in rows])
    summary = {
        "cases": n,
        "single_pass": single,
        "loop": looped,
        "fixed": fixed,
        "made_worse": worse,
        "single_median_s": float(np.median(t1s)),
        "single_p90_s": float(np.percentile(t1s, 90)),
        "loop_median_s": float(np.median(t2s)),
        "loop_p90_s": float(np.percentile(t2s, 90)),
        "critic_agrees_with_predicates": critic_agrees,
        "routing": f"router learned from {args.traces}" if args.traces else "fixed cost order",
        "rerouted": sum(any("other implementation" in h for h in r["loop_how"]) for r in rows),
    }
    args.out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=1) + "\n")
    print(
        f"\n| mode | pass | median s | p90 s |\n|---|---|---|---|\n| single pass | {single}/{n} = {single / n:.0%} | "
        f"{summary['single_median_s']:.2f} | {summary['single_p90_s']:.2f} |\n| loop | {looped}/{n} = {looped / n:.0%} | "
        f"{summary['loop_median_s']:.2f} | {summary['loop_p90_s']:.2f} |"
    )
    print(f"\nfixed by the loop: {fixed}; made worse: {worse}; the critic's verdict agreed with the predicates on {critic_agrees}/{n}")


if __name__ == "__main__":
    main()
