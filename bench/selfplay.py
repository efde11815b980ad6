"""Planner self-play benchmark: how often the planner's own plans reproduce the gold result, and what training data it yields.

    python -m bench.selfplay [--requests 30] [--k 4] [--seed 7] [--json out.json]

Requests are hard draws from the generator's TRAIN templates (more compounds, typos and chatter than the
training mix) on the training photos, as ``banana selfplay`` plays them; a greedy plan that is the gold
program passes without running or sampling, and a request whose gold program cannot run here (diffusion
weights, open-vocabulary nouns) or changes nothing on its photo is skipped. Reports the greedy plan's
acceptance (critic + same picture as the gold program), acceptance of any of greedy + K samples, plans
per request, training pairs by kind, the misses per family with the focus weights they give, and
seconds per request. The planner-after-training rounds are a separate, long procedure
(see /work/notes/selfplay.md or the README): self-play pairs -> ``banana planner train --from-traces``
-> ``python -m bench.planner`` with ``BANANA_PLANNER_ADAPTER``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from banana.agent.planner import make_planner
from banana.agent.selfplay import family_stats, focus_weights, play_plans
from banana.tools.registry import default_registry
from bench.router import wilson


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    reg = default_registry()
    planner = make_planner(reg)
    out = Path(tempfile.mkdtemp(prefix="bench-selfplay-")) / "pairs.jsonl"
    t0 = time.perf_counter()
    records = play_plans(a.requests, a.seed, a.k, planner, reg, None, out, say=print)
    seconds = time.perf_counter() - t0
    n = len(records)
    greedy = sum(bool(r.outcomes) and r.outcomes[0].accepted for r in records)
    anyk = sum(any(o.accepted for o in r.outcomes) for r in records)
    kinds = collections.Counter(json.loads(x)["kind"] for x in out.read_text().splitlines()) if out.exists() else {}
    report = {
        "requests": n, "k": a.k, "seed": a.seed, "seconds_per_request": round(seconds / max(n, 1), 2),
        "greedy_accepted": greedy, "greedy_rate": round(greedy / max(n, 1), 3), "greedy_ci95": wilson(greedy, n),
        "any_accepted": anyk, "any_rate": round(anyk / max(n, 1), 3), "any_ci95": wilson(anyk, n),
        "plans_per_request": round(sum(len(r.outcomes) for r in records) / max(n, 1), 2),
        "pairs": dict(kinds), "pairs_file": str(out),
        "misses": {f: s for f, s in family_stats(records).items() if s["greedy_failed"]},
        "focus": {f: w for f, w in focus_weights(family_stats(records)).items() if w != 1.0},
    }  # fmt: skip
    print(json.dumps(report, indent=1))
    if a.json:
        a.json.write_text(json.dumps({**report, "records": [r.model_dump() for r in records]}, indent=1))


if __name__ == "__main__":
    main()
