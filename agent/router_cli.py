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
    for col in ("tool", "implementation", "attempts", "pass rate", "median latency"):
        table.add_column(col)
    for r in rows:
        lat = "-" if r["median_latency_s"] is None else f"{r['median_latency_s']:.3f} s"
        table.add_row(r["tool"], r["impl"], str(r["attempts"]), f"{r['pass_rate']:.0%}", lat)
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
