"""Jinja2 prompt templates for the planner, rendered from the registry."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("banana.prompts", ""), undefined=StrictUndefined, keep_trailing_newline=True,
                       trim_blocks=False, lstrip_blocks=False, autoescape=False)


def render(name: str, **context: Any) -> str:
    """Render ``prompts/<name>.j2``."""
    return environment().get_template(f"{name}.j2").render(**context)
