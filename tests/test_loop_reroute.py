"""The loop's "other implementation" fix: a routed node that fails a hard check runs again without the expert that failed.

Real photo: coffee at 192 px. There, at amount 0.2, non-local means lowers the measured noise enough for the critic
and the bilateral filter does not (its "denoise lowers noise" ratio stays above 0.95); at amount 0.5 both pass, and on
chelsea at amount 0.2 both fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from banana.agent.executor import Executor, ResultCache
from banana.agent.loop import Budget, run_loop
from banana.agent.planner.base import Planner
from banana.agent.program import validate
from banana.agent.router import Router, routing
from banana.agent.samples import sample
from banana.agent.selfplay import shrink
from banana.experts.manager import choose, excluding
from tests.scripted import Scripted

NO_REPLAN = Budget(replans=0)


def denoise_plan(amount: float) -> dict:
    return {"version": 1, "nodes": [{"id": "d", "tool": "denoise", "args": {"image": "$input", "amount": amount}}], "output": "$d"}


@pytest.fixture(scope="module")
def coffee():
    return shrink(sample("coffee"), 192)


def loop(picture, plan: dict, registry, executor, budget: Budget = NO_REPLAN):
    return run_loop("remove the noise", {"input": picture}, Planner(Scripted(plan), registry), executor, registry, budget=budget, samples=0)


def prefers_bilateral(picture) -> Router:
    """What self-play could have taught for this picture's noise bucket: bilateral passes, non-local means does not."""
    bucket = choose("denoise", image=picture)[1].bucket
    router = Router()
    for _ in range(4):
        router.observe("denoise", "bilateral", "1", bucket, True, 0.01)
        router.observe("denoise", "non-local-means", "1", bucket, False, 0.2)
    return router


def test_a_failing_routed_node_runs_again_with_the_other_implementation(coffee, registry):
    with Executor(registry) as ex:
        plain = ex.run(validate(denoise_plan(0.2), registry), {"input": coffee}).output  # the fixed order: non-local means
        with routing(prefers_bilateral(coffee)):
            result = loop(coffee, denoise_plan(0.2), registry, ex)
    first, second = result.attempts
    assert first.how == "plan" and first.exclude == {}
    assert [r.check for r in first.critique.hard_failures] == ["denoise lowers noise"]
    assert second.how == "local fix: other implementation for d: bilateral → non-local-means"
    assert second.exclude == {"d": ["bilateral"]} and second.critique.passed
    assert result.passed and result.best == 1 and result.stopped == "passed"
    route = result.image.meta["route"]
    assert (route["expert"], route["excluded"]) == ("non-local-means", ["bilateral"])
    assert np.array_equal(result.image.pixels, plain.pixels), "the answer is non-local means' picture"
    assert any(e.kind == "local_fix" and "other implementation for d" in e.message for e in result.events)


def test_the_exclusion_is_part_of_the_cache_key(coffee, registry):
    """Under the fixed order results are cached; a node run without its first expert must not get that expert's result."""
    program = validate(denoise_plan(0.2), registry)
    with Executor(registry, cache=ResultCache()) as ex:
        first = ex.run(program, {"input": coffee})
        other = ex.run(program, {"input": coffee}, exclude={"d": ["non-local-means"]})
        again = ex.run(program, {"input": coffee}, exclude={"d": ["non-local-means"]})
    assert other.cached == set() and other.output.meta["route"]["expert"] == "bilateral"
    assert not np.array_equal(other.output.pixels, first.output.pixels)
    assert again.cached == {"d"} and np.array_equal(again.output.pixels, other.output.pixels)
    assert first.output.meta["route"]["excluded"] == []


def test_nothing_changes_when_no_check_fails(coffee, registry):
    with Executor(registry, cache=ResultCache(max_bytes=0)) as ex:
        on = loop(coffee, denoise_plan(0.5), registry, ex)
        off = loop(coffee, denoise_plan(0.5), registry, ex, Budget(replans=0, reroute=False))
    assert [a.how for a in on.attempts] == ["plan"] and on.passed and on.attempts[0].exclude == {}
    assert not any(e.kind == "local_fix" for e in on.events)
    assert on.image.meta["route"]["expert"] == "non-local-means"
    assert np.array_equal(on.image.pixels, off.image.pixels)


def test_when_every_implementation_fails_each_is_tried_once(registry):
    chelsea = shrink(sample("chelsea"), 192)
    with Executor(registry) as ex:
        result = loop(chelsea, denoise_plan(0.2), registry, ex, Budget(replans=0, attempts=6, stale=6))
    assert [a.how for a in result.attempts] == ["plan", "local fix: other implementation for d: non-local-means → bilateral"]
    assert result.stopped == "nothing new to try" and not result.passed
    assert [a.exclude for a in result.attempts] == [{}, {"d": ["non-local-means"]}]


def test_an_exclusion_that_leaves_nothing_is_named():
    picture = shrink(sample("coffee"), 64)
    with excluding("denoise", ["non-local-means", "bilateral"]), pytest.raises(LookupError) as err:
        choose("denoise", image=picture)
    assert str(err.value) == (
        "no expert for 'denoise' applies to these inputs (declared: non-local-means, bilateral; excluded: bilateral, non-local-means)"
    )
