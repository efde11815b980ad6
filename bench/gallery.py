"""The README's gallery: real requests on the sample photos, through the same loop as ``banana edit``.

Each case is planned by the configured planner (the embedded one by default), run by the executor and
judged by the critic exactly as ``banana edit sample:NAME "INSTRUCTION" -o out.png`` does, so the
pictures always show what the code does today. It writes

- ``docs/gallery/<name>.jpg``: the photo and the result side by side, each 320 px tall (JPEG, small);
- ``docs/gallery.md``: every case with its command, its plan as steps, the critic's verdict and timings;
- the block between ``<!-- gallery:start -->`` and ``<!-- gallery:end -->`` in ``README.md``.

A case whose plan does not use the tool it is meant to show, or whose result fails the critic, stops the
script (exit 1) instead of publishing a wrong picture. Run: ``make gallery`` (about a minute on a CPU).
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from PIL import Image as PILImage

from banana.agent.executor import Executor
from banana.agent.loop import run_loop
from banana.agent.planner import PlanRequest, make_planner
from banana.agent.samples import sample
from banana.agent.surface import to_steps
from banana.tools.registry import Registry, default_registry

ROOT = Path(__file__).resolve().parent.parent
HEIGHT = 320  # px, each half of a pair
GAP = 6  # px of white between before and after
START, END = "<!-- gallery:start -->", "<!-- gallery:end -->"


@dataclass(frozen=True)
class Case:
    """One request: which photo, what the user types, and the tools its plan must use to be shown."""

    name: str
    photo: str
    instruction: str
    shows: tuple[str, ...]


CASES = [
    Case("background-blur", "astronaut", "blur the background behind her", ("segment", "invert", "blur")),
    Case("colour-splash", "grace_hopper", "make everything black and white except the person", ("segment", "invert", "adjust")),
    Case("dehaze", "china", "remove the haze", ("dehaze",)),
    Case("pink-sky", "china", "turn the sky pink", ("segment", "recolor")),
    Case("blue-hair", "astronaut", "make her hair blue", ("segment", "recolor")),
    Case("new-background", "grace_hopper", "replace the background with solid blue", ("replace_background",)),
    Case("watercolor", "chelsea", "make it look like a watercolor painting", ("stylize",)),
    Case("blur-face", "astronaut", "blur her face", ("detect_faces", "blur")),
]


def side_by_side(before: np.ndarray, after: np.ndarray) -> PILImage.Image:
    """Both pictures scaled to HEIGHT px tall, before on the left, a thin white gap between."""
    halves = []
    for pixels in (before, after):
        img = PILImage.fromarray(pixels)
        halves.append(img.resize((round(img.width * HEIGHT / img.height), HEIGHT), PILImage.Resampling.LANCZOS))
    sheet = PILImage.new("RGB", (halves[0].width + GAP + halves[1].width, HEIGHT), "white")
    sheet.paste(halves[0], (0, 0))
    sheet.paste(halves[1], (halves[0].width + GAP, 0))
    return sheet


def steps_inline(steps: str) -> str:
    """The steps on one line for a table cell: `a` → `b`."""
    return " → ".join(f"`{line.strip()}`" for line in steps.splitlines() if line.strip())


def short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_case(case: Case, planner: object, registry: Registry) -> dict[str, str]:
    """Plan, run and judge one case like ``banana edit``; write its picture; return what the pages show."""
    photo = sample(case.photo)
    start = time.perf_counter()
    with Executor(registry) as executor:
        result = run_loop(PlanRequest(instruction=case.instruction), {"input": photo}, planner, executor, registry)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    if result.refusal or result.image is None or result.program is None:
        raise SystemExit(f"{case.name}: {result.explain()}")
    tools = {node.tool for node in result.program.nodes}
    missing = [t for t in case.shows if t not in tools]
    if missing:
        raise SystemExit(f"{case.name}: the plan does not use {', '.join(missing)}:\n{to_steps(result.program, registry)}")
    if not result.passed:
        raise SystemExit(f"{case.name}: the critic failed the result: {result.explain()}")
    out = ROOT / "docs" / "gallery" / f"{case.name}.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    side_by_side(photo.pixels, result.image.pixels).save(out, quality=80, optimize=True, progressive=True)  # type: ignore[union-attr]
    return {
        "name": case.name,
        "photo": case.photo,
        "instruction": case.instruction,
        "steps": to_steps(result.program, registry),
        "verdict": result.critique.description if result.critique else "",
        "seconds": f"{seconds:.1f}",
        "attempts": str(len(result.attempts)),
        "history": "; ".join(f"attempt {a.index + 1} ({a.how}): {to_steps(a.program, registry).replace(chr(10), ' → ')}, "
                             f"{'passed' if a.critique.passed else 'failed: ' + short(a.critique.summary())}" for a in result.attempts),
        "kb": f"{out.stat().st_size / 1024:.0f}",
    }


def repaired(row: dict[str, str]) -> str:
    """A note for a result the loop reached after the critic failed an earlier attempt."""
    return "" if row["attempts"] == "1" else f"<br><sub>attempt {row['attempts']}: the critic failed the first plan</sub>"


def readme_block(rows: list[dict[str, str]]) -> str:
    """The README's compact gallery: picture, request, plan."""
    lines = [START, "", "| before → after | you type | Banana plans |", "|---|---|---|"]
    for r in rows:
        lines.append(f'| <img src="docs/gallery/{r["name"]}.jpg" height="120" alt="{r["instruction"]}"> '
                     f'| `sample:{r["photo"]}`<br>"{r["instruction"]}" | {steps_inline(r["steps"])}{repaired(r)} |')
    lines += ["", "More about each (the command, timings, the critic's verdict): [docs/gallery.md](docs/gallery.md). "
              "Made by `make gallery` from the code as it is.", "", END]
    return "\n".join(lines)


