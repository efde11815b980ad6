"""Self-play: Banana runs against itself where the right answer is known, and learns from the traces.

Two kinds of play, both on the *training* sample photos only (``TRAIN_PHOTOS``; the others
are held out for ``bench/router.py``):

1. Routing play (:func:`route_tasks`, :func:`play_routes`): a photo crop is damaged in a known
   way (an object pasted on, noise, blur, halved size); the clean crop is the reference. The
   routed tool runs under the router in exploration mode (Thompson sampling); each attempt's
   critique, latency and distance to the reference go into the traces, and the router learns.
2. Planner play (:func:`play_plans`): a request from the generator's TRAIN templates (never the
   held-out ones, never an evaluation set) on a photo; the gold program's result is the
   reference. The planner samples K plans; each runs and is judged by the critic and by pixel
   distance to the reference, so two programs that make the same picture both count. Accepted
   plans and (failed plan + critique -> passing plan) pairs become training pairs (JSONL) for
   ``banana planner train --from-traces``.

Distances are relative to a pass line: ``distance <= 1`` means close enough to the reference.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel

from banana.agent.critic import Critique, critique
from banana.agent.executor import Executor, ResultCache, RunResult
from banana.agent.program import Program, ProgramError, ValidProgram, validate
from banana.agent.router import Router, routing
from banana.agent.samples import sample
from banana.agent.traces import TraceStore, node_rows
from banana.tools.registry import Registry
from banana.tools.values import Image, Mask, Value

TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
HELDOUT_PHOTOS = ("motorcycle", "china", "flower", "grace_hopper")  # never played on: bench/router.py measures on these
ROUTED_TOOLS = ("remove", "denoise", "sharpen", "upscale")
PLAN_SIDE = 256  # planner play runs on pictures this big at most (speed; the reference sees the same picture)
PLAN_MATCH = 0.03  # mean absolute difference (0..1) to the gold result that counts as "the same picture"
NO_OP = 0.004  # a gold result closer than this to the input teaches nothing (e.g. "pixelate the faces" on a cat)


# ---------------------------------------------------------------- routing play


@dataclass
class RouteTask:
    """One routed tool call on a damaged crop whose clean original is known."""

    tool: str
    program: dict[str, Any]
    inputs: dict[str, Value]
    truth: np.ndarray  # the reference pixels (uint8)
    region: np.ndarray  # bool: where the distance is measured
    pass_line: float  # mean absolute difference (0..1) that is just good enough
    note: str

    def distance(self, out: Value | None) -> float | None:
        """Distance to the reference relative to the pass line (<= 1 passes); None when there is no picture to compare."""
        if not isinstance(out, Image) or out.pixels.shape != self.truth.shape:
            return None
        diff = np.abs(out.pixels.astype(np.float32) - self.truth.astype(np.float32)).mean(axis=2) / 255.0
        return float(diff[self.region].mean() / self.pass_line)


def _one(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "nodes": [{"id": "out", "tool": tool, "args": args}], "output": "$out"}


def _mad(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2) / 255.0
    return float(d[region].mean() if region is not None else d.mean())


def _crop(photo: Image, rng: random.Random, side: int) -> np.ndarray:
    h, w = photo.pixels.shape[:2]
    side = min(side, h, w) // 2 * 2
    y, x = rng.randrange(0, h - side + 1), rng.randrange(0, w - side + 1)
    return np.ascontiguousarray(photo.pixels[y : y + side, x : x + side])


def route_task(tool: str, photo: Image, rng: random.Random) -> RouteTask:
    """A damaged crop of ``photo`` for ``tool``, with its clean original as the reference."""
    clean = _crop(photo, rng, rng.choice([96, 128, 192, 256]))
    h, w = clean.shape[:2]
    if tool == "remove":
        r = rng.choice([3, 5, 9, 14, 22, 32])
        cy, cx = rng.randrange(r + 4, h - r - 4), rng.randrange(r + 4, w - r - 4)
        disk = np.zeros((h, w), np.uint8)
        cv2.circle(disk, (cx, cy), r, 1, -1)
        damaged = clean.copy()
        damaged[disk > 0] = rng.choice([(220, 30, 30), (30, 30, 30), (240, 240, 240), (40, 160, 60)])
        region = cv2.dilate(disk, np.ones((5, 5), np.uint8)) > 0
        base = _mad(damaged, clean, region)
        return RouteTask(tool, _one("remove", {"image": "$input", "mask": "$input1"}),
                         {"input": Image(damaged), "input1": Mask(disk.astype(np.float32))}, clean, region,
                         max(0.04, 0.35 * base), f"disk r={r} on {h}x{w}")  # fmt: skip
    if tool == "denoise":
        sigma = rng.choice([3.0, 8.0, 15.0, 25.0, 40.0])
        noisy = np.clip(clean + np.random.default_rng(rng.randrange(1 << 30)).normal(0, sigma, clean.shape), 0, 255).astype(np.uint8)
        region = np.ones((h, w), bool)
        return RouteTask(tool, _one("denoise", {"image": "$input", "amount": 0.5}), {"input": Image(noisy)}, clean, region,
                         0.6 * _mad(noisy, clean), f"noise sigma={sigma:g} on {h}x{w}")  # fmt: skip
    if tool == "sharpen":
        blur, grain = rng.choice([0.8, 1.5, 2.5]), rng.choice([0.0, 0.0, 6.0, 12.0])
        soft = cv2.GaussianBlur(clean.astype(np.float32), (0, 0), blur)
        soft = soft + np.random.default_rng(rng.randrange(1 << 30)).normal(0, grain, soft.shape) if grain else soft
        soft = np.clip(soft, 0, 255).astype(np.uint8)
        return RouteTask(tool, _one("sharpen", {"image": "$input", "amount": 0.5}), {"input": Image(soft)}, clean,
                         np.ones((h, w), bool), 0.95 * _mad(soft, clean), f"blur {blur:g} + grain {grain:g} on {h}x{w}")  # fmt: skip
    if tool == "upscale":
        small = cv2.resize(clean, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        naive = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return RouteTask(tool, _one("upscale", {"image": "$input", "factor": 2}), {"input": Image(small)}, clean,
                         np.ones((h, w), bool), _mad(naive, clean), f"x2 of {w // 2}x{h // 2} (pass line: bilinear)")  # fmt: skip
    raise ValueError(f"no routing task for tool {tool!r}; known: {', '.join(ROUTED_TOOLS)}")


def route_tasks(n: int, photos: tuple[str, ...] = TRAIN_PHOTOS, seed: int = 0, tools: tuple[str, ...] = ROUTED_TOOLS) -> list[RouteTask]:
    rng = random.Random(seed)
    pictures = {p: sample(p) for p in photos}
    return [route_task(tools[i % len(tools)], pictures[rng.choice(photos)], rng) for i in range(n)]


@dataclass
class Played:
    """One executed task: the implementation that ran, whether it passed, its latency and distance."""

    impl: str
    bucket: str
    passed: bool
    critic_passed: bool
    distance: float | None
    latency: float | None


def run_task(task: RouteTask, registry: Registry, executor: Executor, store: TraceStore | None = None,
             router: Router | None = None, source: str = "selfplay") -> Played:  # fmt: skip
    """Run one task under whatever policy is installed; traces and the router learn from it."""
    valid = validate(task.program, registry, inputs={k: v.type_name for k, v in task.inputs.items()})
    run = executor.run(valid, task.inputs)
    crit = critique(valid, run, task.inputs, registry, identity=False)
    dist = task.distance(run.outputs.get(valid.output))
    rows = node_rows(valid, run, crit, registry, source=source, request=task.note, distance=dist)
    if store is not None:
        store.add(rows)
    if router is not None:
        for r in rows:
            if r.impl != "default":
                router.observe(r.tool, r.impl, r.version, r.bucket, r.passed, r.latency, r.distance)
    row = rows[0] if rows else None
    ok = bool(row and row.passed) and dist is not None and dist <= 1.0
    return Played(row.impl if row else "?", row.bucket if row else "", ok, bool(row and row.passed), dist, row.latency if row else None)


def play_routes(tasks: list[RouteTask], registry: Registry, store: TraceStore, router: Router, deadline: float | None = None,
                say: Callable[[str], None] = lambda _: None) -> list[Played]:  # fmt: skip
    """Routing self-play: explore (Thompson sampling) on each task; every attempt is a trace the router learns from."""
    explore, router.explore = router.explore, True
    out = []
    try:
        with Executor(registry, cache=ResultCache(max_bytes=0)) as ex, routing(router):
            for i, task in enumerate(tasks):
                if deadline is not None and time.monotonic() > deadline:
                    say(f"routing play: time is up after {i} tasks")
                    break
                p = run_task(task, registry, ex, store, router)
                out.append(p)
                say(f"route {i + 1}/{len(tasks)} {task.tool} [{p.bucket}] {task.note}: {p.impl} "
                    f"{'pass' if p.passed else 'FAIL'} d={p.distance if p.distance is None else round(p.distance, 2)}")  # fmt: skip
    finally:
        router.explore = explore
    return out


# ---------------------------------------------------------------- planner play


class PlanOutcome(BaseModel):
    text: str
    valid: bool
    produced: bool = False
    critic_passed: bool = False  # no hard check fails that the gold program's own result does not also fail
    distance: float | None = None  # mean absolute difference to the gold result (0..1)
    lines: list[str] = []

    @property
    def accepted(self) -> bool:
        return self.critic_passed and self.distance is not None and self.distance <= PLAN_MATCH


class PlayRecord(BaseModel):
    """One request played: what the planner proposed and how each proposal fared."""

    instruction: str
    gold: str
    photo: str
    family: str
    outcomes: list[PlanOutcome]  # the greedy plan first, then the samples

    @property
    def greedy_accepted(self) -> bool:
        return bool(self.outcomes) and self.outcomes[0].accepted


def shrink(image: Image, side: int = PLAN_SIDE) -> Image:
    h, w = image.pixels.shape[:2]
    s = min(1.0, side / max(h, w))
    if s == 1.0:
        return image
    return Image(cv2.resize(image.pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA))


def _execute(program: Program, picture: Image, registry: Registry, executor: Executor,
             request: str) -> tuple[ValidProgram, RunResult, Critique]:  # fmt: skip
    valid = validate(program, registry, inputs={"input": "Image"})
    run = executor.run(valid, {"input": picture})
    return valid, run, critique(valid, run, {"input": picture}, registry, request=request)


def play_request(instruction: str, gold_steps: str, photo: str, family: str, propose: Callable[[], list[str]], registry: Registry,
                 executor: Executor, store: TraceStore | None = None) -> PlayRecord | None:  # fmt: skip
    """Run the gold program (the reference), then each plan text ``propose()`` returns; None when the gold cannot run here.

    (Generative requests need diffusion weights, open-vocabulary nouns a detector: those are skipped before the planner is asked.)
    """
    from banana.agent.planner.base import Refusal, read_answer

    picture = shrink(sample(photo))
    try:
        gold = read_answer(gold_steps, "steps", registry)
        if isinstance(gold, Refusal):
            return None
        _, gold_run, gold_crit = _execute(gold, picture, registry, executor, instruction)
    except Exception:  # needs weights, or an input this set-up refuses
        return None
    reference = gold_run.outputs.get(gold_run.output_id)
    if not isinstance(reference, Image):
        return None
    if reference.pixels.shape == picture.pixels.shape and _mad(reference.pixels, picture.pixels) < NO_OP:
        return None  # the gold program changes (almost) nothing on this photo: any plan that does nothing would "match"
    excused = {r.check for r in gold_crit.hard_failures}  # the critic is wrong about the gold itself here: do not hold it against a plan
    outcomes = []
    run_id = uuid.uuid4().hex
    for text in propose():
        try:
            answer = read_answer(text, "steps", registry)
            if isinstance(answer, Refusal):
                outcomes.append(PlanOutcome(text=text, valid=True, lines=[f"refused: {answer.reason}"]))
                continue
            valid, run, crit = _execute(answer, picture, registry, executor, instruction)
        except ProgramError as exc:
            outcomes.append(PlanOutcome(text=text, valid=False, lines=[str(p) for p in exc.problems]))
            continue
        except Exception as exc:  # a plan that cannot run here (weights) is a failed plan, not a crash
            outcomes.append(PlanOutcome(text=text, valid=True, lines=[f"could not run: {type(exc).__name__}: {exc}"]))
            continue
        out = run.outputs.get(valid.output)
        dist = _mad(out.pixels, reference.pixels) if isinstance(out, Image) and out.pixels.shape == reference.pixels.shape else None
        lines = crit.lines()
        if dist is None or dist > PLAN_MATCH:
            shown = "not comparable" if dist is None else f"mean difference {dist:.3f}"
            lines.append(f"program: the result differs from the expected picture ({shown})")
        judged = all(r.check in excused for r in crit.hard_failures)
        outcomes.append(PlanOutcome(text=text, valid=True, produced=run.ok, critic_passed=judged, distance=dist, lines=lines))
        if store is not None:
            store.add(node_rows(valid, run, crit, registry, source="selfplay-plan", request=instruction, run_id=run_id))
    return PlayRecord(instruction=instruction, gold=gold_steps, photo=photo, family=family, outcomes=outcomes)


def training_pairs(record: PlayRecord) -> list[dict[str, str]]:
    """What the planner can learn from one played request, as prompt/completion pairs.

    Only where it erred: when the greedy plan already passed, the request repeats what the planner does
    (round 1 measured no gain from such pairs) and gives no direct pair. When the greedy plan failed, the
    plain request gets the best accepted sample (``accepted``: sampling found a better first answer) or
    else the gold program (``direct->gold``). Every failed plan becomes a repair (failed plan + critique ->
    passing plan), as the loop would show it.
    """
    from banana.agent.planner.base import prompt_for
    from banana.agent.planner.train import completion_for

    accepted = sorted((o for o in record.outcomes if o.accepted), key=lambda o: (o.distance or 0.0, len(o.text)))
    target, kind = (accepted[0].text, "accepted") if accepted else (record.gold, "gold")
    pairs = []
    if not record.greedy_accepted:
        pairs.append({"kind": "accepted" if accepted else "direct->gold", "prompt": prompt_for(record.instruction),
                      "completion": completion_for(target)})  # fmt: skip
    seen = set()
    for o in record.outcomes:
        if o.accepted or o.text in seen or not o.text.strip() or o.text.strip() == target.strip():
            continue
        seen.add(o.text)
        prompt = prompt_for(record.instruction, o.text, o.lines[:6])
        pairs.append({"kind": f"repair->{kind}", "prompt": prompt, "completion": completion_for(target)})
    return pairs


def family_stats(records: list[PlayRecord]) -> dict[str, dict[str, int]]:
    """Per generator family (each clause of a compound counts): requests played and greedy plans that failed."""
    stats: dict[str, dict[str, int]] = {}
    for rec in records:
        for fam in sorted(set(rec.family.split("+"))):
            s = stats.setdefault(fam, {"played": 0, "greedy_failed": 0})
            s["played"] += 1
            s["greedy_failed"] += not rec.greedy_accepted
    return stats


def focus_weights(stats: dict[str, dict[str, int]], prior: float = 10.0, low: float = 0.5, high: float = 4.0) -> dict[str, float]:
    """How much more often the next training should draw each family: its greedy failure rate over the overall rate.

    Each family's rate is shrunk toward the overall rate by ``prior`` pseudo-requests, so a family
    played three times is not boosted four-fold by one miss; the ratio is clamped to [low, high].
    """
    played = sum(s["played"] for s in stats.values())
    failed = sum(s["greedy_failed"] for s in stats.values())
    if not played:
        return {}
    overall = max(failed / played, 1e-3)
    out = {}
    for fam, s in sorted(stats.items()):
        rate = (s["greedy_failed"] + prior * overall) / (s["played"] + prior)
        out[fam] = round(min(high, max(low, rate / overall)), 3)
    return out


def focus_path(pairs: Path) -> Path:
    """Where self-play keeps the per-family counts beside its pairs file."""
    return pairs.with_name(pairs.stem + ".focus.json")


def write_focus(pairs: Path, records: list[PlayRecord]) -> Path:
    """Add these records' family counts to the focus file beside ``pairs`` (pairs are appended, so are counts)."""
    path = focus_path(pairs)
    stats = json.loads(path.read_text())["families"] if path.exists() else {}
    for fam, s in family_stats(records).items():
        old = stats.setdefault(fam, {"played": 0, "greedy_failed": 0})
        old["played"] += s["played"]
        old["greedy_failed"] += s["greedy_failed"]
    path.write_text(json.dumps({"families": stats, "weights": focus_weights(stats)}, indent=1, sort_keys=True) + "\n")
    return path


