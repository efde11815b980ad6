"""Re-check a blind outcome set against its hand-written programs (no planner, no critic, no loop).

Every case in ``bench/outcomes/blind_<set>.jsonl`` has ``bench/outcomes/<set>_programs/<id>.json``:
``{"gold": PROGRAM, "also_gold": {"label": PROGRAM}, "wrong": {"label": PROGRAM, ...}, "wrong_passes": {"label": "why"}}``
(``also_gold`` and ``wrong_passes`` optional). Each program is run the way ``banana run`` runs it (validate, then
the executor on the sample photo) and scored with :func:`bench.outcomes.judge` only. The set is sound when the
gold and every ``also_gold`` variant (another reasonable answer: other strengths, another mask) pass and every
wrong program fails, except the wrong ones listed under ``wrong_passes`` (a deliberate, explained exception).

Run: ``OMP_NUM_THREADS=1 python -m bench.outcomes_check v6 [--only ID,ID] [-v]``; exit 1 when the set is not sound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from banana.agent.executor import Executor, ResultCache
from banana.agent.program import validate
from banana.agent.samples import sample
from banana.tools.registry import Registry, default_registry
from banana.tools.values import Image
from bench.outcomes import HERE, judge

SETS = ("v3", "v4", "v5", "v6", "v7", "v8")  # the sets written with hand-written gold and wrong programs


@dataclass
class Verdict:
    case: str
    label: str  # "gold", "gold:<variant>" or the wrong program's label
    passed: bool
    notes: list[str]
    expected: bool  # what a sound set needs: gold passes, wrong fails (unless listed in wrong_passes)

    @property
    def sound(self) -> bool:
        return self.passed == self.expected


def programs_dir(name: str) -> Path:
    return HERE / f"{name}_programs"


def load_cases(name: str) -> list[dict[str, Any]]:
    path = HERE / f"blind_{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no outcome set {name!r}: {path} does not exist (sets: {', '.join(SETS)})")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_programs(name: str, case_id: str) -> dict[str, Any]:
    return json.loads((programs_dir(name) / f"{case_id}.json").read_text())


def run_program(executor: Executor, registry: Registry, program: dict[str, Any], photo: str) -> tuple[Image | None, str]:
    """The output picture (None and the reason when a node fails), as ``banana run`` would write it."""
    valid = validate(json.dumps(program).encode(), registry, inputs={"input": "Image"})
    result = executor.run(valid, {"input": sample(photo)})
    if not result.ok:
        return None, "; ".join(f"{n}: {f.error}" for n, f in result.failures.items())
    return result.output, ""  # type: ignore[return-value]


def check_case(name: str, case: dict[str, Any], executor: Executor, registry: Registry) -> list[Verdict]:
    progs = load_programs(name, case["id"])
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
    ap.add_argument("set", choices=SETS, help="which blind set")
    ap.add_argument("--only", default="", help="comma-separated case ids")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every measured value")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    cases = [c for c in load_cases(args.set) if not only or c["id"] in only]
    registry = default_registry()
    bad = 0
    with Executor(registry, cache=ResultCache()) as executor:
        for case in cases:
            for v in check_case(args.set, case, executor, registry):
                bad += not v.sound
                mark = "ok " if v.sound else "BAD"
                if args.verbose or not v.sound:
                    print(f"{mark} {v.case:12s} {v.label:14s} {'pass' if v.passed else 'fail'}  {' | '.join(v.notes)}", flush=True)
    print(f"{len(cases)} cases checked, {bad} unsound verdict(s)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
