"""Multi-turn chat: follow-up latency against running the same program from scratch, and the blind multi-turn set.

Run: ``.venv/bin/python -m bench.sessions`` (both), ``--latency`` or ``--eval [FILE]``.

Latency: in one process with the models loaded, turn 1 runs a program; turn 2 is a
one-argument follow-up ("stronger") through :func:`banana.agent.turns.run_turn`, which
re-runs only the changed node (the executor's cache) and reuses what was derived from the
unchanged pictures (the cache's memo: float pixels, Lab, unchanged nodes' checks); "scratch"
runs the revised program with a new agent, so an empty cache and memo (the models stay loaded;
the process-wide face memo of experts/identity.py serves both sides alike). Median of
``--repeats`` runs each, with and without the critique loop, one line per case with both
ratios, then the spread. The load average is printed before and after: measure on a quiet machine.

Evaluation: each conversation of ``bench/sessions/multiturn_blind.jsonl`` (format:
/work/notes/multiturn-format.md) is replayed through the follow-up rules with the
embedded planner for new clauses (no execution); a turn is exact when its program is
canonically equal to the expected one (ids ignored, defaults filled, case-insensitive).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from banana.agent.executor import ResultCache
from banana.agent.planner.followups import FollowUpError, Op, revise
from banana.agent.program import Program, ProgramError, parse_program
from banana.agent.samples import sample
from banana.agent.surface import canonical, parse_steps
from banana.agent.turns import Agent, TurnError, execute_program, run_turn
from banana.tools.registry import Registry, default_registry

BLIND = Path(__file__).parent / "sessions" / "multiturn_blind.jsonl"
# (picture, turn 1 in steps, a follow-up that changes one argument)
CASES = [
    ("astronaut", 'segment target="person"\ninvert\nblur amount=0.5', "stronger"),  # "blur the background"
    ("astronaut", 'segment target="person"\ninvert\nadjust saturation=-0.6', "a bit less"),
    ("astronaut", 'segment target="face"\nadjust brightness=0.3', "stronger"),
    ("coffee", 'segment target="red"\nrecolor color="blue"', "make it purple instead"),
    ("grace_hopper", 'segment target="hair"\nrecolor color="purple"', "make it blue instead"),  # "recolor her hair purple"
    ("chelsea", "adjust warmth=0.4", "a bit less"),  # "make it warmer": the whole program is the changed node
]


def forget_faces() -> None:
    """Empty the process-wide face memo (experts/identity.py), as a new picture finds it in real use."""
    from banana.experts import identity

    with identity._FACES_LOCK:
        identity._FACES.clear()


def latency(registry: Registry, repeats: int, critic: bool, case: tuple[str, str, str], fresh_faces: bool = False) -> dict[str, Any]:
    """``fresh_faces``: each repeat's new output is a new picture to the face memo too (otherwise repeats 2.. find the
    faces of the same output, made by repeat 1, on both sides): the memo is emptied before turn 1 and before scratch."""
    name, steps, text = case
    picture = sample(name)
    first = parse_steps(steps, registry)
    with Agent(registry, critic=critic) as warm:  # load every model the program touches
        execute_program(warm, picture, first)
    follow, scratch = [], []
    revised = None
    executed: list[str] = []
    for _ in range(repeats):
        if fresh_faces:
            forget_faces()
        with Agent(registry, critic=critic, cache=ResultCache()) as agent:
            execute_program(agent, picture, first)  # turn 1
            t = time.perf_counter()
            outcome = run_turn(agent, picture, first, text)  # turn 2: one argument changes
            follow.append(time.perf_counter() - t)
            revised = outcome.program
            executed = sorted(outcome.run.executed) if outcome.run else []
        if fresh_faces:
            forget_faces()
        with Agent(registry, critic=critic, cache=ResultCache()) as agent:
            t = time.perf_counter()
            execute_program(agent, picture, revised)  # the same program, nothing cached
            scratch.append(time.perf_counter() - t)
    f, s = statistics.median(follow), statistics.median(scratch)
    return {"case": f"{name}: {steps.replace(chr(10), ' | ')} -> {text!r}", "critic": critic, "follow_up_ms": round(f * 1000, 1),
            "scratch_ms": round(s * 1000, 1), "speedup": round(s / f, 1), "re_ran": executed, "repeats": repeats,
            "size": f"{picture.width}x{picture.height}"}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def chat_turn(registry: Registry, repeats: int, critic: bool) -> dict[str, Any]:
    """The same follow-up as a chat turn (``ChatSession.say``: the store's reads and writes of pictures and rows
    included) against a first chat turn planned straight to the revised program; a table stands in for the planner."""
    import tempfile

    from banana.agent.sessions import Store
    from banana.agent.turns import ChatSession

    name, steps, text = CASES[0]
    picture, first = sample(name), parse_steps(steps, registry)
    with Agent(registry, critic=False) as plain:
        revised = run_turn(plain, picture, first, text).program
    plans = {"first": first, "revised": revised}

    class Table:
        backend = type("Backend", (), {"surface": "json", "name": "table"})()

        def plan(self, request: Any) -> Any:
            return type("Plan", (), {"program": plans[str(getattr(request, "instruction", request))], "refusal": None})()

    def turn(follow_up: bool) -> float:
        with tempfile.TemporaryDirectory() as tmp, Agent(registry, planner=Table(), critic=critic, cache=ResultCache()) as agent:
            chat = ChatSession(Store(tmp), "bench", agent)
            chat.open(picture)
            if follow_up:
                chat.say("first")
            t = time.perf_counter()
            chat.say(text if follow_up else "revised")
            return time.perf_counter() - t

    turn(True)  # models loaded
    f = statistics.median(turn(True) for _ in range(repeats))
    s = statistics.median(turn(False) for _ in range(repeats))
    return {"chat_turn": f"{name}: {text!r} as ChatSession.say", "critic": critic,
            "follow_up_vs_scratch": f"{f * 1000:.1f} / {s * 1000:.1f} ms = {s / f:.1f}x"}


def latency_table(registry: Registry, repeats: int, fresh_faces: bool = False) -> None:
    """One JSON line per case (both modes side by side), then the spread of the ratios per mode."""
    command = f"python -m bench.sessions --latency --repeats {repeats}" + (" --fresh-faces" if fresh_faces else "")
    print(json.dumps({"command": command, "load_average": load(), "cpus": os.cpu_count()}))
    ratios: dict[str, list[float]] = {"no_critic": [], "critic": []}
    for case in CASES:
        plain, judged = latency(registry, repeats, False, case), latency(registry, repeats, True, case, fresh_faces)
        ratios["no_critic"].append(plain["speedup"])
        ratios["critic"].append(judged["speedup"])
        print(json.dumps({"case": plain["case"], "size": plain["size"], "re_ran": plain["re_ran"],
                          "no_critic": f"{plain['follow_up_ms']} / {plain['scratch_ms']} ms = {plain['speedup']}x",
                          "critic": f"{judged['follow_up_ms']} / {judged['scratch_ms']} ms = {judged['speedup']}x"}))
    print(json.dumps({"spread": {k: f"{min(v)}-{max(v)}x (median {round(statistics.median(v), 2)}x)" for k, v in ratios.items()},
                      "repeats": repeats, "load_average": load()}))
    for critic in (False, True):
        print(json.dumps(chat_turn(registry, repeats, critic)))


def _canon(program: dict[str, Any] | Program | None, registry: Registry) -> str | None:
    return None if program is None else canonical(program, registry).lower()


def replay(turns: list[str], plan: Any, registry: Registry) -> list[tuple[Program | None, str]]:
    """Each turn's program (None = the original picture) and an error note, as a chat would make them."""
    history: list[Program | None] = [None]
    cursor = 0
    out: list[tuple[Program | None, str]] = []
    for text in turns:
        note = ""
        try:
            rev = revise(history[cursor], text, plan, registry)
            if rev.follow_up.op is Op.UNDO:
                cursor = max(0, cursor - 1)
            elif rev.follow_up.op is Op.REDO:
                cursor = min(len(history) - 1, cursor + 1)
            else:
                history = [*history[:cursor + 1], rev.program]
                cursor += 1
        except (FollowUpError, TurnError, ProgramError, ValueError) as exc:
            note = f"{type(exc).__name__}: {exc}"
        out.append((history[cursor], note))
    return out


