"""A compact surface form of programs, for small planners.

One line per node, ports positional (as references), literal args by keyword in
the tool's declared order; the last line is the output::

    person = segment(input, target="person")
    bg = invert(person)
    out = blur(input, bg, amount=0.6)

It lowers deterministically to the JSON program (and prints back from it), so
everything downstream — validation, repair messages, the executor — is shared. A
135M model emits about a third of the tokens the JSON needs, which is what makes
it fast enough and learnable in minutes of CPU training. Parsing is a small
tokenizer plus ``json.loads`` for literals: nothing a model wrote is evaluated.
The xgrammar EBNF that constrains decoding is generated from the same registry as
the JSON Schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent.program import MAX_NODES, Problem, Program, ProgramError, parse_program
from tools.registry import Registry
from tools.spec import ToolSpec

LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$")
TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<list>\[[^\[\]]*\])
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<kw>[A-Za-z_][A-Za-z0-9_]*)\s*=
    | (?P<name>true|false|null|[A-Za-z_][A-Za-z0-9_]*)
    | (?P<comma>,)
    )""",
    re.VERBOSE,
)


def _literal(kind: str, text: str) -> Any:
    if kind == "name":
        return {"true": True, "false": False, "null": None}[text]
    return json.loads(text)


def _split_args(text: str, node: str) -> list[tuple[str | None, str, str]]:
    """(keyword or None, kind, text) for each argument, or a ProgramError naming the node."""
    out: list[tuple[str | None, str, str]] = []
    pos, kw, expect_value = 0, None, True
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ProgramError([Problem(node=node, message=f"cannot read the arguments from {text[pos:]!r}")])
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "comma":
            if expect_value:
                raise ProgramError([Problem(node=node, message="an argument is missing between commas")])
            expect_value = True
            continue
        if not expect_value:
            raise ProgramError([Problem(node=node, message=f"arguments must be separated by commas near {m.group(0).strip()!r}")])
        if kind == "kw":
            if kw is not None:
                raise ProgramError([Problem(node=node, message=f"keyword {kw!r} has no value")])
            kw = m.group("kw")
            continue
        out.append((kw, kind, m.group(kind)))
        kw, expect_value = None, False
    if text.strip() and expect_value:
        raise ProgramError([Problem(node=node, message="the argument list ends with a comma or a keyword without a value")])
    return out


def parse_surface(text: str, registry: Registry) -> Program:
    """Lower the compact form to a Program; problems name the line's node."""
    problems: list[Problem] = []
    nodes: list[dict[str, Any]] = []
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise ProgramError([Problem(message="the plan is empty; write one line per step like: out = blur(input, amount=0.5)")])
    for i, line in enumerate(lines[: MAX_NODES + 1]):
        m = LINE.match(line)
        if not m:
            problems.append(Problem(node=f"line {i + 1}", message=f"expected 'name = tool(args)', got {line.strip()!r}"))
            continue
        node_id, tool_name, arg_text = m.groups()
        if tool_name not in registry:
            problems.append(Problem(node=node_id, where="tool", message=f"unknown tool {tool_name!r}{registry.suggest(tool_name)}"))
            continue
        spec = registry.get(tool_name)
        try:
            parts = _split_args(arg_text, node_id)
        except ProgramError as exc:
            problems += exc.problems
            continue
        args: dict[str, Any] = {}
        ports = list(spec.inputs)
        positional = 0
        for kw, kind, value in parts:
            if kw is None:
                if kind != "name" or value in ("true", "false", "null"):
                    problems.append(Problem(node=node_id, message=f"positional arguments are references to earlier steps; "
                                                                  f"write literal {value} as name=value"))
                    break
                if positional >= len(ports):
                    problems.append(Problem(node=node_id, message=f"{tool_name} takes {len(ports)} reference(s) "
                                                                  f"({', '.join(ports)}), got more"))
                    break
                args[ports[positional]] = "$" + value
                positional += 1
            elif kw in args:
                problems.append(Problem(node=node_id, where=f"args.{kw}", message=f"{kw!r} is given twice"))
            elif kind == "name" and value not in ("true", "false", "null"):
                args[kw] = "$" + value if kw in spec.inputs else value
            else:
                args[kw] = _literal(kind, value)
        nodes.append({"id": node_id, "tool": tool_name, "args": args})
    if len(lines) > MAX_NODES:
        problems.append(Problem(message=f"the plan has {len(lines)} steps; at most {MAX_NODES} are allowed"))
    if problems:
        raise ProgramError(problems)
    return parse_program({"version": 1, "nodes": nodes, "output": "$" + nodes[-1]["id"]})


