"""Public evaluation of the planner.

Three sets: ``bench/planner/handwritten.jsonl`` (93 natural instructions written by
hand from docs/catalogue.md, never used in training; its round-1 failures informed
the generator's round-2 additions, so it is no longer blind), ``handwritten_v2.jsonl``
(60 more, written blind after round 1 by someone who saw neither the generator nor
the first set; its round-2 failures were seen before round 3), ``handwritten_v3.jsonl``
(60 more, written blind before round 3 was measured), ``realistic_blind_v1.jsonl`` (written
blind in the style real users type, with gold refusals and harm rules; see
bench/planner/README.md), and instructions drawn from the generator's held-out templates
(phrasings the training data never contains; every family has some).
Reports validity on the first answer, validity after repair, exact match, tool F1,
argument accuracy, latency (one instruction at a time, as a user would ask), and for
sets with refusals and harm rules: refusals recognised, false refusals, harmful plans.

Run: ``make bench-planner`` or ``python -m bench.planner [--heldout N] [--backend server ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from banana.agent.planner import make_planner
from banana.agent.planner.data import Generator
from banana.agent.planner.evaluate import Case, evaluate, load_cases, summarize
from banana.agent.surface import parse_refusal, parse_steps
from banana.tools.registry import Registry, default_registry

HERE = Path(__file__).parent / "planner"


def heldout_cases(n: int, seed: int, registry: Registry) -> list[Case]:
    cases = []
    for ex in Generator(seed=seed, split="heldout", registry=registry).examples(n):
        reason = parse_refusal(ex.steps)
        if reason is not None:
            cases.append(Case(instruction=ex.instruction, cannot=reason, harm=["any_plan"], note=ex.family, source="heldout-templates"))
        else:
            cases.append(Case(instruction=ex.instruction, program=json.loads(parse_steps(ex.steps, registry).to_json()),
                              note=ex.family, source="heldout-templates"))
    return cases


def _optional(path: Path) -> list[Case]:
    return load_cases(path) if path.is_file() else []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heldout", type=int, default=150, help="how many held-out-template instructions")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--server-url", default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results.json", help="per-case results")
    ap.add_argument("--only", default="", help="comma-separated parts of set names to run, e.g. v2")
    ap.add_argument("--rerank", type=int, default=0, help="rerank the greedy plan and this many samples by intent (agent/rerank.py)")
    args = ap.parse_args()
    registry = default_registry()
    planner = make_planner(registry, args.backend, args.server_url, say=print)
    if args.rerank:
        from banana.agent.rerank import RerankingPlanner

        planner = RerankingPlanner(planner, k=args.rerank)
    sets = {"hand-written v1 (93)": load_cases(HERE / "handwritten.jsonl"),
            "hand-written v2, blind (60)": load_cases(HERE / "handwritten_v2.jsonl"),
            "hand-written v3, blind (60)": load_cases(HERE / "handwritten_v3.jsonl"),
            **({f"realistic blind v1 ({len(real)})": real} if (real := _optional(HERE / "realistic_blind_v1.jsonl")) else {}),
            **({f"realistic blind v2 ({len(real2)})": real2} if (real2 := _optional(HERE / "realistic_blind_v2.jsonl")) else {}),
            f"generator, held-out templates ({args.heldout})": heldout_cases(args.heldout, args.seed, registry)}
    if args.only:
        sets = {k: v for k, v in sets.items() if any(o in k for o in args.only.split(","))}
    summaries, details = [], {}
    for name, cases in sets.items():
        results = evaluate(planner, cases, registry, say=print)
        summaries.append(summarize(name, results))
        details[name] = [r.model_dump() for r in results]
    args.out.write_text(json.dumps({"summaries": [s.model_dump() for s in summaries], "cases": details}, indent=1) + "\n")
    print(f"\nbackend: {planner.backend.name}\n")
    print("| set | n | valid (1st answer) | valid after repair | exact match | tool F1 | arg accuracy | mean s | p90 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        print(f"| {s.name} | {s.cases} | {s.first_valid:.0%} | {s.valid_after_repair:.0%} | {s.exact:.0%} | {s.tool_f1:.2f} | "
              f"{s.arg_accuracy:.0%} | {s.mean_seconds:.2f} | {s.p90_seconds:.2f} |")
    print("\n| set | gold refusals | refused right | false refusals | harmful plans |")
    print("|---|---|---|---|---|")
    for s in summaries:
        print(f"| {s.name} | {s.gold_refusals} | {s.refusals_right} | {s.false_refusals} | {s.harmful:.1%} |")


if __name__ == "__main__":
    main()
