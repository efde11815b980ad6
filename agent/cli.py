"""The ``banana`` command line (typer + rich)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from banana.agent import timings
from banana.agent.console import console, error, out
from banana.agent.executor import Executor, NodeEvent, ResultCache, RunResult
from banana.agent.outputs import PICTURE_SUFFIXES, check_output, write_image
from banana.agent.planner import Plan, Planner, PlanningError, PlanRequest, make_planner
from banana.agent.planner.base import JUNK_REASON, is_junk
from banana.agent.planner.http import ServerError
from banana.agent.preflight import NeedsWeights
from banana.agent.program import ProgramError, ValidProgram, input_names, planner_schema, validate
from banana.agent.router_cli import TracesOpt
from banana.agent.samples import load_image
from banana.tools.backbone import BackboneMeta
from banana.tools.files import ReadPolicy
from banana.tools.registry import Registry, RegistryError, default_registry
from banana.tools.values import Image

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Banana: plan, run and refine image edits.")


def _registry() -> Registry:
    try:
        with timings.phase("registry"):
            return default_registry()
    except RegistryError as exc:
        error(exc)
        raise typer.Exit(2) from None


def _read_program(path: Path, registry: Registry, n_inputs: int) -> ValidProgram:
    if not path.is_file():
        error(f"no program file at {path}")
        raise typer.Exit(2)
    inputs = {name: "Image" for name in input_names(max(n_inputs, 1))}
    try:
        return validate(path.read_bytes(), registry, inputs=inputs)
    except ProgramError as exc:
        console.print(f"[red]{escape(str(path))}: {len(exc.problems)} problem(s)[/red]")
        for p in exc.problems:
            console.print(f"  - {p}", markup=False, highlight=False)
        raise typer.Exit(1) from None


@app.command("tools")
def tools_cmd(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List the registered tools with their typed ports and args."""
    registry = _registry()
    if as_json:
        out.print_json(json.dumps([s.describe() for s in registry]))
        return
    table = Table(title=f"{len(registry)} tools")
    for col in ("tool", "role", "signature", "description", "from"):
        table.add_column(col, overflow="fold")
    for spec in registry:
        source = registry.sources[spec.name].split("'")[1] if "'" in registry.sources[spec.name] else "code"
        table.add_row(spec.name, spec.role, escape(spec.signature()), escape(spec.description), escape(source))
    out.print(table)


@app.command("schema")
def schema_cmd(indent: int = 2) -> None:
    """Print the JSON Schema the planner is constrained with (built from the registry)."""
    print(json.dumps(planner_schema(_registry()), indent=indent or None))


@app.command("validate")
def validate_cmd(
    program: Annotated[Path, typer.Argument(help="program JSON file")],
    inputs: Annotated[int, typer.Option(help="how many session inputs ($input, $input1, ...)")] = 1,
) -> None:
    """Check a program; exit 1 and list every problem when it is invalid."""
    valid = _read_program(program, _registry(), inputs)
    out.print(f"[green]ok[/green]: {len(valid.order)} node(s) run for output ${valid.output}: {' -> '.join(valid.order)}")


def run_with_progress(executor: Executor, valid: ValidProgram, images: dict[str, Image], quiet: bool) -> RunResult:
    """Run a program with a progress bar on stderr."""
    if quiet:
        return executor.run(valid, images)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("running", total=len(valid.order))

        def on_event(ev: NodeEvent) -> None:
            if ev.kind == "started":
                bar.update(task, description=f"{ev.node} ({ev.tool})")
            elif ev.kind == "progress":
                bar.update(task, description=f"{ev.node} ({ev.tool}) {ev.fraction:.0%} {ev.message}")
            elif ev.kind in ("finished", "cached", "failed", "skipped", "cancelled"):
                bar.advance(task)

        return executor.run(valid, images, on_event=on_event)


def print_backbone_notes(valid: ValidProgram, result: RunResult) -> None:
    """Say which backbone made a picture (the classical fallback never passes for diffusion), once: tools may pass records on."""

    def record(node: str) -> BackboneMeta | None:
        value = result.outputs.get(node)
        return BackboneMeta.read(value.meta) if isinstance(value, Image) else None

    for n in valid.order:
        info = record(n)
        if info is not None and all(record(p) != info for p in valid.graph.predecessors(n)):
            console.print(f"{n} ({valid.program.node(n).tool}): {info.note}", markup=False, highlight=False)


def timing_table(valid: ValidProgram, result: RunResult) -> Table:
    table = Table(title=f"run: {result.wall * 1000:.0f} ms")
    for col in ("node", "tool", "status", "ms"):
        table.add_column(col)
    for n in valid.order:
        tool = valid.program.node(n).tool
        if n in result.failures:
            f = result.failures[n]
            table.add_row(n, tool, f"[red]{f.kind}[/red]", "")
        else:
            status = "cached" if n in result.cached else "ran"
            table.add_row(n, tool, status, f"{result.timings.get(n, 0.0) * 1000:.1f}")
    return table