def _format_literal(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return json.dumps(round(value, 3))
    if isinstance(value, float):
        return json.dumps(round(value, 3))
    return json.dumps(value, separators=(",", ":"))


def to_surface(program: Program | dict[str, Any], registry: Registry) -> str:
    """Print a program in the compact form (its output node last)."""
    if not isinstance(program, Program):
        program = parse_program(program)
    out_id = program.output[1:]
    nodes = [n for n in program.nodes if n.id != out_id] + [n for n in program.nodes if n.id == out_id]
    lines = []
    for node in nodes:
        spec = registry.get(node.tool)
        parts: list[str] = []
        skipped = False
        for port in spec.inputs:
            value = node.args.get(port)
            if value is None:
                skipped = True
                continue
            parts.append(value[1:] if not skipped else f"{port}={value[1:]}")
        for name in spec.arg_names:
            if name in node.args:
                parts.append(f"{name}={_format_literal(node.args[name])}")
        lines.append(f"{node.id} = {node.tool}({', '.join(parts)})")
    return "\n".join(lines)


# ---------------------------------------------------------------- grammar

FLOAT = '"-"? [0-9] ("." [0-9] [0-9]?)?'
INT = '"-"? [0-9] [0-9]? [0-9]? [0-9]?'
STRING = '"\\"" [^"\\\\\\n] [^"\\\\\\n]* "\\""'


def _value_rule(prop: dict[str, Any]) -> str | None:
    """EBNF for one literal arg's JSON Schema, or None when the compact form leaves it out."""
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        return _value_rule(options[0]) if len(options) == 1 else None
    if "enum" in prop:
        return " | ".join(json.dumps(json.dumps(v)) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(json.dumps(prop["const"]))
    t = prop.get("type")
    if t == "number":
        return FLOAT
    if t == "integer":
        return INT
    if t == "string":
        return STRING
    if t == "boolean":
        return '"true" | "false"'
    if t == "array" and prop.get("items", {}).get("type") == "integer":
        n = prop.get("minItems", 1)
        return '"[" ' + ' "," '.join([INT] * n) + ' "]"'
    return None


def _tool_rule(spec: ToolSpec) -> str:
    refs: list[str] = []
    for i, (_port, p) in enumerate(spec.inputs.items()):
        sep = "" if i == 0 else '", " '
        refs.append(f"{sep}ref" if p.required else f"({sep}ref)?")
    props = spec.args_schema().get("properties", {})
    required = set(spec.required_args())
    kwargs: list[str] = []
    for name, prop in props.items():
        rule = _value_rule(prop)
        if rule is None:
            continue
        lead = '", "' if (spec.inputs or kwargs) else '""'
        piece = f'{lead} "{name}=" ({rule})'
        kwargs.append(piece if name in required else f"({piece})?")
    body = " ".join(refs + kwargs) or '""'
    return f'call_{spec.name} ::= "{spec.name}(" {body} ")"'


def surface_grammar(registry: Registry, max_nodes: int = 8) -> str:
    """The xgrammar EBNF of the compact form for every registered tool."""
    tools = list(registry)
    rules = [
        f'root ::= stmt{"" if max_nodes == 1 else " stmt?" * (max_nodes - 1)}',
        'stmt ::= ident " = " call "\\n"',
        "ident ::= [a-z] [a-z0-9_]*",
        "ref ::= [a-z] [a-z0-9_]*",
        "call ::= " + " | ".join(f"call_{s.name}" for s in tools),
        *(_tool_rule(s) for s in tools),
    ]
    return "\n".join(rules) + "\n"
