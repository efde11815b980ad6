"""The planner's conventions, read from the registry: each tool's ``ToolSpec.notes``.

One place defines how requests map to a tool: its spec. The JSON planner prompt lists
these notes, docs/catalogue.md carries them between markers (a test keeps the two equal;
``python -m banana.agent.planner.conventions`` prints the block to paste), and the
generator's families are tested against the same registry.
"""

from __future__ import annotations

from banana.tools.registry import Registry

START, END = "<!-- planner-notes:start (python -m banana.agent.planner.conventions) -->", "<!-- planner-notes:end -->"


def notes(registry: Registry) -> list[tuple[str, str]]:
    """(tool, note) for every registered tool that declares notes, in registry order."""
    return [(spec.name, note) for spec in registry for note in spec.notes]


def markdown(registry: Registry) -> str:
    """The docs block: one bullet per note, between the markers."""
    lines = [f"- `{tool}`: {note}" for tool, note in notes(registry)]
    return "\n".join([START, *lines, END])


def main() -> None:
    from banana.tools.registry import default_registry

    print(markdown(default_registry()))


if __name__ == "__main__":
    main()
