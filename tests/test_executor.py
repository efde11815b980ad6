"""Executor: order, concurrency, device serialisation, caching, failure isolation, events, cancellation."""

import threading
import time
from collections import Counter
from typing import Annotated

import numpy as np
import pytest
from pydantic import Field

from banana.agent.executor import Executor, NodeEvent, ResultCache, RunError
from banana.agent.program import validate
from banana.tools.registry import Registry
from banana.tools.spec import Resources, ToolContext, tool
from banana.tools.values import Image, Mask

CALLS: Counter[str] = Counter()


def _px(image: Image, delta: int) -> Image:
    return Image(np.clip(image.pixels.astype(int) + delta, 0, 255).astype(np.uint8))


@tool(role="style")
def shift(image: Image, *, delta: Annotated[int, Field(ge=-255, le=255)] = 1) -> Image:
    """Add a constant to every pixel."""
    CALLS["shift"] += 1
    return _px(image, delta)


@tool(role="style")
def merge(a: Image, b: Image) -> Image:
    """Average two pictures."""
    CALLS["merge"] += 1
    return Image(((a.pixels.astype(int) + b.pixels.astype(int)) // 2).astype(np.uint8))


MEET = threading.Barrier(2, timeout=10)


@tool(role="style")
def rendezvous(image: Image, *, tag: str = "") -> Image:
    """Returns only once two of these run at the same time (a broken barrier fails the node)."""
    MEET.wait()
    return image


ON_DEVICE = {"now": 0, "most": 0}
DEVICE_LOCK = threading.Lock()


def _overlapping(image: Image, count: dict[str, int]) -> Image:
    """Hold for 50 ms, recording in ``count['most']`` how many calls were inside at once."""
    with DEVICE_LOCK:
        count["now"] += 1
        count["most"] = max(count["most"], count["now"])
    time.sleep(0.05)
    with DEVICE_LOCK:
        count["now"] -= 1
    return image


@tool(role="style", resources=Resources(device="gpu"))
def gpu_work(image: Image, *, tag: str = "") -> Image:
    """Counts how many of these hold the 'GPU' at once."""
    return _overlapping(image, ON_DEVICE)


@tool(role="style")
def boom(image: Image) -> Image:
    """Always fails."""
    raise RuntimeError("the expert crashed")


@tool(role="style")
def patient(image: Image, *, steps: int = 200, ctx: ToolContext) -> Image:
    """Loops, reporting progress (so it can be cancelled)."""
    for i in range(steps):
        ctx.progress(i / steps)
        time.sleep(0.01)
    return image


@tool(role="mask")
def thirds(image: Image) -> Mask:
    """A soft mask whose values a 16-bit PNG cannot hold exactly."""
    CALLS["thirds"] += 1
    return Mask(np.full((image.height, image.width), 1 / 3, np.float32))


@tool(role="style")
def masked(image: Image, mask: Mask) -> Image:
    """Darken where the mask is set."""
    CALLS["masked"] += 1
    return Image((image.pixels * (1 - mask.alpha[..., None] / 2)).astype(np.uint8))


SERIAL = {"now": 0, "most": 0}


@tool(role="style", resources=Resources(serial=True))
def not_thread_safe(image: Image, *, tag: str = "") -> Image:
    """Counts how many of these run at once (a model that is not thread-safe)."""
    return _overlapping(image, SERIAL)


STUCK = threading.Event()


@tool(role="style")
def stuck(image: Image) -> Image:
    """Never checks for cancellation: blocks until the test lets it go."""
    STUCK.wait(30)
    return image


REG = Registry([shift, merge, rendezvous, gpu_work, boom, patient, thirds, masked, not_thread_safe, stuck])
_OPEN: list[Executor] = []


def make(*args, **kw) -> Executor:
    """An executor that is shut down when the test ends."""
    ex = Executor(*args, **kw)
    _OPEN.append(ex)
    return ex


@pytest.fixture(autouse=True)
def _executors_are_shut_down():
    yield
    while _OPEN:
        _OPEN.pop().close()
    for t in threading.enumerate():
        if t.name.startswith("banana-node"):
            t.join(timeout=5)  # an abandoned node that was let go finishes now
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("banana-node")]
    assert not leaked, f"executor threads outlived the test: {leaked}"
IMG = Image(np.full((8, 8, 3), 100, np.uint8))


def program(*nodes, output):
    return validate({"version": 1, "nodes": list(nodes), "output": output}, REG)


def n(id, tool, **args):
    return {"id": id, "tool": tool, "args": args}


def run(valid, executor=None, **kw):
    events: list[NodeEvent] = []
    ex = executor or make(REG, cache=ResultCache())
    result = ex.run(valid, {"input": IMG}, on_event=events.append, **kw)
    return result, events


def test_dependency_order_and_values():
    valid = program(n("a", "shift", image="$input", delta=10), n("b", "shift", image="$a", delta=5),
                    n("c", "merge", a="$a", b="$b"), output="$c")
    result, events = run(valid)
    assert result.ok and result.output.pixels[0, 0, 0] == (110 + 115) // 2
    started = [e.node for e in events if e.kind == "started"]
    assert started.index("a") < started.index("b") < started.index("c")


def test_independent_branches_run_at_the_same_time():
    MEET.reset()
    valid = program(n("a", "rendezvous", image="$input", tag="a"), n("b", "rendezvous", image="$input", tag="b"),
                    n("c", "merge", a="$a", b="$b"), output="$c")
    result, _ = run(valid)
    assert result.ok, result.failures  # each branch waited for the other: they overlapped


def test_gpu_tools_are_serialised_per_device():
    ON_DEVICE["most"] = 0
    nodes = [n(f"g{i}", "gpu_work", image="$input", tag=str(i)) for i in range(4)]
    joins = [n("j0", "merge", a="$g0", b="$g1"), n("j1", "merge", a="$g2", b="$g3"), n("j", "merge", a="$j0", b="$j1")]
    result, _ = run(program(*nodes, *joins, output="$j"), make(REG, max_workers=4))
    assert result.ok and ON_DEVICE["most"] == 1, "two GPU tools ran at once on one device"


def test_cache_reruns_only_changed_node_and_dependants():
    ex = make(REG, cache=ResultCache())
    nodes = [n("a", "shift", image="$input", delta=1), n("b", "shift", image="$input", delta=2), n("c", "merge", a="$a", b="$b")]
    CALLS.clear()
    first, _ = run(program(*nodes, output="$c"), ex)
    assert CALLS == {"shift": 2, "merge": 1} and first.executed
    again, events = run(program(*nodes, output="$c"), ex)
    assert CALLS == {"shift": 2, "merge": 1} and again.cached == {"a", "b", "c"}
    assert {e.node for e in events if e.kind == "cached"} == {"a", "b", "c"}
    nodes[1] = n("b", "shift", image="$input", delta=3)
    changed, _ = run(program(*nodes, output="$c"), ex)
    assert CALLS == {"shift": 3, "merge": 2}
    assert changed.cached == {"a"} and sorted(changed.executed) == ["b", "c"]
    assert changed.output.pixels[0, 0, 0] == (101 + 103) // 2


def test_default_args_share_cache_entries():
    ex = make(REG, cache=ResultCache())
    CALLS.clear()
    run(program(n("a", "shift", image="$input"), output="$a"), ex)
    run(program(n("a", "shift", image="$input", delta=1), output="$a"), ex)
    assert CALLS["shift"] == 1


def test_disk_cache_survives_a_new_executor(tmp_path):
    valid = program(n("a", "shift", image="$input", delta=7), output="$a")
    CALLS.clear()
    run(valid, make(REG, cache=ResultCache(disk=tmp_path)))
    result, _ = run(valid, make(REG, cache=ResultCache(disk=tmp_path)))
    assert CALLS["shift"] == 1 and result.cached == {"a"}
    assert result.output.pixels[0, 0, 0] == 107


def test_disk_cache_chains_keys_so_reloaded_masks_still_hit(tmp_path):
    """A mask reloaded from disk differs in the last bits; what depends on it must still be served from the cache."""
    valid = program(n("m", "thirds", image="$input"), n("d", "masked", image="$input", mask="$m"), output="$d")
    CALLS.clear()
    first, _ = run(valid, make(REG, cache=ResultCache(disk=tmp_path)))
    second, _ = run(valid, make(REG, cache=ResultCache(disk=tmp_path)))
    assert CALLS == {"thirds": 1, "masked": 1}
    assert second.cached == {"m", "d"}
    assert np.array_equal(second.output.pixels, first.output.pixels)


def test_a_node_that_cannot_start_fails_alone():
    def broken_salt() -> str:
        raise RuntimeError("BANANA_DEVICE='tpu' is not a device")

    bad = tool(role="style", name="bad", salt=broken_salt)(shift.fn)
    reg = Registry([bad, shift])
    valid = validate({"version": 1, "nodes": [n("a", "bad", image="$input"), n("b", "shift", image="$input"),
                                              n("c", "shift", image="$a")], "output": "$c"}, reg)
    result = make(reg).run(valid, {"input": IMG})
    assert result.failures["a"].error == "node 'a' (bad) could not start: RuntimeError: BANANA_DEVICE='tpu' is not a device"
    assert result.failures["c"].kind == "skipped"


def test_salt_separates_cache_entries():
    """A tool whose results depend on configuration (e.g. the backbone) re-runs when it changes."""
    setting = {"value": "a"}
    salted = tool(role="style", name="salted", salt=lambda: setting["value"])(shift.fn)
    reg = Registry([salted])
    valid = validate({"version": 1, "nodes": [n("s", "salted", image="$input")], "output": "$s"}, reg)
    ex = make(reg, cache=ResultCache())
    CALLS.clear()
    ex.run(valid, {"input": IMG})
    ex.run(valid, {"input": IMG})
    assert CALLS["shift"] == 1
    setting["value"] = "b"
    ex.run(valid, {"input": IMG})
    assert CALLS["shift"] == 2


def test_memory_cache_is_bounded():
    cache = ResultCache(max_bytes=IMG.nbytes * 2)
    for i in range(5):
        cache.put(str(i), _px(IMG, i))
    assert len(cache) == 2 and cache.get("0") is None and cache.get("4") is not None


def test_failure_stops_only_dependants():
    valid = program(n("ok", "shift", image="$input", delta=1), n("bad", "boom", image="$input"),
                    n("after", "shift", image="$bad"), n("out", "merge", a="$ok", b="$after"), output="$out")
    result, events = run(valid)
    assert not result.ok
    assert "ok" in result.outputs  # finished work stays available
    assert result.failures["bad"].kind == "failed"
    assert result.failures["bad"].error == "node 'bad' (boom) failed: RuntimeError: the expert crashed"
    assert result.failures["after"].kind == "skipped" and "because node 'bad' failed" in result.failures["after"].error
    assert result.failures["out"].kind == "skipped"
    with pytest.raises(RunError, match="'out' did not run because node 'after'"):
        _ = result.output
    assert [e.kind for e in events if e.node == "bad"] == ["queued", "started", "failed"]


def test_events_carry_timings_and_progress():
    valid = program(n("p", "patient", image="$input", steps=3), output="$p")
    result, events = run(valid)
    kinds = [e.kind for e in events]
    assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "finished"
    assert [e.fraction for e in events if e.kind == "progress"] == [0.0, 1 / 3, 2 / 3]
    assert result.timings["p"] >= 0.03  # three progress steps of 10 ms each ran inside the timed call


def test_timings_only_for_nodes_that_ran_and_events_in_order():
    ex = make(REG, cache=ResultCache())
    first = program(n("a", "shift", image="$input", delta=3), n("b", "shift", image="$a", delta=4), output="$b")
    result, events = run(first, ex)
    assert set(result.timings) == {"a", "b"} and all(t > 0 for t in result.timings.values())
    order = [(e.node, e.kind) for e in events if e.kind in ("started", "finished")]
    assert order == [("a", "started"), ("a", "finished"), ("b", "started"), ("b", "finished")]
    second = program(n("a", "shift", image="$input", delta=3), n("b", "shift", image="$a", delta=5), output="$b")
    result, events = run(second, ex)
    assert set(result.timings) == {"b"}, "a cached node has no timing"
    assert [e.kind for e in events if e.node == "a"] == ["queued", "cached"]


def test_serial_tools_never_overlap_but_others_do():
    SERIAL["most"] = 0
    nodes = [n(f"s{i}", "not_thread_safe", image="$input", tag=str(i)) for i in range(4)]
    joins = [n("j0", "merge", a="$s0", b="$s1"), n("j1", "merge", a="$s2", b="$s3"), n("j", "merge", a="$j0", b="$j1")]
    result, _ = run(program(*nodes, *joins, output="$j"), make(REG, max_workers=4))
    assert result.ok and SERIAL["most"] == 1, "two calls of a serial tool overlapped"
    MEET.reset()
    pair = program(n("a", "rendezvous", image="$input", tag="a"), n("b", "rendezvous", image="$input", tag="b"),
                   n("c", "merge", a="$a", b="$b"), output="$c")
    assert run(pair, make(REG, max_workers=4))[0].ok, "tools without serial=True must still overlap"


def test_cancellation_stops_running_and_pending_nodes():
    valid = program(n("p", "patient", image="$input"), n("after", "shift", image="$p"), output="$after")
    cancel = threading.Event()

    def on_event(ev):
        if ev.kind == "progress" and ev.fraction and ev.fraction > 0.05:
            cancel.set()

    result = make(REG).run(valid, {"input": IMG}, on_event=on_event, cancel=cancel)
    assert result.failures["p"].kind == "cancelled"
    assert result.failures["after"].kind in ("skipped", "cancelled")
    assert not result.ok


def test_missing_or_mistyped_inputs():
    valid = program(n("a", "shift", image="$input"), output="$a")
    with pytest.raises(ValueError, match=r"reads \$input but no such input"):
        make(REG).run(valid, {})


def test_a_node_that_checks_stops_at_its_time_limit():
    valid = program(n("p", "patient", image="$input", steps=500), n("after", "shift", image="$p"), output="$after")
    result, events = run(valid, make(REG, node_timeout_s=0.2))
    assert result.failures["p"].kind == "failed"
    assert result.failures["p"].error == "node 'p' (patient) ran past its time limit of 0.2 s"
    assert result.failures["after"].kind == "skipped"
    assert sum(e.kind == "progress" for e in events) < 500  # it stopped early


def test_a_node_that_never_checks_is_abandoned_after_its_limit():
    STUCK.clear()
    ex = make(REG, node_timeout_s=0.2)
    valid = program(n("s", "stuck", image="$input"), n("ok", "shift", image="$input"), n("m", "merge", a="$s", b="$ok"), output="$m")
    try:
        result, _ = run(valid, ex)
        assert result.failures["s"].error == "node 's' (stuck) ran past its time limit of 0.2 s"
        assert "ok" in result.outputs and result.failures["m"].kind == "skipped"
    finally:
        STUCK.set()  # let the abandoned thread end before the leak check


def test_the_time_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BANANA_NODE_TIMEOUT", "7.5")
    assert make(REG).node_timeout_s == 7.5
    monkeypatch.setenv("BANANA_NODE_TIMEOUT", "0")
    assert make(REG).node_timeout_s is None
    monkeypatch.setenv("BANANA_NODE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="BANANA_NODE_TIMEOUT='soon': expected seconds"):
        Executor(REG)
