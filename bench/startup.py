"""Cold start-up of the CLI: where the seconds of a fresh `banana plan` / `banana edit` go.

Each command runs several times, each in a fresh process with ``BANANA_TIMINGS=1`` (the CLI
prints its phase timers as JSON on stderr at exit: imports, registry, planner build with its
parts, plan, edit loop, expert loads). Rounds interleave the commands, so a busy machine
slows them alike; the table shows medians and each command's wall beside `banana run` on a
trivial program (the baseline) measured in the same rounds.

    python -m bench.startup [--runs 5] [--only run,plan] [--empty-cache] [--before DIR] [--json out/startup.json]

``--empty-cache`` gives every process a fresh, empty BANANA_CACHE (the converted base model is
linked in, so this measures building the planner caches, not the one-off GGUF conversion).
``--before DIR`` also runs plan and edit from another copy of the code in the same rounds (DIR holds
``banana/agent``, ``banana/tools``, ... and goes first on PYTHONPATH), for before/after ratios on one load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMO_INSTRUCTION = "blur the background behind the astronaut, then make it warmer"
TRIVIAL_PROGRAM = {"version": 1, "nodes": [{"id": "warm", "tool": "adjust", "args": {"image": "$input", "warmth": 0.4}}],
                   "output": "$warm"}
# (row, nesting): phases as agent/timings.py names them; "imports" is the mark at main() (interpreter start included)
ROWS = [("imports", 0), ("registry", 0), ("planner", 0), ("import torch", 1), ("import torch+transformers", 1), ("tokenizer load", 1),
        ("model load", 1), ("cache build", 1), ("adapter merge", 2), ("grammar compile", 1), ("import xgrammar", 2), ("plan", 0),
        ("edit loop", 0), ("decode", 1), ("expert loads", 1),
        ("run", 0)]


def commands(work: Path) -> dict[str, list[str]]:
    program = work / "trivial.json"
    program.write_text(json.dumps(TRIVIAL_PROGRAM))
    return {
        "run": ["run", str(program), "-i", "sample:astronaut", "-o", str(work / "run.png"), "-q"],
        "tools": ["tools", "--json"],
        "plan": ["plan", "make it warmer", "--json"],
        "edit": ["edit", "sample:astronaut", DEMO_INSTRUCTION, "-o", str(work / "edit.png"), "-q"],
    }


def banana() -> list[str]:
    script = Path(sys.executable).parent / "banana"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from banana.agent.cli import main; main()"]


def fresh_cache(work: Path) -> Path:
    """An empty cache folder holding only a link to the converted base model (no planner caches)."""
    from banana.agent.planner.model import BASE_NAME, base_model_dir

    base = base_model_dir()
    folder = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    (folder / "models").mkdir()
    (folder / "models" / BASE_NAME).symlink_to(base)
    return folder


def once(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """One fresh process: its wall, CPU time and phases (flattened), or an error naming the command."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(banana() + args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    line = next((x for x in reversed(proc.stderr.splitlines()) if x.startswith("BANANA_TIMINGS ")), None)
    if proc.returncode not in (0, 3) or line is None:
        raise SystemExit(f"`banana {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    report = json.loads(line.split(" ", 1)[1])
    row: dict[str, float] = {"wall": wall, "cpu": cpu, **report["phases"], **report["marks"]}
    if report["expert_loads"]:
        row["expert loads"] = sum(report["expert_loads"].values())
    return row


def median(rows: list[dict[str, float]], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def table(results: dict[str, list[dict[str, float]]]) -> str:
    names = list(results)
    base = median(results["run"], "wall") if "run" in results else None
    base_cpu = median(results["run"], "cpu") if "run" in results else None
    heads = [f"`banana {n}`".replace(" (before)`", "` before") for n in names]
    lines = ["| phase (median s) | " + " | ".join(heads) + " |", "|---" * (len(names) + 1) + "|"]
    for key, depth in ROWS:
        cells = [median(results[n], key) for n in names]
        if any(c is not None for c in cells):
            label = ("&nbsp;&nbsp;" * depth) + key
            lines.append(f"| {label} | " + " | ".join("" if c is None else f"{c:.2f}" for c in cells) + " |")
    walls = [median(results[n], "wall") for n in names]
    lines.append("| **wall** | " + " | ".join(f"**{w:.2f}**" for w in walls if w is not None) + " |")
    if base:
        lines.append("| wall × `banana run` | " + " | ".join(f"{w / base:.1f}×" for w in walls if w is not None) + " |")
    cpus = [median(results[n], "cpu") for n in names]
    lines.append("| CPU (user+sys) | " + " | ".join(f"{c:.2f}" for c in cpus if c is not None) + " |")
    if base_cpu:
        lines.append("| CPU × `banana run` | " + " | ".join(f"{c / base_cpu:.1f}×" for c in cpus if c is not None) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per command (medians)")
    ap.add_argument("--only", default="run,tools,plan,edit", help="comma-separated: run, tools, plan, edit")
    ap.add_argument("--empty-cache", action="store_true", help="every process starts with an empty BANANA_CACHE")
    ap.add_argument("--before", type=Path, help="a folder with banana/agent, banana/tools, ...: also run plan/edit from that code")
    ap.add_argument("--json", type=Path, help="also write every run's numbers here")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="banana-startup-"))
    try:
        every = commands(work)
        chosen = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in every]
        if unknown:
            raise SystemExit(f"--only: unknown command(s) {unknown}; choose from {sorted(every)}")
        env = {**os.environ, "BANANA_TIMINGS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1"}
        load_before = os.getloadavg()
        columns = [(n, n, env) for n in chosen]
        if a.before is not None:
            old = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(a.before.resolve()), env.get("PYTHONPATH")]))}
            columns += [(f"{n} (before)", n, old) for n in chosen if n in ("plan", "edit")]
        results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in columns}
        for r in range(a.runs):
            for name, command, base_env in columns:
                run_env = {**base_env, "BANANA_CACHE": str(fresh_cache(work))} if a.empty_cache else base_env
                results[name].append(once(every[command], run_env))
                print(f"round {r + 1}/{a.runs} {name}: {results[name][-1]['wall']:.2f} s", file=sys.stderr, flush=True)
        load_after = os.getloadavg()
        print(f"\ncold start-up, {a.runs} fresh processes per command (medians), cache: {'empty' if a.empty_cache else 'as found'}; "
              f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
        print(table(results))
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps({"runs": results, "load": [load_before, load_after]}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
