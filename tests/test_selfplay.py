"""Self-play: routing tasks with known originals teach the router; planner play turns judged plans into training pairs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from banana.agent.executor import Executor, ResultCache
from banana.agent.planner.base import PlanRequest
from banana.agent.planner.train import IM_END, selfplay_pairs
from banana.agent.router import Router, routing
from banana.agent.samples import sample
from banana.agent.selfplay import HELDOUT_PHOTOS, TRAIN_PHOTOS, play_plans, play_request, play_routes, route_task, training_pairs
from banana.agent.traces import TraceStore
from tests.scripted import Scripted

GOLD = "adjust contrast=0.7 warmth=0.4"


def test_training_and_held_out_photos_do_not_overlap():
    assert not set(TRAIN_PHOTOS) & set(HELDOUT_PHOTOS)


def test_a_denoise_task_knows_its_original_and_the_router_learns_from_it(tmp_path, registry):
    rng = random.Random(3)
    tasks = [route_task("denoise", sample("coffee"), rng) for _ in range(4)]
    task = tasks[0]
    noisy = task.inputs["input"]
    assert noisy.pixels.shape == task.truth.shape and not np.array_equal(noisy.pixels, task.truth)
    assert task.distance(noisy) == pytest.approx(1 / 0.6, rel=1e-3), "the damaged input sits well past the pass line"
    store = TraceStore(tmp_path / "t.sqlite")
    router = Router(seed=0)
    played = play_routes(tasks, registry, store, router)
    assert len(played) == 4 and not router.explore, "exploration is switched off again after play"
    rows = store.rows()
    assert [r.tool for r in rows] == ["denoise"] * 4 and all(r.distance is not None and r.source == "selfplay" for r in rows)
    assert {r.impl for r in rows} <= {"non-local-means", "bilateral"}
    for p, r in zip(played, rows, strict=True):
        assert p.passed == (r.passed and r.distance <= 1.0)
    assert sum(a.attempts for a in router.arms.values()) == 4
    loaded = Router(store).arms
    assert {k: (a.attempts, a.passes) for k, a in loaded.items()} == {k: (a.attempts, a.passes) for k, a in router.arms.items()}, \
        "what was learned (distance to the reference included) is in the file"
    from banana.agent.traces import stats

    summary = stats(store)
    assert sum(r["with_reference"] for r in summary) == 4
    assert sum(r["reference_passed"] for r in summary) == sum(r.distance <= 1.0 for r in rows)


def test_unknown_tools_have_no_tasks():
    with pytest.raises(ValueError, match="no routing task for tool 'blur'; known: remove, denoise, sharpen, upscale"):
        route_task("blur", sample("coffee"), random.Random(0))


def test_a_remove_task_measures_inside_the_hole(registry):
    task = route_task("remove", sample("chelsea"), random.Random(1))
    assert task.region.sum() < task.region.size / 4 and task.inputs["input1"].type_name == "Mask"
    with Executor(registry, cache=ResultCache()) as ex, routing(lambda tool, options, costs, bucket: "patchmatch"):
        from banana.agent.selfplay import run_task

        p = run_task(task, registry, ex)
    assert p.impl == "patchmatch" and p.distance is not None and p.distance < task.distance(task.inputs["input"])


def test_plans_are_judged_by_their_result_and_become_pairs(tmp_path, registry):
    texts = [GOLD, "adjust warmth=0.4 contrast=0.7", "adjust contrast=-0.7", "blurr amount=0.5"]
    with Executor(registry, cache=ResultCache()) as ex:
        store = TraceStore(tmp_path / "t.db")
        rec = play_request("make it punchier and warmer", GOLD, "coffee", "tone", lambda: texts, registry, ex, store)
    assert rec is not None
    accepted = [o.accepted for o in rec.outcomes]
    assert accepted == [True, True, False, False], "the same picture by another program counts; the opposite edit does not"
    assert not rec.outcomes[3].valid and "blurr" in " ".join(rec.outcomes[3].lines)
    assert any("differs from the expected picture" in line for line in rec.outcomes[2].lines)
    pairs = training_pairs(rec)
    assert [p["kind"] for p in pairs] == ["repair->accepted", "repair->accepted"], "the greedy plan passed: no direct pair, only repairs"
    assert pairs[0]["prompt"].count("adjust contrast=-0.7") == 1 and all(p["completion"].endswith(IM_END) for p in pairs)
    assert pairs[0]["completion"] in (GOLD + "\n" + IM_END, "adjust warmth=0.4 contrast=0.7\n" + IM_END)
    rec.outcomes = rec.outcomes[2:]  # now the greedy plan is the wrong one and nothing passes: the gold is the target
    pairs = training_pairs(rec)
    assert [p["kind"] for p in pairs] == ["direct->gold", "repair->gold", "repair->gold"]
    assert "adjust contrast=-0.7" not in pairs[0]["prompt"] and pairs[0]["completion"] == GOLD + "\n" + IM_END


def test_a_request_the_set_up_cannot_run_is_skipped_before_the_planner_is_asked(registry):
    asked = []
    with Executor(registry, cache=ResultCache()) as ex:
        gold = 'region position="left"\ninsert prompt="a dog"'
        rec = play_request("add a dog", gold, "coffee", "insert", lambda: asked.append(1) or [], registry, ex)
    assert rec is None and asked == []


class Proposer:
    """Test plumbing: a planner backend whose greedy answer is wrong and whose samples include the gold plan."""

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold = gold

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str:
        return "adjust brightness=-0.9"

    def sample(self, request: PlanRequest, k: int = 4, seed: int = 0, **_: object) -> list[str]:
        return [self.gold[request.instruction]] * k


def test_planner_play_writes_pairs_that_training_accepts(tmp_path, registry, monkeypatch):
    from banana.agent.planner.data import Example, Generator

    tone = [Example("make it warmer", "adjust warmth=0.5", "tone", ["t:1"]),
            Example("add a cat", 'region position="left"\ninsert prompt="a cat"', "insert", ["t:3"]),
            Example("more contrast", "adjust contrast=0.5", "tone", ["t:2"])]  # fmt: skip
    monkeypatch.setattr(Generator, "examples", lambda self, n: tone)
    planner = type("P", (), {"backend": Proposer({e.instruction: e.steps for e in tone})})()
    out = tmp_path / "pairs.jsonl"
    records = play_plans(2, 0, 2, planner, registry, None, out)
    assert [r.instruction for r in records] == ["make it warmer", "more contrast"]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["accepted", "repair->accepted"] * 2
    assert "adjust brightness=-0.9" in lines[1]["prompt"] and lines[1]["completion"] == "adjust warmth=0.5\n" + IM_END
    pairs = selfplay_pairs(out, registry)
    assert len(pairs) == 4 and pairs[0] == (lines[0]["prompt"], lines[0]["completion"])


def test_damaged_pair_files_are_named_by_line(tmp_path, registry):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "completion": "adjust warmth=0.5\n" + IM_END}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a self-play pair"):
        selfplay_pairs(bad, registry)
    bad.write_text(json.dumps({"prompt": "p", "completion": "blurr amount=2\n" + IM_END}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: the completion is not a valid plan"):
        selfplay_pairs(bad, registry)


def test_cli_routing_play_only(tmp_path):
    from typer.testing import CliRunner

    from banana.agent.cli import app

    db = tmp_path / "t.sqlite"
    res = CliRunner().invoke(app, ["selfplay", "--minutes", "2", "--route-tasks", "4", "--requests", "0", "--traces", str(db), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["rounds"][0]["route_tasks"] == 4 and report["rounds"][0]["requests"] == 0
    assert TraceStore(db).count() == 4


def test_a_gold_program_that_changes_nothing_here_teaches_nothing(registry):
    with Executor(registry, cache=ResultCache()) as ex:
        rec = play_request("a touch brighter", "adjust brightness=0.01", "coffee", "tone", lambda: ["adjust contrast=0.01"], registry, ex)
    assert rec is None, "the reference is (almost) the input: a plan that does nothing would match it"


class Knower(Proposer):
    """Test plumbing: a backend whose greedy answer is the gold plan for the first request only; sampling is counted."""

    def __init__(self, gold: dict[str, str]) -> None:
        super().__init__(gold)
        self.sampled: list[str] = []

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str:
        return self.gold[request.instruction] if request.instruction == "make it warmer" else "adjust brightness=-0.9"

    def sample(self, request: PlanRequest, k: int = 4, seed: int = 0, **_: object) -> list[str]:
        self.sampled.append(request.instruction)
        return ["adjust brightness=-0.9"] * k


def test_play_spends_its_time_where_the_planner_errs_and_counts_families(tmp_path, registry, monkeypatch):
    from banana.agent.planner.data import Example, Generator
    from banana.agent.selfplay import focus_path, read_focus, write_focus

    tone = [Example("make it warmer", "adjust contrast=0.2 warmth=0.5", "tone", ["t:1"]),
            Example("more contrast please", "adjust contrast=0.5", "tone+background_blur", ["t:2", "b:1"])]  # fmt: skip
    monkeypatch.setattr(Generator, "examples", lambda self, n: tone)
    backend = Knower({e.instruction: e.steps for e in tone})
    backend.gold["make it warmer"] = "adjust warmth=0.5 contrast=0.2"  # the gold program written another way: the same program
    planner = type("P", (), {"backend": backend})()
    out = tmp_path / "pairs.jsonl"
    records = play_plans(2, 0, 2, planner, registry, None, out)
    assert records[0].greedy_accepted and records[0].outcomes[0].lines == ["the gold program"], "the same program passes unexecuted"
    assert backend.sampled == ["more contrast please"], "no sampling where the greedy plan is the gold"
    assert not records[1].greedy_accepted
    kinds = [json.loads(x)["kind"] for x in out.read_text().splitlines()]
    assert kinds == ["direct->gold", "repair->gold"], "only the missed request teaches: its gold, and the failed plan repaired"
    path = write_focus(out, records)
    assert path == focus_path(out) and path.name == "pairs.focus.json"
    write_focus(out, records)  # a second round adds its counts
    saved = json.loads(path.read_text())
    assert saved["families"] == {"tone": {"played": 4, "greedy_failed": 2}, "background_blur": {"played": 2, "greedy_failed": 2}}
    weights = read_focus(path)
    assert weights["background_blur"] > 1.0 > weights["tone"], "the family the planner misses is drawn more often"


def test_focus_weights_shrink_small_counts_and_are_bounded():
    from banana.agent.selfplay import focus_weights

    w = focus_weights({"a": {"played": 1000, "greedy_failed": 20}, "b": {"played": 3, "greedy_failed": 1},
                       "c": {"played": 100, "greedy_failed": 100}, "d": {"played": 100, "greedy_failed": 0}})  # fmt: skip
    assert 1.0 < w["b"] < 2.0, "one miss in three is shrunk toward the overall rate"
    assert w["c"] == 4.0 and w["d"] == 0.5, "clamped to [0.5, 4]"


def test_a_focused_generator_draws_the_weak_family_more_and_names_unknown_ones(registry):
    from banana.agent.planner.data import Generator

    def share(gen: Generator) -> float:
        exs = gen.examples(400)
        return sum("hair_color" in e.family.split("+") for e in exs) / len(exs)

    plain, focused = share(Generator(3, "train", registry)), share(Generator(3, "train", registry, focus={"hair_color": 4.0}))
    assert focused > 2 * plain > 0
    with pytest.raises(ValueError, match="focus names unknown families: no_such_family"):
        Generator(3, "train", registry, focus={"no_such_family": 2.0})


def test_train_names_a_damaged_focus_file(tmp_path):
    from typer.testing import CliRunner

    from banana.agent.cli import app

    bad = tmp_path / "pairs.focus.json"
    bad.write_text('{"weights": {"tone": -1}}')
    res = CliRunner().invoke(app, ["planner", "train", "--focus", str(bad), "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "'weights' must map family names to positive numbers" in res.output
    assert not (tmp_path / "a").exists()


def test_hard_requests_go_past_the_training_mix_and_plain_draws_are_unchanged(registry):
    from banana.agent.planner.data import Generator

    plain, plain_again = Generator(5, "train", registry).examples(300), Generator(5, "train", registry, hard=False).examples(300)
    hard = Generator(5, "train", registry, hard=True).examples(300)
    assert [e.instruction for e in plain] == [e.instruction for e in plain_again], "the training mix is reproducible as before"

    def compounds(exs: list) -> int:
        return sum("+" in e.family for e in exs)

    assert compounds(hard) > 1.3 * compounds(plain)
    assert all(not e.heldout for e in hard), "hard requests still come from TRAIN templates only"


def test_play_on_requests_without_answers_learns_the_fixes_the_critic_accepts(tmp_path, registry):
    from banana.agent.planner.base import Planner
    from banana.agent.selfplay import photo_for, play_requests

    cooler = {"version": 1, "nodes": [{"id": "e", "tool": "adjust", "args": {"image": "$input", "warmth": -0.4}}], "output": "$e"}
    planner = Planner(Scripted(cooler), registry)
    out = tmp_path / "pairs.jsonl"
    requests = ["warm up the coffee cup pic", "make the cup pic cooler", "brighten the red bike", "warm the bike up"]
    assert [photo_for(r) for r in requests] == ["coffee", "coffee", None, None], "held-out photos' requests are not played"
    assert photo_for("make it pop") in TRAIN_PHOTOS and photo_for("make it pop") == photo_for("make it pop"), "others: a fixed TRAIN photo"
    counts = play_requests(requests, planner, registry, out)
    assert counts == {"played": 2, "skipped": 2, "refused": 0, "first_passed": 1, "loop_passed": 2, "taught": 1}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["loop->direct", "loop->repair"]
    assert all(x["instruction"] == "warm up the coffee cup pic" for x in lines)
    assert lines[0]["completion"] == "adjust warmth=0.4\n" + IM_END, "the pair teaches the plan the critic accepted: the warming"
    assert "-0.4" in lines[1]["prompt"] and "flip its sign" in lines[1]["prompt"], "the repair shows the failed plan and its critique"
    assert len(selfplay_pairs(out, registry)) == 2, "training accepts the pairs"


def test_a_requests_file_that_cannot_be_read_is_named(tmp_path):
    from typer.testing import CliRunner

    from banana.agent.cli import app

    empty = tmp_path / "requests.txt"
    empty.write_text("\n \n")
    res = CliRunner().invoke(app, ["selfplay", "--requests-file", str(empty), "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 2 and "no requests (one a line)" in res.output and not (tmp_path / "p.jsonl").exists()
    res = CliRunner().invoke(app, ["selfplay", "--requests-file", str(tmp_path / "nope.txt")])
    assert res.exit_code == 2 and "cannot read the requests file" in res.output