def execute(registry: Registry, valid: ValidProgram, images: dict[str, Image], output: Path, quiet: bool,
            cache: ResultCache | None = None, files: ReadPolicy | None = None) -> None:
    """Run a validated program, report timings, backbone notes and failures, write the output.

    Exit 1 when a node fails; exit 3 when the set-up cannot run the program at all (it needs diffusion weights), before any work.
    """
    try:
        with Executor(registry, cache=cache, files=files) as executor:
            result = run_with_progress(executor, valid, images, quiet)
    except NeedsWeights as exc:
        console.print(f"[yellow]needs weights:[/yellow] {escape(str(exc))}", highlight=False)
        raise typer.Exit(3) from None
    if not quiet:
        console.print(timing_table(valid, result))
    print_backbone_notes(valid, result)
    for failure in result.failures.values():
        error(failure.error, label=failure.kind)
    if not result.ok:
        raise typer.Exit(1)
    try:
        write_image(result.output, output)  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:  # checked before the run, so only a disk that filled up or changed meanwhile
        error(f"cannot write {output}: {exc}")
        raise typer.Exit(2) from None
    console.print(f"wrote {escape(str(output))}", highlight=False)


def _check_output(path: Path, what: str = "-o", suffixes: tuple[str, ...] = PICTURE_SUFFIXES) -> None:
    """Refuse an output that cannot be written before any work is done."""
    try:
        check_output(path, what, suffixes)
    except ValueError as exc:
        error(exc)
        raise typer.Exit(2) from None


AllowReadOpt = Annotated[list[Path] | None, typer.Option(
    "--allow-read", help="a folder programs may read files from (e.g. replace_background file=); repeatable")]


def _read_policy(allow_read: list[Path] | None, inputs: list[str]) -> ReadPolicy:
    """Programs may read the session's input files and the granted folders, nothing else."""
    try:
        return ReadPolicy(dirs=allow_read or [], files=[p for p in inputs if not p.startswith("sample:")])
    except ValueError as exc:
        error(exc)
        raise typer.Exit(2) from None


CacheDirOpt = Annotated[Path | None, typer.Option("--cache-dir", help="keep node results in this folder (processes may share it)")]
CacheMaxOpt = Annotated[float | None, typer.Option("--cache-max-gb", min=0.0,
                                                   help="bound the --cache-dir folder; the least recently used results go first")]


def _cache(cache_dir: Path | None, max_gb: float | None) -> ResultCache:
    """The run's result cache (in memory, or over --cache-dir); a folder that cannot hold one is an error (exit 2)."""
    if max_gb is not None and cache_dir is None:
        console.print("[red]error:[/red] --cache-max-gb bounds the --cache-dir folder: give --cache-dir too")
        raise typer.Exit(2)
    try:
        return ResultCache(disk=cache_dir, disk_max_bytes=None if max_gb is None else int(max_gb * 2**30))
    except OSError as exc:
        error(f"--cache-dir: {exc}")
        raise typer.Exit(2) from None


@app.command("run")
def run_cmd(
    program: Annotated[Path, typer.Argument(help="program JSON file")],
    input: Annotated[list[str], typer.Option("--input", "-i", help="image file or sample:NAME; repeat for $input1, ...")],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the result (PNG)")],
    cache_dir: CacheDirOpt = None,
    cache_max_gb: CacheMaxOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or timing table")] = False,
    allow_read: AllowReadOpt = None,
) -> None:
    """Validate and run a program on input images; write the output picture."""
    _check_output(output)
    registry = _registry()
    cache = _cache(cache_dir, cache_max_gb)
    valid = _read_program(program, registry, len(input))
    files = _read_policy(allow_read, input)
    images: dict[str, Image] = {}
    for name, path in zip(input_names(len(input)), input, strict=True):
        try:
            images[name] = load_image(path)
        except (OSError, ValueError, KeyError) as exc:
            error(f"--input {path}: {exc}")
            raise typer.Exit(2) from None
    with timings.phase("run"):
        execute(registry, valid, images, output, quiet, cache, files)


# ---------------------------------------------------------------- planning

BackendOpt = Annotated[str | None, typer.Option("--backend", help="embedded (default) or server (vLLM / llama.cpp)")]
ServerOpt = Annotated[str | None, typer.Option("--server-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000")]
ModelOpt = Annotated[str | None, typer.Option("--server-model", help="model name the server serves")]
FlavorOpt = Annotated[str | None, typer.Option("--server-flavor", help="vllm (default) or llama.cpp")]


