"""The self-play request file: 300 distinct, short requests, none taken from an evaluation set.

Self-play trains on what the planner does with these requests, so a request that also sits in a
blind or planner evaluation set would leak it into training. On failure the test names only the
offending line of the request file, never the evaluation sets' contents.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = ROOT / "agent" / "planner" / "selfplay_requests.txt"


def _requests() -> list[str]:
    return REQUESTS.read_text(encoding="utf-8").splitlines()


def _evaluation_instructions() -> set[str]:
    """Lower-cased `instruction` fields of every planner and blind outcome evaluation set."""
    files = sorted((ROOT / "bench" / "planner").glob("*.jsonl")) + sorted((ROOT / "bench" / "outcomes").glob("blind_v*.jsonl"))
    seen: set[str] = set()
    for path in files:
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip():
                continue
            record = json.loads(raw)
            text = record.get("instruction") if isinstance(record, dict) else None
            if isinstance(text, str):
                seen.add(text.strip().lower())
    return seen


def test_three_hundred_plain_lines() -> None:
    lines = _requests()
    assert len(lines) == 300
    for number, line in enumerate(lines, 1):
        assert line.strip() == line and line, f"line {number} is blank or has surrounding spaces: {line!r}"
        assert len(line) <= 300, f"line {number} is longer than 300 characters: {line!r}"


def test_no_duplicates_ignoring_case() -> None:
    first: dict[str, int] = {}
    for number, line in enumerate(_requests(), 1):
        key = line.lower()
        assert key not in first, f"line {number} repeats line {first[key]}: {line!r}"
        first[key] = number


def test_none_is_an_evaluation_instruction() -> None:
    held_out = _evaluation_instructions()
    leaked = [f"line {number}: {line!r}" for number, line in enumerate(_requests(), 1) if line.strip().lower() in held_out]
    assert not leaked, "requests that are evaluation instructions: " + "; ".join(leaked)
