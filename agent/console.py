"""The terminal output every command shares: stderr for people, stdout for data, and one way to print an error.

Errors go through :func:`error`, which escapes the message, so a path or an instruction that contains
rich markup (``[/x]``, ``[red]``) prints as written instead of breaking the output.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, soft_wrap=True, emoji=False)  # ":banana:" in a path is not an emoji
out = Console(emoji=False)


def error(message: object, label: str = "error") -> None:
    """Print ``label: message`` in red on stderr, the message exactly as given."""
    console.print(f"[red]{escape(label)}:[/red] {escape(str(message))}", highlight=False)
