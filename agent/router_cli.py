"""CLI for traces, the router and self-play: ``banana traces stats``, ``banana router show``, ``banana selfplay``.

Kept out of cli.py (which registers these) so the command file stays small.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from banana.agent.traces import TraceStore

console = Console(stderr=True, soft_wrap=True)
out = Console()

TracesOpt = Annotated[
    Path | None, typer.Option("--traces", help="traces database (default: $BANANA_TRACES or ~/.cache/banana/traces.sqlite)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

traces_app = typer.Typer(no_args_is_help=True, help="What every node attempt did (SQLite traces).")
router_app = typer.Typer(no_args_is_help=True, help="What the learned router knows.")


def open_store(path: Path | None) -> TraceStore:
    """The traces database, or exit 2 with one line naming what is wrong with it."""
    from banana.agent.traces import TraceStore

    try:
        return TraceStore(path)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


@contextmanager
def learned(traces: Path | None, request: str, source: str = "edit") -> Iterator[Callable[..., None] | None]:
    """The learned router (exploiting) while the body runs, and a recorder for ``run_loop(on_attempt=)``.

    Traces go to ``--traces``, else ``$BANANA_TRACES``, else the user's cache folder. A traces file
    that cannot be opened or written is a warning: the edit itself goes on with the fixed order.
    """
    from banana.agent.router import Router, routing
    from banana.agent.traces import TraceStore, node_rows
    from banana.tools.registry import default_registry

    try:
        store = TraceStore(traces)
    except (ValueError, OSError) as exc:
        console.print(f"[yellow]warning:[/yellow] no traces: {escape(str(exc))}", highlight=False)
        yield None
        return
    registry = default_registry()
    router = Router(store)

    def record(valid: Any, run: Any, crit: Any) -> None:
        try:
            rows = node_rows(valid, run, crit, registry, source=source, request=request)
            store.add(rows)
        except Exception as exc:  # a full disk or a locked file must not sink the edit
            console.print(f"[yellow]warning:[/yellow] traces not written: {type(exc).__name__}: {escape(str(exc))}", highlight=False)
            return
        for r in rows:
            if r.impl != "default":
                router.observe(r.tool, r.impl, r.version, r.bucket, r.passed, r.latency, r.distance)

    try:
        with routing(router):
            yield record
    finally:
        store.close()


@traces_app.command("stats")
def traces_stats_cmd(traces: TracesOpt = None, as_json: JsonOpt = False) -> None:
    """Per tool x implementation: attempts, pass rate, median latency."""
    from banana.agent.traces import stats

    with open_store(traces) as store:
        rows = stats(store)
        where = store.path
    if as_json:
        out.print_json(json.dumps({"traces": str(where), "rows": rows}))
        return
    table = Table(title=f"traces: {where} ({sum(r['attempts'] for r in rows)} attempts)")
    for col in ("tool", "implementation", "attempts", "critic pass rate", "median latency", "close to reference"):
        table.add_column(col)
    for r in rows:
        lat = "-" if r["median_latency_s"] is None else f"{r['median_latency_s']:.3f} s"
        ref = f"{r['reference_passed']}/{r['with_reference']}" if r["with_reference"] else "-"
        table.add_row(r["tool"], r["impl"], str(r["attempts"]), f"{r['pass_rate']:.0%}", lat, ref)
    out.print(table)


@router_app.command("show")
def router_show_cmd(traces: TracesOpt = None, as_json: JsonOpt = False) -> None:
    """One row per tool x implementation x context bucket, with the rule the router follows."""
    import banana.tools.registry as registry_module
    from banana.agent.router import Router

    registry_module.default_registry()  # the experts register their implementations (and versions) on import
    with open_store(traces) as store:
        rows = Router(store).rules()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("the router has learned nothing yet: every tool uses the fixed cost order (run `banana selfplay`)")
        return
    table = Table(title="router (exploitation)")
    for col in ("tool", "context", "implementation", "attempts", "success", "median latency", "chosen"):
        table.add_column(col, overflow="fold")
    for r in rows:
        lat = "-" if r["median_latency_s"] is None else f"{r['median_latency_s']:.3f} s"
        table.add_row(r["tool"], escape(r["bucket"] or "-"), r["impl"], str(r["attempts"]), f"{r['success_rate']:.0%}", lat,
                      "yes" if r["chosen"] else "")  # fmt: skip
    out.print(table)
    out.print("rules:")
    for r in rows:
        if r["chosen"]:
            out.print(f"  {escape(r['rule'])}", highlight=False, soft_wrap=True)


def _play_file(path: Path, registry: Any, out_file: Path, deadline: float, say: Callable[[str], None], as_json: bool) -> None:
    """``banana selfplay --requests-file``: the loop plays each request; its accepted fixes become pairs."""
    from banana.agent.planner import make_planner
    from banana.agent.selfplay import play_requests

    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]error:[/red] cannot read the requests file {escape(str(path))}: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    if not lines:
        console.print(f"[red]error:[/red] {escape(str(path))}: no requests (one a line)", highlight=False)
        raise typer.Exit(2)
    counts = play_requests(lines, make_planner(registry, say=say), registry, out_file, deadline=deadline, say=say)
    result = {"pairs": str(out_file), **counts}
    if as_json:
        out.print_json(json.dumps(result))
        return
    out.print(f"{counts['played']} requests played ({counts['skipped']} skipped: a held-out photo's or unknown), first plan passed "
              f"{counts['first_passed']}, after the loop {counts['loop_passed']}, refused {counts['refused']}; "
              f"{counts['taught']} taught the planner something -> {out_file}")  # fmt: skip


def selfplay_cmd(
    minutes: Annotated[float, typer.Option(min=0.1, help="stop starting new work after this long (all rounds together)")] = 10.0,
    rounds: Annotated[int, typer.Option(min=1, help="rounds of play (each with fresh tasks and requests)")] = 1,
    route_tasks: Annotated[int, typer.Option("--route-tasks", min=0, help="routing tasks per round (damaged crops, known originals)")] = 48,
    requests: Annotated[int, typer.Option(min=0, help="generated requests per round for the planner (0: routing play only)")] = 8,
    k: Annotated[int, typer.Option(min=1, max=16, help="plans sampled per request (plus the greedy one)")] = 4,
    seed: Annotated[int, typer.Option(help="tasks, requests and sampling")] = 0,
    traces: TracesOpt = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="training pairs (JSONL, appended; default: beside the traces, or ./selfplay-requests.jsonl)"),
    ] = None,
    requests_file: Annotated[
        Path | None, typer.Option("--requests-file", help="play these requests (one a line, no answers): the loop's accepted fixes teach")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Play against known answers: routing tasks teach the router, generated requests give the planner training pairs.

    Only the training photos and the generator's TRAIN templates are used; held-out templates,
    held-out photos and evaluation sets are never played on. Fold the pairs into the planner with
    ``banana planner train --from-traces FILE``.
    """
    import time

    from banana.agent.router import Router
    from banana.agent.selfplay import focus_path, play_plans, play_routes, write_focus
    from banana.agent.selfplay import route_tasks as make_tasks
    from banana.tools.registry import default_registry

    registry = default_registry()
    deadline = time.monotonic() + 60.0 * minutes
    say = (lambda m: None) if as_json else (lambda m: console.print(escape(m), highlight=False))
    if requests_file is not None:
        _play_file(requests_file, registry, out_file or Path("selfplay-requests.jsonl"), deadline, say, as_json)
        return
    planner = None
    if requests:
        from banana.agent.planner import make_planner

        planner = make_planner(registry, say=say)
    summary = []
    with open_store(traces) as store:
        pairs_file = out_file or store.path.with_name("selfplay.jsonl")
        router = Router(store, seed=seed)
        for r in range(rounds):
            round_end = time.monotonic() + (deadline - time.monotonic()) / (rounds - r)
            played = play_routes(make_tasks(route_tasks, seed=seed * 100 + r), registry, store, router, deadline=round_end, say=say)
            records = []
            if planner is not None and time.monotonic() < round_end:
                records = play_plans(requests, seed * 100 + r, k, planner, registry, store, pairs_file, deadline=round_end, say=say)
                write_focus(pairs_file, records)
            summary.append({
                "round": r, "route_tasks": len(played), "route_passed": sum(p.passed for p in played), "requests": len(records),
                "plans": sum(len(x.outcomes) for x in records), "accepted_plans": sum(o.accepted for x in records for o in x.outcomes),
                "greedy_accepted": sum(bool(x.outcomes) and x.outcomes[0].accepted for x in records),
                "any_accepted": sum(any(o.accepted for o in x.outcomes) for x in records),
            })  # fmt: skip
        result = {"traces": str(store.path), "pairs": str(pairs_file), "focus": str(focus_path(pairs_file)), "rounds": summary,
                  "rules": [x["rule"] for x in router.rules() if x["chosen"]]}  # fmt: skip
    if as_json:
        out.print_json(json.dumps(result))
        return
    for s in summary:
        out.print(f"round {s['round']}: routing {s['route_passed']}/{s['route_tasks']} passed; planner {s['requests']} requests, "
                  f"greedy accepted {s['greedy_accepted']}, any of K accepted {s['any_accepted']}")  # fmt: skip
    out.print(f"traces: {result['traces']}\ntraining pairs: {result['pairs']}\nfamily focus: {result['focus']}\nrules:")
    for rule in result["rules"]:
        out.print(f"  {escape(rule)}", highlight=False, soft_wrap=True)
