"""``banana chat``: a multi-turn editing chat in the terminal (rich), or a script of turns.

Each line is a turn of text (planned, or a follow-up that revises the previous
program) or a command: /undo /redo /history /branch N /open IMAGE /save PATH /quit.
The agent (planner, executor cache) is loaded once for the whole chat; every turn is
stored in the session store, so ``--session NAME`` resumes where it stopped.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from banana.agent.critic import Critique
from banana.agent.executor import NodeEvent
from banana.agent.samples import load_image
from banana.agent.sessions import Store, StoreError
from banana.agent.turns import Agent, ChatSession, TurnError, TurnOutcome

StoreOpt = Annotated[Path | None, typer.Option("--store", help="session store folder (default: $BANANA_HOME or ~/.local/share/banana)")]
HELP = "commands: /undo /redo /history /branch N /open IMAGE /save PATH /quit (anything else is an edit)"


class Quit(Exception):
    """/quit."""


@dataclass
class Chat:
    """The chat loop's state: a session, where pictures go, and how to talk."""

    session: ChatSession
    console: Console
    out: Path | None = None
    progress: bool = True

    def handle(self, line: str) -> str:
        """One line: a command or a turn; returns what to tell the user. TurnError for what went wrong."""
        line = line.strip()
        if line.startswith("/"):
            return self.command(line)
        return self.turn(line)

    def command(self, line: str) -> str:
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            raise TurnError(f"cannot read {line!r}: {exc}") from None
        name, args = parts[0].lower(), parts[1:]
        s = self.session
        if name in ("/quit", "/exit", "/q"):
            raise Quit
        if name == "/help":
            return HELP
        if name == "/undo":
            t = s.undo()
            return f"undone: now at turn {t.n} ({t.instruction or t.kind})"
        if name == "/redo":
            t = s.redo()
            return f"redone: now at turn {t.n} ({t.instruction or t.kind})"
        if name == "/history":
            return self.history()
        if name == "/branch":
            if len(args) != 1 or not args[0].isdigit():
                raise TurnError("usage: /branch N (a turn number from /history)")
            t = s.branch(int(args[0]))
            return f"at turn {t.n} ({t.instruction or t.kind}); the next edit starts a new branch from here"
        if name == "/open":
            if len(args) != 1:
                raise TurnError("usage: /open IMAGE (a file or sample:NAME)")
            try:
                image = load_image(args[0])
            except (OSError, ValueError, KeyError) as exc:
                raise TurnError(f"/open {args[0]}: {exc}") from None
            t = s.open(image, label=f"/open {args[0]}")
            return f"opened {args[0]} ({image.width}x{image.height}) as turn {t.n}"
        if name == "/save":
            if len(args) != 1:
                raise TurnError("usage: /save PATH")
            path = Path(args[0])
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                s.picture().save(path)
            except (OSError, ValueError) as exc:
                raise TurnError(f"cannot write {path}: {exc}") from None
            return f"saved {path}"
        raise TurnError(f"unknown command {name}; {HELP}")

    def history(self) -> str:
        s = self.session
        cur = s.current
        on_path = {t.n for t in s.store.path(s.name)}
        lines = []
        for t in s.store.turns(s.name):
            mark = ">" if cur is not None and t.n == cur.n else ("*" if t.n in on_path else " ")
            parent = "" if t.parent is None else f" (from {t.parent})"
            lines.append(f"{mark} {t.n}{parent} {t.kind}: {t.instruction or '-'}")
        return "\n".join(lines) or "no turns yet"

    def turn(self, text: str) -> str:
        bar = (Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=self.console, transient=True) if self.progress else None)
        with bar if bar is not None else nullcontext():
            task = bar.add_task("planning", total=None) if bar is not None else None

            def on_event(ev: NodeEvent) -> None:
                if bar is None or task is None:
                    return
                if ev.kind == "queued":
                    bar.update(task, total=(bar.tasks[0].total or 0) + 1)
                elif ev.kind == "started":
                    bar.update(task, description=f"{ev.node} ({ev.tool})")
                elif ev.kind in ("finished", "cached", "failed", "skipped", "cancelled"):
                    bar.advance(task)

            saved, outcome = self.session.say(text, on_event)
        return self.report(saved.n, outcome)

    def report(self, n: int, outcome: TurnOutcome) -> str:
        reg = self.session.agent.registry
        if outcome.op in ("undo", "redo"):
            return f"{outcome.op}: now at turn {n}"
        lines = [f"turn {n} ({outcome.op}): plan"]
        lines += [f"  {i}. {step}" for i, step in enumerate(outcome.steps(reg).splitlines(), 1)]
        if outcome.run is not None:
            ran, cached = len(outcome.run.executed), len(outcome.run.cached)
            lines.append(f"  ran {ran} node(s), {cached} from cache; plan {outcome.plan_seconds:.2f} s, run {outcome.run_seconds:.2f} s")
        if outcome.critique is not None:
            lines.append(f"  critique: {Critique.model_validate(outcome.critique).summary()}")
        lines.append(f"  result: {self.session.store.pictures.path(self.session.current.picture)}")  # type: ignore[union-attr]
        return "\n".join(lines)

    def write_turn(self, index: int) -> Path | None:
        """DIR/turn-N.png with the current picture (after the N-th line)."""
        if self.out is None or self.session.current is None:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"turn-{index}.png"
        self.session.picture().save(path)
        return path

    def run_lines(self, lines: Iterable[str]) -> int:
        """Feed lines (a script, or the terminal); returns how many lines failed."""
        failures = 0
        index = 0
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            index += 1
            try:
                message = self.handle(line)
                self.console.print(escape(message), highlight=False)
            except Quit:
                break
            except TurnError as exc:
                failures += 1
                self.console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            written = self.write_turn(index)
            if written is not None:
                self.console.print(f"[dim]wrote {written}[/dim]", highlight=False)
        return failures