def _make_planner(registry: Registry, backend: str | None, server_url: str | None, server_model: str | None,
                  flavor: str | None) -> Planner:
    try:
        with console.status("loading the planner"), timings.phase("planner"):
            return make_planner(registry, backend, server_url, server_model, flavor,  # type: ignore[arg-type]
                                say=lambda m: console.print(m, highlight=False))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        error(exc)
        raise typer.Exit(2) from None


def _plan_line(planner: Planner, line: str) -> str:
    """One line of --jsonl: plain text or {"instruction": ...}; never raises."""
    text = line.strip()
    shown = text if len(text) <= 200 else text[:200] + "..."
    try:
        instruction = json.loads(text)["instruction"] if text.startswith("{") else text
        plan = planner.plan(PlanRequest(instruction=instruction))
        return plan.to_json()  # a program, or {"cannot": reason}
    except (PlanningError, ServerError) as exc:
        return json.dumps({"instruction": shown, "error": str(exc)[:2000]})
    except RecursionError:
        return json.dumps({"instruction": shown, "error": "bad input line: JSON nested too deeply"})
    except (ValueError, KeyError, TypeError) as exc:
        return json.dumps({"instruction": shown, "error": f"bad input line: {str(exc)[:300]}"})
    except Exception as exc:  # one line's trouble must never stop the batch (a planner answer of any shape, say)
        return json.dumps({"instruction": shown, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})


