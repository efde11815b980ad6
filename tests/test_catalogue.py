"""docs/catalogue.md is the public contract: the registry must match it, tool by tool."""

import re
from pathlib import Path

import pytest

ROWS = [line for line in Path("docs/catalogue.md").read_text().splitlines() if line.startswith("| `")]


def parse_row(line: str) -> tuple[str, dict[str, tuple[str, bool]], set[str], str]:
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    name = cells[0].strip("`")
    ports = {}
    for part in re.findall(r"(\w+)(\??): (\w+)", cells[1]):
        ports[part[0]] = (part[2], part[1] != "?")
    literals = set(re.findall(r"(?:^|, |\| )(\w+)\??:", cells[2])) | set(re.findall(r"(\w+)\?: ", cells[2]))
    tone = ("brightness", "contrast", "saturation", "warmth", "hue", "shadows", "highlights")
    literals |= {m for m in re.findall(r"(\w+)(?:,| *:| *\?)", cells[2].split("—")[0]) if m in tone}
    return name, ports, literals, cells[3]


CATALOGUE = [parse_row(r) for r in ROWS]


def test_catalogue_lists_every_registered_tool(registry):
    listed = [c[0] for c in CATALOGUE]
    assert len(listed) == len(set(listed)), "a tool has two rows"
    assert {spec.name for spec in registry} - set(listed) == set(), "registered tools without a row in docs/catalogue.md"


@pytest.mark.parametrize(("name", "ports", "literals", "output"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_registry_matches_catalogue(registry, name, ports, literals, output):
    spec = registry.get(name)
    assert {k: (p.type, p.required) for k, p in spec.inputs.items()} == ports
    assert literals <= set(spec.arg_names), f"{name}: catalogue args {literals - set(spec.arg_names)} missing"
    assert spec.output == output