def gallery_page(rows: list[dict[str, str]], planner_name: str) -> str:
    lines = [
        "# Gallery",
        "",
        "Generated by `make gallery` (`python -m bench.gallery`): each request below was planned by the "
        f"{planner_name} planner, run by the executor and judged by the critic, exactly as the command under it does, "
        "on the embedded CPU set-up (no GPU, no diffusion weights). Left: the sample photo; right: the result.",
        "Do not edit by hand: change `CASES` in `bench/gallery.py` and run `make gallery`.",
        "",
    ]
    for r in rows:
        lines += [
            f"## {r['instruction']}",
            "",
            f"![{r['instruction']}](gallery/{r['name']}.jpg)",
            "",
            "```",
            f'banana edit sample:{r["photo"]} "{r["instruction"]}" -o {r["name"]}.png',
            "```",
            "",
            "The plan, as steps:",
            "",
            "```",
            r["steps"],
            "```",
            "",
            f"The critic: {r['verdict']} ({r['attempts']} attempt(s), {r['seconds']} s including the critic, "
            "with the planner already loaded; the first case also loads the expert models).",
            "",
        ]
        if r["attempts"] != "1":
            lines += [f"How the loop got there: {r['history']}.", ""]
    return "\n".join(lines)


def update_readme(block: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} block to fill")
    readme.write_text(pattern.sub(lambda _: block, text, count=1))


def main(names: list[str]) -> None:
    registry = default_registry()
    planner = make_planner(registry, None, None, None, None)
    cases = [c for c in CASES if not names or c.name in names]
    rows = []
    for case in cases:
        row = run_case(case, planner, registry)
        print(f"{case.name}: {row['seconds']} s, {row['kb']} KB\n{row['steps']}", flush=True)
        rows.append(row)
    if names:  # a partial run refreshes pictures only
        return
    (ROOT / "docs" / "gallery.md").write_text(gallery_page(rows, getattr(getattr(planner, "backend", None), "name", "configured")))
    update_readme(readme_block(rows))
    total = sum((ROOT / "docs" / "gallery" / f"{r['name']}.jpg").stat().st_size for r in rows)
    print(f"{len(rows)} pictures, {total / 1024:.0f} KB in docs/gallery/")


if __name__ == "__main__":
    main(sys.argv[1:])
