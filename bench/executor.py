"""Executor overhead per node with trivial tools, and a cached re-run against a cold run.

Run: ``make bench`` (or ``.venv/bin/python -m bench.executor``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from banana.agent.executor import Executor, ResultCache
from banana.agent.program import validate
from banana.agent.samples import sample
from banana.tools.registry import Registry, default_registry
from banana.tools.spec import tool
from banana.tools.values import Image, Mask


@tool(role="style")
def noop(image: Image, *, tag: int = 0) -> Image:
    """Return the picture unchanged (measures the executor, not a tool)."""
    return image


def chain(n: int, tag: int = 0) -> dict:
    nodes = [{"id": f"n{i}", "tool": "noop", "args": {"image": "$input" if i == 0 else f"$n{i - 1}", "tag": tag}} for i in range(n)]
    return {"version": 1, "nodes": nodes, "output": f"$n{n - 1}"}


@tool(role="style")
def pick(a: Image, b: Image) -> Image:
    """Return the first of two pictures (joins branches)."""
    return a


def tree(leaves: int) -> dict:
    """``leaves`` independent branches joined pairwise: every node is needed, many can run at once."""
    nodes = [{"id": f"l{i}", "tool": "noop", "args": {"image": "$input", "tag": i}} for i in range(leaves)]
    level = [f"l{i}" for i in range(leaves)]
    k = 0
    while len(level) > 1:
        nxt = []
        for a, b in zip(level[::2], level[1::2], strict=True):
            nodes.append({"id": f"j{k}", "tool": "pick", "args": {"a": f"${a}", "b": f"${b}"}})
            nxt.append(f"j{k}")
            k += 1
        level = nxt
    return {"version": 1, "nodes": nodes, "output": f"${level[0]}"}


def per_node_ms(executor: Executor, program: dict, image: Image, repeats: int) -> float:
    valid = validate(program, executor.registry)
    n = len(valid.order)
    samples = []
    for _ in range(repeats):
        executor.cache = ResultCache()  # cold: nothing cached
        t = time.perf_counter()
        executor.run(valid, {"input": image})
        samples.append((time.perf_counter() - t) / n * 1000)
    return statistics.median(samples)


def main() -> None:
    tiny = Image(np.zeros((8, 8, 3), np.uint8))
    reg = Registry([noop, pick])
    rows = []
    with Executor(reg) as ex:
        rows.append(("chain of 32", per_node_ms(ex, chain(32), tiny, 30)))
        rows.append(("16 branches joined pairwise (31 nodes)", per_node_ms(ex, tree(16), tiny, 30)))

    # cold vs cached re-run of a real program on a real photo
    registry = default_registry()
    photo = sample("astronaut")
    program = {"version": 1, "nodes": [
        {"id": "warm", "tool": "adjust", "args": {"image": "$input", "warmth": 0.4, "saturation": 0.3}},
        {"id": "sel", "tool": "grow", "args": {"mask": "$m", "pixels": 12}},
        {"id": "bg", "tool": "invert", "args": {"mask": "$sel"}},
        {"id": "soft", "tool": "blur", "args": {"image": "$warm", "mask": "$bg", "amount": 0.6}}], "output": "$soft"}
    m = np.zeros((512, 512), np.float32)
    m[40:260, 140:360] = 1
    inputs = {"input": photo, "m": Mask(m)}
    valid = validate(program, registry, inputs={"input": "Image", "m": "Mask"})
    cold, warm, one = [], [], []
    with Executor(registry) as ex:
        for _ in range(5):
            ex.cache = ResultCache()
            t = time.perf_counter()
            ex.run(valid, inputs)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            ex.run(valid, inputs)
            warm.append(time.perf_counter() - t)
            changed = {**program, "nodes": [*program["nodes"][:3],
                                            {**program["nodes"][3], "args": {**program["nodes"][3]["args"], "amount": 0.3}}]}
            v2 = validate(changed, registry, inputs={"input": "Image", "m": "Mask"})
            t = time.perf_counter()
            ex.run(v2, inputs)
            one.append(time.perf_counter() - t)
    # the same, over a disk folder: the cold run also writes every result; a new process finds them all on disk
    disk_cold, disk_warm = [], []
    with tempfile.TemporaryDirectory() as folder, Executor(registry) as ex:
        for i in range(5):
            ex.cache = ResultCache(disk=Path(folder) / str(i))
            t = time.perf_counter()
            ex.run(valid, inputs)
            disk_cold.append(time.perf_counter() - t)
            ex.cache = ResultCache(disk=Path(folder) / str(i))  # empty memory, as in a new process
            t = time.perf_counter()
            ex.run(valid, inputs)
            disk_warm.append(time.perf_counter() - t)
    c, w, o = (statistics.median(x) * 1000 for x in (cold, warm, one))
    dc, dw = (statistics.median(x) * 1000 for x in (disk_cold, disk_warm))
    print("| measurement | result |")
    print("|---|---|")
    for label, ms in rows:
        print(f"| executor overhead per node (trivial tool), {label} | {ms:.3f} ms |")
    print(f"| astronaut 512 px, 4 nodes, cold run | {c:.1f} ms |")
    print(f"| same program again (all cached) | {w:.2f} ms ({c / w:.0f}x faster) |")
    print(f"| last node's amount changed (1 node re-runs) | {o:.1f} ms ({c / o:.1f}x faster) |")
    print(f"| cold run writing to a disk cache (--cache-dir) | {dc:.1f} ms |")
    print(f"| same program, new process: all 4 results from the disk cache | {dw:.1f} ms |")


if __name__ == "__main__":
    main()