def _request(instruction: str) -> PlanRequest:
    """Checked before any model loads, so a bad instruction costs nothing."""
    try:
        request = PlanRequest(instruction=instruction)
    except ValidationError as exc:
        error(f"instruction: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None
    if is_junk(request.instruction):
        _refused(JUNK_REASON)
    return request


def _refused(reason: str, as_json: bool = False) -> NoReturn:
    """The planner says no tool can do it: the reason, exit 3 (not a failure, not a plan)."""
    if as_json:
        print(json.dumps({"cannot": reason}))
    console.print(f"[yellow]cannot:[/yellow] {reason}", highlight=False)
    raise typer.Exit(3)


def _plan(planner: Planner, request: PlanRequest) -> Plan:
    try:
        with timings.phase("plan"):
            return planner.plan(request)
    except (PlanningError, ServerError) as exc:
        error(exc)
        raise typer.Exit(1) from None


@app.command("plan")
def plan_cmd(
    instruction: Annotated[str | None, typer.Argument(help="what to do to the picture")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the program as JSON")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="plan each stdin line; a program, {\"cannot\": why} or an error per line")] = False,
    backend: BackendOpt = None, server_url: ServerOpt = None, server_model: ModelOpt = None, flavor: FlavorOpt = None,
) -> None:
    """Plan an instruction into a validated program (the model loads once, also for --jsonl); exit 3 when it cannot be done."""
    if jsonl == (instruction is not None):
        console.print("[red]error:[/red] give an INSTRUCTION or --jsonl (lines on stdin), not both or neither")
        raise typer.Exit(2)
    request = None if jsonl else _request(instruction or "")
    registry = _registry()
    planner = _make_planner(registry, backend, server_url, server_model, flavor)
    if request is None:
        for line in sys.stdin:
            if line.strip():
                print(_plan_line(planner, line), flush=True)
        return
    plan = _plan(planner, request)
    if plan.refusal is not None:
        _refused(plan.refusal, as_json)
    assert plan.program is not None
    if as_json:
        print(plan.program.to_json(indent=2))
        return
    out.print(escape(plan.attempts[-1].text), highlight=False)
    note = f" after {len(plan.attempts) - 1} repair(s)" if plan.repaired else ""
    console.print(f"[dim]{plan.backend}: valid{note}, {plan.seconds:.2f} s[/dim]")


@app.command("edit")
def edit_cmd(
    image: Annotated[str, typer.Argument(help="image file or sample:NAME")],
    instruction: Annotated[str, typer.Argument(help="what to do to the picture")],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the result (PNG)")],
    save_program: Annotated[Path | None, typer.Option(help="also write the planned program here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    no_critique: Annotated[bool, typer.Option("--no-critique", help="one pass: plan, run, answer; no critic, no retries")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="print the critic's table of checks")] = False,
    allow_read: AllowReadOpt = None,
    cache_dir: CacheDirOpt = None,
    cache_max_gb: CacheMaxOpt = None,
    backend: BackendOpt = None, server_url: ServerOpt = None, server_model: ModelOpt = None, flavor: FlavorOpt = None,
    traces: TracesOpt = None,
) -> None:
    """Plan an instruction, validate it, and run it on a picture; exit 3 when the planner says no tool can do it."""
    request = _request(instruction)
    _check_output(output)
    if save_program is not None:
        _check_output(save_program, "--save-program", (".json",))
    registry = _registry()
    files = _read_policy(allow_read, [image])
    cache = _cache(cache_dir, cache_max_gb)
    try:
        picture = load_image(image)
    except (OSError, ValueError, KeyError) as exc:
        error(f"{image}: {exc}")
        raise typer.Exit(2) from None
    from banana.agent.loop_cli import edit_with_loop

    planner = _make_planner(registry, backend, server_url, server_model, flavor)
    from banana.agent.router_cli import learned

    with timings.phase("edit loop"), learned(traces, instruction) as on_attempt:  # learned routing + traces (issue 12)
        edit_with_loop(registry, planner, picture, request, output, quiet=quiet, explain=explain, critic=not no_critique, cache=cache,
                       files=files, save_program=save_program, on_attempt=on_attempt)


planner_app = typer.Typer(no_args_is_help=True, help="Train the embedded planner.")
app.add_typer(planner_app, name="planner")


@planner_app.command("train")
def train_cmd(
    minutes: Annotated[float, typer.Option(help="stop after this long")] = 30.0,
    examples: Annotated[int, typer.Option(help="generated examples (the run stops early when they are used up)")] = 8000,
    seed: Annotated[int, typer.Option(help="data, order and initial adapter")] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="adapter folder (default: the packaged one)")] = None,
    threads: Annotated[int, typer.Option(help="torch threads")] = 1,
    init: Annotated[Path | None, typer.Option(help="continue from this adapter folder instead of a fresh LoRA")] = None,
    from_traces: Annotated[Path | None, typer.Option("--from-traces", help="also train on self-play pairs (JSONL)")] = None,
    lr: Annotated[float, typer.Option(help="peak learning rate (lower when continuing from an adapter)")] = 1e-3,
    focus: Annotated[Path | None, typer.Option(help="weigh families by self-play's misses (.focus.json from `banana selfplay`)")] = None,
) -> None:
    """LoRA fine-tune the embedded planner on generated examples (CPU, bounded time, reproducible)."""
    from banana.agent.planner.train import TrainConfig, train, train_from_traces
    from banana.agent.selfplay import read_focus

    try:
        weights = read_focus(focus) if focus is not None else {}
    except (ValueError, OSError) as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    cfg = TrainConfig(minutes=minutes, examples=examples, seed=seed, threads=threads, init=init, lr=lr, focus=weights)
    if out_dir is not None:
        cfg.out = out_dir
    say = lambda m: console.print(m, highlight=False)  # noqa: E731
    if from_traces is None:
        report = train(cfg, _registry(), say=say)
    else:
        try:
            report = train_from_traces(cfg, _registry(), from_traces, say)
        except (ValueError, OSError) as exc:  # a missing or damaged pairs file: one line, exit 2
            error(str(exc))
            raise typer.Exit(2) from None
    out.print_json(report.model_dump_json())


# sessions (issue 13): the commands live in their own modules
from banana.agent.batch import batch_cmd  # noqa: E402
from banana.agent.chat import chat_cmd  # noqa: E402

app.command("chat")(chat_cmd)
app.command("batch")(batch_cmd)


# the critic alone (issue 9): its command lives beside the loop
from banana.agent.loop_cli import critique_cmd  # noqa: E402

app.command("critique")(critique_cmd)


# the HTTP API and web page (issue 14): FastAPI/uvicorn/gradio load only when the command runs
from banana.agent.server.cli import serve_cmd  # noqa: E402

app.command("serve")(serve_cmd)


# traces, the learned router and self-play (issue 12)
from banana.agent.router_cli import router_app, selfplay_cmd, traces_app  # noqa: E402

app.add_typer(traces_app, name="traces")
app.add_typer(router_app, name="router")
app.command("selfplay")(selfplay_cmd)


def main() -> None:
    timings.mark("imports")  # BANANA_TIMINGS=1: phase timings on stderr at exit (bench/startup.py)
    timings.print_at_exit()
    try:
        app()
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as done:
        if done.code == 130:  # typer turns Ctrl-C into exit 130
            _interrupted()
        if sys.argv[1:2] in (["plan"], ["edit"]):  # the commands that load torch and write everything with `with`
            timings.exit_fast(done.code)  # skip seconds of tearing torch down; returns when unsafe
        raise


def _interrupted() -> None:
    """Ctrl-C: the executor has cancelled its nodes and outputs are written atomically, so nothing is half-written."""
    console.print("interrupted: nothing was written")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)  # do not wait for a tool that never checks for cancellation (its thread would hold the exit)


if __name__ == "__main__":
    main()