def prompt_lines(console: Console) -> Iterable[str]:
    """Lines typed at the terminal until EOF or /quit."""
    while True:
        try:
            yield console.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            return


def chat_cmd(
    image: Annotated[str | None, typer.Argument(help="picture to start from (file or sample:NAME)")] = None,
    session: Annotated[str | None, typer.Option("--session", help="session name; an existing one is resumed")] = None,
    script: Annotated[Path | None, typer.Option("--script", help="run these lines (one turn or /command each), not a prompt")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write DIR/turn-N.png after the N-th line")] = None,
    store: StoreOpt = None,
) -> None:
    """A multi-turn editing chat: follow-ups ("stronger", "undo that", "also the sky") revise the previous plan."""
    console = Console(stderr=script is not None, soft_wrap=True)
    if script is not None and not script.is_file():
        console.print(f"[red]error:[/red] no script at {escape(str(script))}", highlight=False)
        raise typer.Exit(2)
    first = None
    if image is not None:
        try:
            first = load_image(image)
        except (OSError, ValueError, KeyError) as exc:
            console.print(f"[red]error:[/red] {escape(f'{image}: {exc}')}", highlight=False)
            raise typer.Exit(2) from None
    try:
        db = Store(store)
    except (OSError, StoreError) as exc:
        console.print(f"[red]error:[/red] session store: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    name = session or f"chat-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    with db, Agent() as agent:
        chat = Chat(ChatSession(db, name, agent), console, out, progress=script is None)
        cur = chat.session.current
        if first is not None and (cur is None or db.picture(cur.picture).content_hash != first.content_hash):
            chat.session.open(first, label=f"/open {image}")
        console.print(f"session {name!r} in {db.root}; {HELP}", highlight=False)
        if script is not None:
            failures = chat.run_lines(script.read_text().splitlines())
        else:
            chat.run_lines(prompt_lines(console))
            failures = 0  # errors were shown as they happened
    if failures:
        console.print(f"[red]{failures} line(s) failed[/red]")
        raise typer.Exit(1)
