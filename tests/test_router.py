"""The learned router: exploits what traces say per (tool, bucket), explores only when asked, forgets old versions."""

from __future__ import annotations

import numpy as np

from banana.agent.router import Router, routing
from banana.agent.traces import TraceRow, TraceStore
from banana.experts.enhance import denoise
from banana.experts.manager import choose, context, implements
from banana.tools.values import Image

TOOL = "test_router_tool"
implements(TOOL, "fast", cost=lambda **_: 1.0)(lambda **_: "fast")
implements(TOOL, "careful", cost=lambda **_: 5.0, version="2")(lambda **_: "careful")
context(TOOL)(lambda size, **_: ({"size": float(size)}, "big" if size > 10 else "small"))


def rows(impl: str, bucket: str, passes: int, fails: int, latency: float, version: str = "1") -> list[TraceRow]:
    return [TraceRow(run_id="r", node="n", tool=TOOL, impl=impl, version=version, bucket=bucket, passed=i < passes, outcome="ok",
                     latency=latency) for i in range(passes + fails)]  # fmt: skip


def test_without_statistics_the_fixed_cost_order_decides():
    router = Router()
    with routing(router):
        impl, decision = choose(TOOL, size=50)
    assert impl.name == "fast" and decision.policy == "cost" and decision.bucket == "big" and decision.features == {"size": 50.0}


