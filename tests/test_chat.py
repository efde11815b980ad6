"""Multi-turn chat: follow-up rewrite rules, ChatSession over the store, and `banana chat --script`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from banana.agent.cli import app
from banana.agent.planner.followups import FollowUpError, Op, classify, revise
from banana.agent.program import Program
from banana.agent.samples import sample
from banana.agent.sessions import Store
from banana.agent.surface import canonical, parse_steps
from banana.agent.turns import Agent, ChatSession, TurnError
from banana.tools.registry import default_registry
from banana.tools.values import Image

REG = default_registry()

# what a planner answers for the new clauses these tests use (a lookup table, not a model)
CLAUSES = {
    "crop it square": 'crop aspect="1:1"',
    "make it warmer": "adjust warmth=0.4",
    "make it black and white": "adjust saturation=-1",
    "make it watercolor": 'stylize style="watercolor"',
    "make the red one blue": 'segment target="red"\nrecolor color="blue"',
}


class TablePlanner:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def plan(self, text: str) -> object:
        self.asked.append(text)
        if text not in CLAUSES:
            raise AssertionError(f"the planner was asked {text!r}")
        return type("Plan", (), {"program": parse_steps(CLAUSES[text], REG)})()


def steps(text: str) -> Program:
    return parse_steps(text.replace(" | ", "\n"), REG)


@pytest.mark.parametrize(("text", "op", "rest", "factor"), [
    ("stronger", Op.SCALE, "", 1.5),
    ("Much stronger please!", Op.SCALE, "", 2.0),
    ("a bit less", Op.SCALE, "", 0.75),
    ("tone it down", Op.SCALE, "", 0.5),
    ("a lot less", Op.SCALE, "", 0.25),
    ("slightly more", Op.SCALE, "", 1.25),
    ("undo that", Op.UNDO, "", None),
    ("nah, never mind", Op.UNDO, "", None),
    ("redo", Op.REDO, "", None),
    ("also the sky", Op.ALSO, "the sky", None),
    ("the bus too", Op.ALSO, "the bus", None),
    ("no, I meant the background", Op.RETARGET, "the background", None),
    ("not the car, the bus", Op.RETARGET, "the bus", None),
    ("make it purple instead", Op.INSTEAD, "make it purple", None),
    ("and crop it square", Op.APPEND, "crop it square", None),
    ("make it warmer too", Op.APPEND, "make it warmer", None),
    ("ok now make it black and white", Op.APPEND, "make it black and white", None),
    ("less saturated", Op.APPEND, "less saturated", None),
    ("can you blur it a bit more?", Op.SCALE, "", 1.25),
    ("too much, tone it down", Op.SCALE, "", 0.5),
    ("do the same to the sky", Op.ALSO, "the sky", None),
    ("do the hat too", Op.ALSO, "the hat", None),
    ("actually the background, not the person", Op.RETARGET, "the background", None),
    ("not the car but the bus", Op.RETARGET, "the bus", None),
    ("instead of red, make it green", Op.INSTEAD, "make it green", None),
    ("scratch that", Op.UNDO, "", None),
])
def test_classify(text: str, op: Op, rest: str, factor: float | None) -> None:
    fu = classify(text)
    assert (fu.op, fu.rest, fu.factor) == (op, rest, factor)


BLUR_BG = 'segment target="person" | invert | blur amount=0.5'
RED_CAR = 'segment target="car" | recolor color="red"'


@pytest.mark.parametrize(("previous", "text", "expected", "asked"), [
    (BLUR_BG, "stronger", 'segment target="person" | invert | blur amount=0.75', []),
    (BLUR_BG, "a bit less", 'segment target="person" | invert | blur amount=0.38', []),
    ('segment target="person" | invert | blur amount=0.7', "stronger", 'segment target="person" | invert | blur amount=1.0', []),
    ("adjust brightness=-0.4 saturation=0.2", "stronger", "adjust brightness=-0.6 saturation=0.3", []),
    ("adjust saturation=-1", "stronger", "adjust saturation=-1", []),
    ('stylize style="watercolor"', "weaker", 'stylize style="watercolor" strength=0.5', []),
    # the last edit with an amount, not the crop after it
    (BLUR_BG + ' | crop aspect="1:1"', "more", 'segment target="person" | invert | blur amount=0.75 | crop aspect="1:1"', []),
    (BLUR_BG, "also the sky", BLUR_BG + ' | segment target="sky" | blur amount=0.5', []),
    (RED_CAR, "the bus too", RED_CAR + ' | segment target="bus" | recolor color="red"', []),
    ('segment target="person" | blur amount=0.5', "no, I meant the background", BLUR_BG, []),
    (RED_CAR, "not the car, the bus", 'segment target="bus" | recolor color="red"', []),
    (RED_CAR, "make it purple instead", 'segment target="car" | recolor color="purple"', []),
    (RED_CAR, "watercolor instead", 'segment target="car" | stylize style="watercolor"', ["make it watercolor"]),
    (BLUR_BG, "make it black and white instead", 'segment target="person" | invert | adjust saturation=-1',
     ["make it black and white"]),
    (BLUR_BG, "and crop it square", BLUR_BG + ' | crop aspect="1:1"', ["crop it square"]),
])
def test_revise(previous: str, text: str, expected: str, asked: list[str]) -> None:
    planner = TablePlanner()
    rev = revise(steps(previous), text, lambda t: planner.plan(t).program, REG)
    assert canonical(rev.program, REG) == canonical(steps(expected), REG)
    assert planner.asked == asked == rev.planned


def test_follow_ups_that_do_not_apply_say_why() -> None:
    with pytest.raises(FollowUpError, match="there is no earlier edit with an amount to change"):
        revise(steps('crop aspect="1:1"'), "stronger", lambda t: None, REG)  # type: ignore[arg-type,return-value]
    with pytest.raises(FollowUpError, match="changes an earlier edit, but there is none yet"):
        revise(None, "stronger", lambda t: None, REG)  # type: ignore[arg-type,return-value]


@pytest.fixture
def chat(tmp_path: Path) -> ChatSession:
    planner = TablePlanner()
    with Store(tmp_path / "store") as store, Agent(REG, planner=planner, replans=0) as agent:
        session = ChatSession(store, "t", agent)
        session.open(sample("coffee"))
        yield session


def test_a_chat_revises_and_reruns_only_what_changed(chat: ChatSession) -> None:
    coffee = sample("coffee").pixels
    t1, o1 = chat.say("make the red one blue")
    assert sorted(o1.run.executed) == ["recolor", "segment"]
    assert t1.critique is not None and t1.critique["results"] and t1.critique == o1.critique  # the critic's checks, stored
    p1 = chat.picture().pixels
    assert not np.array_equal(p1, coffee)
    t2, o2 = chat.say("make it purple instead")
    assert o2.op == "instead" and o2.run.executed == ["recolor"] and o2.run.cached == {"segment"}
    p2 = chat.picture().pixels
    assert not np.array_equal(p2, p1)
    outside = next(v for k, v in o2.run.outputs.items() if k.startswith("segment")).alpha == 0
    assert outside.mean() > 0.5 and np.array_equal(p2[outside], coffee[outside])  # only the red region is touched
    t3, o3 = chat.say("undo that")
    assert o3.op == "undo" and t3.n == t1.n and np.array_equal(chat.picture().pixels, p1)
    t4, _ = chat.say("redo")
    assert t4.n == t2.n
    t5, o5 = chat.say("and crop it square")
    assert chat.picture().pixels.shape == (400, 400, 3) and o5.run.cached == {"segment", "recolor"}
    assert [t.n for t in chat.store.path("t")] == [0, t1.n, t2.n, t5.n]
    assert chat.store.turn("t", t5.n).program is not None and chat.store.turn("t", t5.n).meta["op"] == "append"
    with pytest.raises(TurnError, match="there is no earlier edit with an amount to change"):
        chat.say("stronger")


def _seed(store_dir: Path) -> Image:
    """A session 's' whose current turn is a warmer coffee (made with a program, no planner)."""
    from banana.agent.turns import execute_program

    with Store(store_dir) as store, Agent(REG, planner=TablePlanner(), replans=0) as agent:
        chat = ChatSession(store, "s", agent)
        chat.open(sample("coffee"))
        program = steps("adjust warmth=0.4")
        outcome = execute_program(agent, sample("coffee"), program)
        store.add_turn("s", instruction="make it warmer", picture=outcome.picture, program=program.model_dump())
        return outcome.picture


def test_chat_script_writes_a_picture_per_line(tmp_path: Path) -> None:
    warm = _seed(tmp_path / "store")
    script = tmp_path / "script.txt"
    script.write_text("stronger\n/undo\n/redo\n/history\n/save {}\n/branch 0\n/nonsense\n".format(tmp_path / "saved.png"))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["chat", "--session", "s", "--store", str(tmp_path / "store"), "--script", str(script),
                                   "--out", str(out)])
    assert res.exit_code == 1, res.output  # /nonsense failed; the other lines went on
    assert "unknown command /nonsense" in res.output
    pics = [Image.load(out / f"turn-{i}.png").pixels for i in range(1, 8)]
    coffee = sample("coffee").pixels
    stronger = pics[0]
    # warmer: more red, less blue than the original; "stronger" more so than turn 1's 0.4
    assert stronger[..., 0].mean() - stronger[..., 2].mean() > warm.pixels[..., 0].mean() - warm.pixels[..., 2].mean()
    assert np.array_equal(pics[1], warm.pixels)  # /undo
    assert np.array_equal(pics[2], stronger)  # /redo
    assert np.array_equal(Image.load(tmp_path / "saved.png").pixels, stronger)
    assert np.array_equal(pics[5], coffee) and np.array_equal(pics[6], coffee)  # /branch 0, then the failed line
    with Store(tmp_path / "store") as store:
        assert store.current("s").program is None and [t.instruction for t in store.turns("s")][-1] == "stronger"


def test_chat_rejects_a_missing_script_and_picture(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["chat", "--script", str(tmp_path / "none.txt"), "--store", str(tmp_path)])
    assert res.exit_code == 2 and "no script at" in res.output
    script = tmp_path / "s.txt"
    script.write_text("stronger\n")
    res = CliRunner().invoke(app, ["chat", "sample:nope", "--script", str(script), "--store", str(tmp_path)])
    assert res.exit_code == 2 and "unknown sample 'nope'" in res.output


@pytest.mark.slow
def test_chat_script_with_the_embedded_planner(tmp_path: Path) -> None:
    script = tmp_path / "script.txt"
    script.write_text("make it warmer\nstronger\nundo that\nand crop it square\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["chat", "sample:coffee", "--store", str(tmp_path / "store"), "--script", str(script),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    p = [Image.load(out / f"turn-{i}.png").pixels for i in range(1, 5)]
    coffee = sample("coffee").pixels
    assert not np.array_equal(p[0], coffee) and not np.array_equal(p[1], p[0])
    assert np.array_equal(p[2], p[0])  # undo that
    assert p[3].shape[0] == p[3].shape[1] == 400  # cropped square, from the warmer picture
    with Store(tmp_path / "store") as store:
        turns = store.turns(store.sessions()[0])
        assert [t.meta.get("op") for t in turns[1:]] == ["append", "scale", "append"]


def test_the_multiturn_bench_replays_undo_and_redo_like_a_chat() -> None:
    from bench.sessions import replay

    planner = TablePlanner()
    got = replay(["make it warmer", "stronger", "undo that", "undo that", "redo", "crop it square", "redo"],
                 lambda t: planner.plan(t).program, REG)
    want = ["adjust warmth=0.4", "adjust warmth=0.6", "adjust warmth=0.4", None, "adjust warmth=0.4",
            'adjust warmth=0.4 | crop aspect="1:1"', 'adjust warmth=0.4 | crop aspect="1:1"']
    assert [None if p is None else canonical(p, REG) for p, _ in got] == [None if w is None else canonical(steps(w), REG) for w in want]
    assert [note for _, note in got] == [""] * 7
