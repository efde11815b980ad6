"""Two planner runs side by side, with 95 % confidence intervals: is a new adapter better than the old by more than the noise?

Reads the per-case results that ``python -m bench.planner --out FILE`` writes for each adapter (same sets, same
seed) and prints, per set: exact match k/n with a Wilson interval for each run, the paired difference (cases only
the old gets right / only the new gets right, an exact two-sided McNemar p on those discordant cases, and a 95 %
paired-bootstrap interval of new − old), harmful plans with Wilson intervals, and mean / p90 latency.

Run: ``python -m bench.planner_compare OLD.json NEW.json [--names "round 4,round 5"] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from pydantic import BaseModel

from bench.router import wilson


class SetComparison(BaseModel):
    name: str
    n: int
    exact: tuple[int, int]
    exact_ci: tuple[tuple[float, float], tuple[float, float]]
    only_old: int
    only_new: int
    mcnemar_p: float
    diff_ci: tuple[float, float]
    harmful: tuple[int, int]
    harmful_ci: tuple[tuple[float, float], tuple[float, float]]
    mean_s: tuple[float, float]
    p90_s: tuple[float, float]


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar test on the discordant pairs (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(old: list[bool], new: list[bool], reps: int = 5000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of mean(new) − mean(old), resampling cases (the pairing kept)."""
    rng = random.Random(seed)
    n = len(old)
    diffs = sorted(sum(new[i] - old[i] for i in (rng.randrange(n) for _ in range(n))) / n for _ in range(reps))
    return (round(diffs[int(0.025 * reps)], 3), round(diffs[int(0.975 * reps) - 1], 3))


def _p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.9 * len(s)))]


def compare_sets(old: dict, new: dict) -> list[SetComparison]:
    """Per set present in both runs; cases are matched by instruction (a set whose cases differ is an error)."""
    out = []
    for name, old_cases in old["cases"].items():
        if name not in new["cases"]:
            continue
        new_by = {c["instruction"]: c for c in new["cases"][name]}
        if set(new_by) != {c["instruction"] for c in old_cases}:
            raise ValueError(f"set {name!r}: the two runs have different cases (same --heldout and --seed?)")
        pairs = [(c, new_by[c["instruction"]]) for c in old_cases]
        o = [bool(a["exact"]) for a, _ in pairs]
        w = [bool(b["exact"]) for _, b in pairs]
        n = len(pairs)
        ho, hn = sum(a["harmful"] for a, _ in pairs), sum(b["harmful"] for _, b in pairs)
        only_old = sum(a and not b for a, b in zip(o, w, strict=True))
        only_new = sum(b and not a for a, b in zip(o, w, strict=True))
        out.append(SetComparison(
            name=name, n=n, exact=(sum(o), sum(w)), exact_ci=(wilson(sum(o), n), wilson(sum(w), n)),
            only_old=only_old, only_new=only_new, mcnemar_p=round(mcnemar_p(only_old, only_new), 3), diff_ci=paired_bootstrap(o, w),
            harmful=(ho, hn), harmful_ci=(wilson(ho, n), wilson(hn, n)),
            mean_s=(round(sum(a["seconds"] for a, _ in pairs) / n, 2), round(sum(b["seconds"] for _, b in pairs) / n, 2)),
            p90_s=(round(_p90([a["seconds"] for a, _ in pairs]), 2), round(_p90([b["seconds"] for _, b in pairs]), 2))))
    return out


def _pct(k: int, n: int, ci: tuple[float, float]) -> str:
    return f"{k}/{n} = {k / max(n, 1):.0%} ({ci[0]:.0%}–{ci[1]:.0%})"


def table(rows: list[SetComparison], names: tuple[str, str]) -> str:
    a, b = names
    lines = [f"| set | n | {a} exact (95 % CI) | {b} exact (95 % CI) | only {a} / only {b} | McNemar p | {b} − {a} (95 % CI) | "
             f"harmful {a} | harmful {b} | mean s {a} / {b} | p90 s {a} / {b} |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.n} | {_pct(r.exact[0], r.n, r.exact_ci[0])} | {_pct(r.exact[1], r.n, r.exact_ci[1])} | "
                     f"{r.only_old} / {r.only_new} | {r.mcnemar_p:.2f} | {(r.exact[1] - r.exact[0]) / r.n:+.1%} "
                     f"({r.diff_ci[0]:+.1%} to {r.diff_ci[1]:+.1%}) | {_pct(r.harmful[0], r.n, r.harmful_ci[0])} | "
                     f"{_pct(r.harmful[1], r.n, r.harmful_ci[1])} | {r.mean_s[0]:.2f} / {r.mean_s[1]:.2f} | "
                     f"{r.p90_s[0]:.2f} / {r.p90_s[1]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="per-case results of the old adapter (bench.planner --out)")
    ap.add_argument("new", type=Path, help="per-case results of the new adapter")
    ap.add_argument("--names", default="old,new", help="column names for the two runs, comma-separated")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args()
    names = tuple(args.names.split(",", 1))
    if len(names) != 2:
        raise SystemExit("--names needs two names separated by a comma")
    old, new = (json.loads(p.read_text()) for p in (args.old, args.new))
    rows = compare_sets(old, new)
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=1))
    else:
        print(table(rows, names))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