def read_focus(path: Path) -> dict[str, float]:
    """The family weights of a focus file, each a positive number (a damaged file is named, not trained on)."""
    try:
        weights = json.loads(path.read_text())["weights"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a self-play focus file ({type(exc).__name__}: {exc})") from None
    if not isinstance(weights, dict) or not all(isinstance(v, int | float) and v > 0 for v in weights.values()):
        raise ValueError(f"{path}: 'weights' must map family names to positive numbers")
    return {str(k): float(v) for k, v in weights.items()}


def _same_program(text: str, gold: str, registry: Registry) -> bool:
    """Whether a plan text is the gold program up to node ids and order (then it makes the gold's picture: no need to run it)."""
    from banana.agent.loop import program_key
    from banana.agent.planner.base import Refusal, read_answer

    try:
        a, b = read_answer(text, "steps", registry), read_answer(gold, "steps", registry)
    except ProgramError:
        return False
    if isinstance(a, Refusal) or isinstance(b, Refusal):
        return False
    return program_key(a) == program_key(b)


def play_plans(n: int, seed: int, k: int, planner: Any, registry: Registry, store: TraceStore | None, out: Path,
               deadline: float | None = None, say: Callable[[str], None] = lambda _: None) -> list[PlayRecord]:  # fmt: skip
    """Planner self-play on ``n`` TRAIN-template requests; appends training pairs to ``out`` (JSONL).

    The greedy plan comes first. When it is the gold program (up to ids and order) the request is
    recorded as passed without running anything or sampling: the play spends its time where the
    planner errs. Otherwise the gold and every plan (greedy + ``k`` samples) run and are judged.
    """
    from banana.agent.planner.base import PlanRequest
    from banana.agent.planner.data import Generator

    examples = [e for e in Generator(seed, "train", registry, hard=True).examples(n * 6) if not e.refusal and not e.heldout]
    rng = random.Random(seed)
    records: list[PlayRecord] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with Executor(registry, cache=ResultCache(max_bytes=256 << 20)) as ex, out.open("a") as sink:
        for i, ex_ in enumerate(examples):
            if len(records) >= n:
                break
            if deadline is not None and time.monotonic() > deadline:
                say(f"planner play: time is up after {len(records)} requests")
                break
            req = PlanRequest(instruction=ex_.instruction)
            photo = rng.choice(TRAIN_PHOTOS)
            greedy = planner.backend.generate(req)
            if _same_program(greedy, ex_.steps, registry):
                rec = PlayRecord(instruction=ex_.instruction, gold=ex_.steps, photo=photo, family=ex_.family, outcomes=[
                    PlanOutcome(text=greedy, valid=True, produced=True, critic_passed=True, distance=0.0, lines=["the gold program"])])
            else:

                def propose(req: PlanRequest = req, i: int = i, greedy: str = greedy) -> list[str]:
                    return list(dict.fromkeys([greedy, *planner.backend.sample(req, k=k, seed=seed * 1000 + i)]))

                rec = play_request(ex_.instruction, ex_.steps, photo, ex_.family, propose, registry, ex, store)
            if rec is None:
                continue
            records.append(rec)
            for pair in training_pairs(rec):
                sink.write(json.dumps({**pair, "instruction": rec.instruction, "family": rec.family}) + "\n")
            sink.flush()
            say(f"plan {len(records)}/{n} {ex_.instruction!r}: greedy {'passed' if rec.greedy_accepted else 'failed'}, "
                f"{sum(o.accepted for o in rec.outcomes)}/{len(rec.outcomes)} accepted")  # fmt: skip
    return records


# ---------------------------------------------------------------- play on requests without answers: the loop teaches the planner

PHOTO_WORDS = (  # which TRAIN photo a request is about (held-out photos are never played on: their requests are skipped)
    ("chelsea", r"\b(cat|kitty|tabby|fur|whiskers)\b"),
    ("coffee", r"\b(cup|mug|coffee|saucer|table|spoon)\b"),
    ("rocket", r"\b(rocket|launch|pad)\b"),
    ("astronaut", r"\b(astronaut|suit|flag|her|she|woman|face|skin|hair)\b"),
)
HELDOUT_WORDS = r"\b(bike|motorcycle|motorbike|garage|tower|temple|pagoda|flower|petals?|grace|hopper|uniform)\b"


def photo_for(request: str) -> str | None:
    """The TRAIN photo a request talks about (one picked by the request's text when it names nothing we know); None when it
    names a held-out photo's things (those photos are never played on)."""
    low = request.lower()
    if re.search(HELDOUT_WORDS, low):
        return None
    named = next((photo for photo, words in PHOTO_WORDS if re.search(words, low)), None)
    return named or TRAIN_PHOTOS[int(hashlib.sha1(low.encode()).hexdigest(), 16) % len(TRAIN_PHOTOS)]


def loop_pairs(request: str, result: Any, registry: Registry) -> list[dict[str, str]]:
    """What the loop taught on one request: when its first plan failed the critic and a later attempt passed with another
    program, the plain request -> that program (``loop->direct``) and the failed plan + critique -> it (``loop->repair``),
    in the embedded planner's steps form (what ``banana planner train --from-traces`` reads)."""
    from banana.agent.loop import program_key
    from banana.agent.planner.base import prompt_for
    from banana.agent.planner.train import completion_for
    from banana.agent.surface import to_steps

    if not result.passed or not result.attempts or result.attempts[0].critique.passed:
        return []
    first, final = Program.model_validate(result.attempts[0].program), result.program
    if program_key(first) == program_key(final):
        return []  # the loop passed by running the same program another way (an implementation swap): nothing to plan differently
    target, wrong = to_steps(final, registry), to_steps(first, registry)
    return [
        {"kind": "loop->direct", "prompt": prompt_for(request), "completion": completion_for(target)},
        {"kind": "loop->repair", "prompt": prompt_for(request, wrong, result.attempts[0].critique.lines()[:6]),
         "completion": completion_for(target)},
    ]  # fmt: skip


def play_requests(requests: list[str], planner: Any, registry: Registry, out: Path, deadline: float | None = None,
                  say: Callable[[str], None] = lambda _: None) -> dict[str, int]:  # fmt: skip
    """Self-play on requests nobody wrote answers for: the planner plans, the loop runs, critiques and fixes, and where the
    critic accepts a fix the planner's first plan lacked, the fix becomes training pairs (JSONL, appended to ``out``)."""
    from banana.agent.loop import Budget, run_loop
    from banana.agent.planner import PlanningError

    counts = {"played": 0, "skipped": 0, "refused": 0, "first_passed": 0, "loop_passed": 0, "taught": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    with Executor(registry, cache=ResultCache(max_bytes=256 << 20)) as ex, out.open("a") as sink:
        for i, request in enumerate(requests):
            if deadline is not None and time.monotonic() > deadline:
                say(f"request play: time is up after {counts['played']} requests")
                break
            photo = photo_for(request)
            if photo is None:
                counts["skipped"] += 1
                continue
            try:
                result = run_loop(request, {"input": shrink(sample(photo))}, planner, ex, registry, budget=Budget(replans=1), samples=0)
            except (PlanningError, ProgramError, ValueError) as exc:
                say(f"request {i + 1}: {request!r}: {type(exc).__name__}: {exc}")
                counts["skipped"] += 1
                continue
            counts["played"] += 1
            counts["refused"] += bool(result.refusal)
            counts["first_passed"] += bool(result.attempts) and result.attempts[0].critique.passed
            counts["loop_passed"] += result.passed
            pairs = loop_pairs(request, result, registry)
            counts["taught"] += bool(pairs)
            for pair in pairs:
                sink.write(json.dumps({**pair, "instruction": request, "family": "requests"}) + "\n")
            sink.flush()
            say(f"request {i + 1}/{len(requests)} {request!r}: {'taught' if pairs else result.stopped or 'passed'}")
    return counts