def test_exploits_the_better_implementation_per_bucket_from_a_trace_file(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite")
    store.add(rows("fast", "big", 1, 9, 0.01) + rows("careful", "big", 9, 1, 0.5, version="2")
              + rows("fast", "small", 10, 0, 0.01) + rows("careful", "small", 10, 0, 0.5, version="2"))  # fmt: skip
    router = Router(store)
    with routing(router):
        big = choose(TOOL, size=50)
        small = choose(TOOL, size=5)
    assert (big[0].name, big[1].policy, big[1].version) == ("careful", "router", "2")
    assert small[0].name == "fast", "both pass in small pictures: the faster one wins"
    assert choose(TOOL, size=50)[0].name == "fast", "outside the context manager the fixed order is back"
    rules = {(r["bucket"], r["impl"]): r for r in router.rules()}
    assert rules[("big", "careful")]["chosen"] and not rules[("big", "fast")]["chosen"]
    assert rules[("big", "careful")]["rule"] == f"{TOOL}, big: careful (9/10 pass, 0.50 s)"
    assert rules[("big", "fast")]["rule"] == f"{TOOL}, big: fast (1/10 pass, 0.01 s) (not chosen: careful is better)"
    assert (rules[("small", "fast")]["attempts"], rules[("small", "fast")]["success_rate"]) == (10, 1.0)


def test_statistics_of_an_older_version_are_forgotten(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite")
    store.add(rows("fast", "big", 0, 10, 0.01) + rows("careful", "big", 10, 0, 0.5, version="1"))  # careful is at version 2 now
    router = Router(store)
    assert ("test_router_tool", "big", "careful") not in router.arms
    with routing(router):
        assert choose(TOOL, size=50)[0].name == "careful", "an untried implementation beats one that always fails"


def test_a_result_far_from_its_reference_counts_as_a_failure():
    router = Router()
    for _ in range(5):
        router.observe(TOOL, "fast", "1", "big", True, 0.01, distance=1.3)
        router.observe(TOOL, "careful", "2", "big", True, 0.02, distance=0.8)
    assert router.arms[(TOOL, "big", "fast")].passes == 0 and router.arms[(TOOL, "big", "careful")].passes == 5


def test_exploration_samples_both_and_exploitation_is_deterministic():
    router = Router(explore=True, seed=1)
    for _ in range(3):
        router.observe(TOOL, "fast", "1", "big", True, 0.01)
        router.observe(TOOL, "careful", "2", "big", True, 0.01)
    picks = set()
    with routing(router):
        for _ in range(60):
            picks.add(choose(TOOL, size=50)[0].name)
    assert picks == {"fast", "careful"}
    router.explore = False
    with routing(router):
        assert {choose(TOOL, size=50)[0].name for _ in range(20)} == {"fast"}, "a tie goes to the cheaper (the prior)"


def test_a_real_tool_follows_the_router_and_records_it(photos):
    picture = Image(np.ascontiguousarray(photos["coffee"].pixels[:120, :160]))
    bucket = denoise(image=picture).meta["route"]["bucket"]
    router = Router()
    for _ in range(4):
        router.observe("denoise", "non-local-means", "1", bucket, False, 0.3)
        router.observe("denoise", "bilateral", "1", bucket, True, 0.01)
    with routing(router):
        out = denoise(image=picture)
    assert (out.meta["route"]["expert"], out.meta["route"]["policy"]) == ("bilateral", "router")
    assert not np.array_equal(out.pixels, picture.pixels)


def test_cli_prints_stats_and_rules_as_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from banana.agent.cli import app

    db = tmp_path / "t.sqlite"
    store = TraceStore(db)
    store.add(rows("fast", "big", 2, 2, 0.01) + rows("careful", "big", 4, 0, 0.5, version="2"))
    store.close()
    runner = CliRunner()
    stats = runner.invoke(app, ["traces", "stats", "--traces", str(db), "--json"])
    assert stats.exit_code == 0, stats.output
    assert [(r["impl"], r["attempts"], r["pass_rate"]) for r in json.loads(stats.stdout)["rows"]] == [("careful", 4, 1.0), ("fast", 4, 0.5)]
    shown = runner.invoke(app, ["router", "show", "--traces", str(db), "--json"])
    assert shown.exit_code == 0, shown.output
    chosen = [r["rule"] for r in json.loads(shown.stdout) if r["chosen"]]
    assert chosen == [f"{TOOL}, big: careful (4/4 pass, 0.50 s)"]
    table = runner.invoke(app, ["router", "show", "--traces", str(db)])
    assert "careful (4/4 pass, 0.50 s)" in table.stdout
    bad = runner.invoke(app, ["traces", "stats", "--traces", str(tmp_path)])
    assert bad.exit_code == 2 and "is a folder, not a database file" in bad.output


class OnePlan:
    """Test plumbing: a planner backend that always answers with the same steps."""

    name = "one-plan"
    surface = "steps"

    def generate(self, request, previous: str = "", problems: list[str] | None = None) -> str:
        return "denoise amount=0.5"


def test_edits_record_every_attempt_and_route_with_what_the_traces_teach(tmp_path, registry, photos):
    from banana.agent.executor import Executor, ResultCache
    from banana.agent.loop import run_loop
    from banana.agent.planner.base import Planner
    from banana.agent.router_cli import learned

    picture = Image(np.ascontiguousarray(photos["coffee"].pixels[:120, :160]))
    db = tmp_path / "t.sqlite"
    planner = Planner(OnePlan(), registry)
    with learned(db, "clean it") as record, Executor(registry, cache=ResultCache()) as ex:
        first = run_loop("clean it", {"input": picture}, planner, ex, registry, on_attempt=record)
    rows = TraceStore(db).rows()
    assert [(r.tool, r.impl, r.source, r.request) for r in rows] == [("denoise", "non-local-means", "edit", "clean it")]
    assert first.run.outputs[first.valid.output].meta["route"]["policy"] == "cost"
    bucket = rows[0].bucket
    store = TraceStore(db)
    for _ in range(3):  # what self-play would have taught: bilateral passes here, non-local means does not
        store.add([TraceRow(run_id="sp", node="n", tool="denoise", impl=impl, bucket=bucket, passed=ok, outcome="ok", latency=lat)
                   for impl, ok, lat in (("bilateral", True, 0.01), ("non-local-means", False, 0.2))])
    with learned(db, "clean it") as record, Executor(registry, cache=ResultCache()) as ex:
        second = run_loop("clean it", {"input": picture}, planner, ex, registry, on_attempt=record)
    route = second.run.outputs[second.valid.output].meta["route"]
    assert (route["expert"], route["policy"]) == ("bilateral", "router")
    assert TraceStore(db).count() == 8
    assert choose("denoise", image=picture)[0].name == "non-local-means", "the fixed order is back after the edit"


def test_a_policy_naming_an_implementation_that_does_not_apply_is_ignored():
    with routing(lambda tool, options, costs, bucket: "no-such-implementation"):
        impl, decision = choose(TOOL, size=50)
    assert (impl.name, decision.policy) == ("fast", "cost")


def test_a_routed_tool_is_not_cached_while_a_policy_picks_its_implementation(photos, registry):
    """The cache cannot lie: under a learned router the same inputs may get another expert, so nothing is reused."""
    from banana.agent.executor import Executor, ResultCache
    from banana.agent.program import validate

    picture = Image(np.ascontiguousarray(photos["coffee"].pixels[:120, :160]))
    program = validate({"version": 1, "nodes": [{"id": "d", "tool": "denoise", "args": {"image": "$input"}}], "output": "$d"}, registry)
    with Executor(registry, cache=ResultCache()) as ex:
        first = ex.run(program, {"input": picture})
        assert ex.run(program, {"input": picture}).cached == {"d"}  # the fixed order: a function of the inputs
        bucket = first.output.meta["route"]["bucket"]
        router = Router()
        for _ in range(4):
            router.observe("denoise", "non-local-means", "1", bucket, False, 0.3)
            router.observe("denoise", "bilateral", "1", bucket, True, 0.01)
        with routing(router):
            routed = ex.run(program, {"input": picture})
        assert routed.cached == set() and routed.output.meta["route"]["expert"] == "bilateral"
