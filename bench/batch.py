"""Batch throughput with 1 and 2 worker processes on expert-bound items, and the journal's cost per item.

Run: ``.venv/bin/python -m bench.batch [--items 16] [--engine local|ray]``.

Throughput is reported two ways: over the whole run (worker start-up and model loads
included) and in steady state (items finished after the first one, over the time since
it finished), which is what a long job sees. The journal figure is the claim + done
transactions (SQLite WAL, synchronous=FULL) per item, without any work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from banana.agent.batch import JOURNAL, Item, Journal, run_batch

PROGRAM = {"version": 1, "nodes": [
    {"id": "person", "tool": "segment", "args": {"image": "$input", "target": "person"}},
    {"id": "bg", "tool": "invert", "args": {"mask": "$person"}},
    {"id": "soft", "tool": "blur", "args": {"image": "$input", "mask": "$bg", "amount": 0.7}},
    {"id": "tone", "tool": "adjust", "args": {"image": "$soft", "warmth": 0.3, "contrast": 0.2}},
], "output": "$tone"}
PICTURES = ["astronaut", "grace_hopper"]


def throughput(items: int, workers: int, engine: str, critic: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "p.json").write_text(json.dumps(PROGRAM))
        (root / "m.jsonl").write_text("".join(json.dumps({"id": f"i{k}", "input": f"sample:{PICTURES[k % len(PICTURES)]}",
                                                          "program": "p.json"}) + "\n" for k in range(items)))
        stamps: list[float] = []
        t0 = time.perf_counter()
        report = run_batch(root / "m.jsonl", root / "out", workers=workers, engine=engine, critic=critic,  # type: ignore[arg-type]
                           on_progress=lambda done, total, item: stamps.append(time.perf_counter()) if item else None)
        wall = time.perf_counter() - t0
        assert report.done == items, report
        steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
        return {"engine": engine, "workers": workers, "items": items, "critic": critic, "cpus": os.cpu_count(),
                "load_average": round(os.getloadavg()[0], 1), "wall_s": round(wall, 2),
                "items_per_s": round(items / wall, 3), "steady_items_per_s": round(steady, 3)}


def journal_overhead(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        items = [Item(id=f"i{k}", job=f"i{k}", input="sample:coffee", output=str(Path(tmp) / f"i{k}.png"), instruction="x")
                 for k in range(n)]
        journal = Journal(Path(tmp) / JOURNAL)
        journal.sync(items)
        per = []
        for it in items:
            t = time.perf_counter()
            journal.claim(it)
            journal.finish(it.id, {"status": "done", "timings": {"total": 0.1}})
            per.append(time.perf_counter() - t)
        journal.close()
        return {"journal_items": n, "median_ms_per_item": round(statistics.median(per) * 1000, 2),
                "p90_ms_per_item": round(sorted(per)[int(0.9 * n)] * 1000, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--engine", default="local", choices=["local", "ray"])
    ap.add_argument("--critic", action="store_true", help="run the critique loop on every item (default: the program once)")
    args = ap.parse_args()
    print(json.dumps(journal_overhead(300)))
    results = [throughput(args.items, w, args.engine, args.critic) for w in (1, 2)]
    for r in results:
        print(json.dumps(r))
    one, two = results
    print(json.dumps({"speedup_wall": round(two["items_per_s"] / one["items_per_s"], 2),
                      "speedup_steady": round(two["steady_items_per_s"] / one["steady_items_per_s"], 2)}))


if __name__ == "__main__":
    main()
