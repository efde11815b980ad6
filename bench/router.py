"""Router benchmark: regret against an oracle on held-out contexts, pass rate learned vs fixed order, the loop's pass rate, cost per choice.

    python -m bench.router [--learn 96] [--test 64] [--seed 0] [--json out.json] [--traces learned.sqlite]

1. Learn: routing self-play (Thompson exploration) on damaged crops of the TRAIN photos
   (astronaut, coffee, chelsea, rocket) into a fresh traces file (``--traces``: keep it there, e.g. for
   ``python -m bench.outcomes --traces``; default: a temporary folder).
2. Test: damaged crops of the HELD-OUT photos (motorcycle, china, flower, grace_hopper), never
   played on. Every applicable implementation runs on every task (the oracle); the fixed cost
   order's and the learned router's picks are read off the same call, so all three are judged
   on identical results. Success = the node's hard checks pass and the result is within the
   task's pass line of the clean original. Utility = success - latency_weight * log(1 + s).
   ``critic_pass_rate`` is what the loop alone sees (hard checks only, no reference).
3. Loop: the same held-out tasks through ``run_loop`` (the task's program as the plan, no re-plans or samples:
   the planner is not under test), four set-ups: the fixed order or the learned router, each without and with
   the loop's "other implementation" fix (``Budget.reroute``). ``critic``: the loop's own verdict on its answer
   (every hard check passes, request and identity checks included); ``true``: that, and the answer within the
   task's pass line of the clean original. Wilson 95 % intervals; ``rerouted``: tasks where the fix ran.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from banana.agent.executor import Executor, ResultCache
from banana.agent.loop import Budget, run_loop
from banana.agent.planner.base import Planner, PlanRequest
from banana.agent.program import Program
from banana.agent.router import Router, routing
from banana.agent.selfplay import HELDOUT_PHOTOS, TRAIN_PHOTOS, RouteTask, play_routes, route_tasks, run_task
from banana.agent.traces import TraceStore
from banana.experts.manager import Implementation, implementations
from banana.tools.registry import Registry, default_registry

REQUESTS = {"remove": "remove the marked object and fill the hole", "denoise": "remove the noise", "sharpen": "sharpen this blurry photo",
            "upscale": "upscale it 2x"}  # what a user would say for each routing task (the loop's intent checks read it)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (round(c - h, 3), round(c + h, 3))


class TaskPlan:
    """The planner backend for the loop runs: never asked (the task's program is the plan, re-plans are off)."""

    name = "task-program"
    surface = "json"

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str:
        raise RuntimeError("the router benchmark does not re-plan")


def loop_rates(tasks: list[RouteTask], reg: Registry, learned: Router) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each task through the loop under four set-ups (fixed / learned x without / with the other-implementation fix)."""
    planner = Planner(TaskPlan(), reg)
    setups = {"fixed": (None, False), "fixed+fix": (None, True), "learned": (learned, False), "learned+fix": (learned, True)}
    runs: list[dict[str, Any]] = []
    for i, task in enumerate(tasks):
        row: dict[str, Any] = {"task": i, "tool": task.tool, "note": task.note}
        for name, (policy, reroute) in setups.items():  # a fresh executor and memo each: no set-up reuses another's work
            with Executor(reg, cache=ResultCache(max_bytes=0)) as ex, routing(policy):
                res = run_loop(REQUESTS[task.tool], dict(task.inputs), planner, ex, reg, budget=Budget(replans=0, reroute=reroute),
                               first=Program.model_validate(task.program), samples=0)  # fmt: skip
            dist = task.distance(res.image)
            row[name] = {"critic": res.passed, "true": res.passed and dist is not None and dist <= 1.0, "attempts": len(res.attempts),
                         "rerouted": any("other implementation" in a.how for a in res.attempts), "seconds": round(res.seconds, 4),
                         "how": [a.how for a in res.attempts]}  # fmt: skip
        runs.append(row)
        print(f"loop {task.tool:8s} {task.note:40s} " + " ".join(f"{n}={'T' if row[n]['true'] else ('c' if row[n]['critic'] else '-')}"
                                                                 for n in setups), flush=True)  # fmt: skip
    out: dict[str, Any] = {}
    for name in setups:
        got = [r[name] for r in runs]
        k_c, k_t, n = sum(g["critic"] for g in got), sum(g["true"] for g in got), len(got)
        out[name] = {"n": n, "critic": k_c, "critic_rate": round(k_c / n, 3), "critic_ci95": wilson(k_c, n), "true": k_t,
                     "true_rate": round(k_t / n, 3), "true_ci95": wilson(k_t, n), "rerouted": sum(g["rerouted"] for g in got),
                     "median_seconds": round(statistics.median(g["seconds"] for g in got), 4)}  # fmt: skip
    for base in ("fixed", "learned"):  # what the fix changed, task by task
        out[f"{base}+fix"]["true_gained"] = sum(r[f"{base}+fix"]["true"] and not r[base]["true"] for r in runs)
        out[f"{base}+fix"]["true_lost"] = sum(r[base]["true"] and not r[f"{base}+fix"]["true"] for r in runs)
    return out, runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learn", type=int, default=96, help="routing self-play tasks on the training photos")
    ap.add_argument("--test", type=int, default=64, help="held-out tasks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--traces", type=Path, default=None, help="write the learned traces to this new file")
    a = ap.parse_args()
    if a.traces is not None and a.traces.exists():
        ap.error(f"--traces {a.traces}: already exists; the learn phase writes a fresh file")
    reg = default_registry()
    db = a.traces or Path(tempfile.mkdtemp(prefix="bench-router-")) / "traces.sqlite"
    store = TraceStore(db)
    router = Router(seed=a.seed)
    t0 = time.perf_counter()
    played = play_routes(route_tasks(a.learn, TRAIN_PHOTOS, seed=a.seed), reg, store, router)
    learn_s = time.perf_counter() - t0
    print(f"learned from {len(played)} tasks in {learn_s:.0f} s; traces {db}")
    learned = Router(store)  # exploitation, loaded back from the file as `banana edit` would

    tasks = route_tasks(a.test, HELDOUT_PHOTOS, seed=a.seed + 1000)
    rows: list[dict[str, Any]] = []
    choice_ns: list[int] = []
    with Executor(reg, cache=ResultCache(max_bytes=0)) as ex:
        for task in tasks:
            picks: dict[str, str] = {}
            results: dict[str, dict[str, Any]] = {}
            for impl in implementations(task.tool):

                def force(tool: str, options: list[Implementation], costs: dict[str, float], bucket: str, name: str = impl.name,
                          picks: dict[str, str] = picks) -> str | None:  # fmt: skip
                    if not picks:
                        picks["fixed"] = min(options, key=lambda o: costs[o.name]).name
                        t = time.perf_counter_ns()
                        picks["learned"] = learned(tool, options, costs, bucket) or picks["fixed"]
                        choice_ns.append(time.perf_counter_ns() - t)
                        picks["bucket"] = bucket
                    return name if name in [o.name for o in options] else None

                with routing(force):
                    p = run_task(task, reg, ex)
                if p.impl == impl.name:
                    util = float(p.passed) - learned.latency_weight * math.log1p(p.latency or 0.0)
                    results[impl.name] = {"passed": p.passed, "critic": p.critic_passed, "latency": p.latency, "distance": p.distance,
                                          "utility": util}  # fmt: skip
            oracle = max(results, key=lambda n: results[n]["utility"])
            rows.append({"tool": task.tool, "note": task.note, "bucket": picks["bucket"], "fixed": picks["fixed"],
                         "learned": picks["learned"], "oracle": oracle, "results": results})  # fmt: skip
            print(f"{task.tool:8s} {task.note:40s} fixed={picks['fixed']:16s} learned={picks['learned']:16s} oracle={oracle}", flush=True)

    def summary(who: str, subset: list[dict[str, Any]]) -> dict[str, Any]:
        got = [r["results"][r[who]] for r in subset]
        best = [r["results"][r["oracle"]] for r in subset]
        k = sum(g["passed"] for g in got)
        c = sum(g["critic"] for g in got)
        regret = [b["utility"] - g["utility"] for g, b in zip(got, best, strict=True)]
        dists = [g["distance"] for g in got if g["distance"] is not None]
        return {"n": len(subset), "pass": k, "pass_rate": round(k / len(subset), 3), "pass_ci95": wilson(k, len(subset)),
                "critic_pass_rate": round(c / len(subset), 3),
                "mean_regret": round(statistics.mean(regret), 4), "mean_distance": round(statistics.mean(dists), 3) if dists else None,
                "median_latency_s": round(statistics.median(g["latency"] or 0.0 for g in got), 4)}  # fmt: skip

    report: dict[str, Any] = {"learn_tasks": len(played), "learn_seconds": round(learn_s, 1), "test_tasks": len(rows),
                              "train_photos": TRAIN_PHOTOS, "heldout_photos": HELDOUT_PHOTOS, "overall": {}, "per_tool": {},
                              "router_choice_us": {"median": round(statistics.median(choice_ns) / 1000, 1),
                                                   "max": round(max(choice_ns) / 1000, 1)},
                              "rules": [r["rule"] for r in learned.rules() if r["chosen"]]}  # fmt: skip
    for who in ("fixed", "learned", "oracle"):
        report["overall"][who] = summary(who, rows)
    for tool in sorted({r["tool"] for r in rows}):
        sub = [r for r in rows if r["tool"] == tool]
        report["per_tool"][tool] = {who: summary(who, sub) for who in ("fixed", "learned", "oracle")}
    report["loop"], loop_rows = loop_rates(tasks, reg, learned)
    print(json.dumps(report, indent=1))
    if a.json:
        a.json.write_text(json.dumps({**report, "rows": rows, "loop_rows": loop_rows}, indent=1))


if __name__ == "__main__":
    main()
