"""The CLI side of the loop: ``banana edit`` through :func:`run_loop`, and ``banana critique``.

Kept out of cli.py (which registers these) so the command file stays small.
Exit codes: 0 every hard check passed; 1 the best result still fails a hard check (it is
written anyway, with what could not be done and why) or a node failed; 2 bad input;
3 the planner refused or the program needs diffusion weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from banana.agent.console import console, error, out
from banana.agent.critic import Critique, critique, critique_table
from banana.agent.executor import Executor, ResultCache
from banana.agent.loop import Budget, LoopEvent, LoopResult, run_loop
from banana.agent.outputs import write_image, write_text
from banana.agent.planner import Planner, PlanningError, PlanRequest
from banana.agent.program import ProgramError, input_names, validate
from banana.agent.samples import load_image
from banana.tools.registry import Registry, RegistryError, default_registry
from banana.tools.values import Image


def critique_rich(c: Critique, title: str = "critique") -> Table:
    table = Table(title=f"{title}: {'passed' if c.passed else 'FAILED'}")
    for col in ("node", "tool", "kind", "check", "value", "threshold", "", "advice"):
        table.add_column(col, overflow="fold")
    for row in critique_table(c):
        mark = "[green]ok[/green]" if row["passed"] else ("[red]FAIL[/red]" if row["hard"] else "[yellow]warn[/yellow]")
        table.add_row(
            row["node"],
            row["tool"],
            row["kind"],
            escape(row["check"]),
            f"{row['value']:.4g}",
            f"{row['threshold']:.4g}",
            mark,
            escape(row["advice"]),
        )
    return table


def _show_event(ev: LoopEvent) -> None:
    colour = {"critique": "green" if ev.passed else "yellow", "local_fix": "cyan", "replan": "cyan", "refused": "yellow"}.get(
        ev.kind, "dim"
    )
    console.print(f"[{colour}]{ev.kind}[/{colour}] #{ev.attempt} {ev.time:.2f}s {escape(ev.message)}", highlight=False)


def edit_with_loop(
    registry: Registry,
    planner: Planner,
    picture: Image,
    request: PlanRequest,
    output: Path,
    *,
    quiet: bool = False,
    explain: bool = False,
    critic: bool = True,
    cache: ResultCache | None = None,
    files: object | None = None,
    save_program: Path | None = None,
    budget: Budget | None = None,
    on_attempt: Callable[..., None] | None = None,
) -> LoopResult:
    """Run the loop for ``banana edit``; writes the best result and exits non-zero as the module docstring says."""
    from banana.agent.preflight import NeedsWeights

    kwargs = {"files": files} if files is not None else {}
    try:
        with Executor(registry, cache=cache, **kwargs) as executor:  # type: ignore[arg-type]
            result = run_loop(
                request,
                {"input": picture},
                planner,
                executor,
                registry,
                budget=budget,
                on_event=None if quiet else _show_event,
                critic=critic,
                on_attempt=on_attempt,
            )
    except PlanningError as exc:
        error(exc)
        raise typer.Exit(1) from None
    except NeedsWeights as exc:
        console.print(f"[yellow]needs weights:[/yellow] {escape(str(exc))}", highlight=False)
        raise typer.Exit(3) from None
    if result.refusal:
        console.print(f"[yellow]cannot:[/yellow] {escape(result.refusal)}", highlight=False)
        raise typer.Exit(3)
    if result.program is not None and save_program:
        write_text(result.program.to_json(indent=2) + "\n", save_program)
    if explain and result.critique is not None:
        console.print(critique_rich(result.critique, f"attempt {result.best} of {len(result.attempts)}"))
    for failure in result.run.failures.values() if result.run else []:
        error(failure.error, label=failure.kind)
    if result.image is None:
        error(result.explain(), label="failed")
        raise typer.Exit(1)
    try:
        write_image(result.image, output)
    except (OSError, ValueError) as exc:
        error(f"cannot write {output}: {exc}")
        raise typer.Exit(2) from None
    console.print(f"wrote {escape(str(output))} ({escape(result.critique.description) if result.critique else ''})", highlight=False)
    if critic and not result.passed:
        error(result.explain(), label="not done")
        raise typer.Exit(1)
    return result


def critique_cmd(
    program: Annotated[Path, typer.Argument(help="program JSON file")],
    input: Annotated[list[str], typer.Option("--input", "-i", help="image file or sample:NAME; repeat for $input1, ...")],
    result_path: Annotated[Path, typer.Option("--result", help="the result picture to judge")],
    request: Annotated[str | None, typer.Option("--request", help="the instruction, to also check the plan's intent")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Judge a program's result: exit 0 when every hard check passes, 1 otherwise (with the reasons)."""
    try:
        registry = default_registry()
    except RegistryError as exc:
        error(exc)
        raise typer.Exit(2) from None
    if not program.is_file():
        error(f"no program file at {program}")
        raise typer.Exit(2)
    try:
        images = {name: load_image(p) for name, p in zip(input_names(len(input)), input, strict=True)}
        result = Image.load(result_path)
    except (OSError, ValueError, KeyError) as exc:
        error(exc)
        raise typer.Exit(2) from None
    try:
        valid = validate(program.read_text(), registry, inputs={n: "Image" for n in images})
    except ProgramError as exc:
        console.print(f"[red]{escape(str(program))}: {len(exc.problems)} problem(s)[/red]")
        for p in exc.problems:
            console.print(f"  - {p}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    # the masks and other intermediate values come from running the program; the judged output is the given picture
    with Executor(registry) as executor:
        run = executor.run(valid, dict(images))
    run.outputs[valid.output] = result
    run.failures.pop(valid.output, None)
    c = critique(valid, run, dict(images), registry, request=request)
    if as_json:
        print(json.dumps({"passed": c.passed, "description": c.description, "checks": critique_table(c), "reasons": c.lines()}))
    else:
        out.print(critique_rich(c, str(result_path)))
        for line in c.lines():
            console.print(line, markup=False, highlight=False)
    raise typer.Exit(0 if c.passed else 1)