def evaluate(path: Path, registry: Registry, verbose: bool) -> dict[str, Any]:
    from banana.agent.planner import make_planner

    planner = make_planner(registry)
    agent = Agent(registry, planner=planner)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    turns = follow = conv = given = 0
    turns_ok = follow_ok = conv_ok = given_ok = 0
    by_cat: Counter[str] = Counter()
    by_cat_ok: Counter[str] = Counter()
    misses = []
    t0 = time.perf_counter()
    for row in rows:
        got = replay(row["turns"], agent.plan, registry)
        all_ok = prev_ok = True
        for k, ((prog, note), want) in enumerate(zip(got, row["programs"], strict=True)):
            ok = _canon(prog, registry) == _canon(parse_program(want) if want else None, registry)
            turns += 1
            turns_ok += ok
            if k > 0:
                follow += 1
                follow_ok += ok
                if prev_ok:  # the follow-up itself, from a correct previous turn
                    given += 1
                    given_ok += ok
            prev_ok = ok
            if not ok:
                all_ok = False
                misses.append({"id": row.get("id"), "turn": k + 1, "text": row["turns"][k], "note": note,
                               "got": _canon(prog, registry), "want": _canon(parse_program(want) if want else None, registry)})
        conv += 1
        conv_ok += all_ok
        by_cat[row.get("category", "?")] += 1
        by_cat_ok[row.get("category", "?")] += all_ok
    agent.close()
    if verbose:
        for m in misses:
            print(json.dumps(m))
    return {"set": str(path), "conversations": conv, "conversation_exact": round(conv_ok / conv, 3),
            "turns": turns, "turn_exact": round(turns_ok / turns, 3), "follow_up_turns": follow,
            "follow_up_exact": round(follow_ok / max(follow, 1), 3),
            "follow_up_exact_after_a_correct_turn": f"{given_ok}/{given}",
            "by_category": {c: f"{by_cat_ok[c]}/{n}" for c, n in sorted(by_cat.items())},
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--eval", nargs="?", const=str(BLIND), default=None, metavar="FILE")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fresh-faces", action="store_true", help="every new output's faces are detected and embedded, as in real use")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every miss")
    args = ap.parse_args()
    registry = default_registry()
    both = not args.latency and args.eval is None
    if args.latency or both:
        latency_table(registry, args.repeats, args.fresh_faces)
    if args.eval or both:
        print(json.dumps(evaluate(Path(args.eval or BLIND), registry, args.verbose)))


if __name__ == "__main__":
    main()
