"""Re-check the blind outcome set v6 against its hand-written programs (no planner, no critic, no loop).

Every case in ``bench/outcomes/blind_v6.jsonl`` has ``bench/outcomes/v6_programs/<id>.json`` in the v3 layout:
``{"gold": PROGRAM, "also_gold": {"label": PROGRAM}, "wrong": {"label": PROGRAM, ...}, "wrong_passes": {"label": "why"}}``.
Programs run the way ``banana run`` runs them (``bench.outcomes_v3_check.run_program``: validate, then the
executor on the sample photo) and are scored with :func:`bench.outcomes.judge` only. Sound: gold and every
``also_gold`` pass, every wrong program fails (except those listed under ``wrong_passes``).

Run: ``OMP_NUM_THREADS=1 python -m bench.outcomes_v6_check [--only ID,ID] [-v]``; exit 1 when the set is not sound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from banana.agent.executor import Executor, ResultCache
from banana.tools.registry import Registry, default_registry
from bench.outcomes import HERE, judge
from bench.outcomes_v3_check import Verdict, run_program

CASES = HERE / "blind_v6.jsonl"
PROGRAMS = HERE / "v6_programs"


def load_cases(path: Path = CASES) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_programs(case_id: str) -> dict[str, Any]:
    return json.loads((PROGRAMS / f"{case_id}.json").read_text())


def check_case(case: dict[str, Any], executor: Executor, registry: Registry) -> list[Verdict]:
    progs = load_programs(case["id"])
    allowed = progs.get("wrong_passes", {})
    runs = [("gold", progs["gold"], True)] + [(f"gold:{k}", p, True) for k, p in progs.get("also_gold", {}).items()]
    runs += [(k, p, k in allowed) for k, p in progs["wrong"].items()]
    out: list[Verdict] = []
    for label, program, expected in runs:
        picture, why = run_program(executor, registry, program, case["image"])
        ok, notes = judge(case, picture)
        out.append(Verdict(case["id"], label, ok, notes + ([f"failed to run: {why}"] if why else []), expected))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated case ids")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every measured value")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    cases = [c for c in load_cases() if not only or c["id"] in only]
    registry = default_registry()
    bad = 0
    with Executor(registry, cache=ResultCache()) as executor:
        for case in cases:
            for v in check_case(case, executor, registry):
                bad += not v.sound
                mark = "ok " if v.sound else "BAD"
                if args.verbose or not v.sound:
                    print(f"{mark} {v.case:12s} {v.label:14s} {'pass' if v.passed else 'fail'}  {' | '.join(v.notes)}", flush=True)
    print(f"{len(cases)} cases checked, {bad} unsound verdict(s)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
