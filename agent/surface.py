"""Steps: a compact surface form of programs for small planners.

One tool call per line, literal args as ``key=value`` (JSON values), ports implicit::

    segment target="person"
    invert
    blur amount=0.5

Lowering to the JSON program is deterministic, by three rules:

- an Image port takes the *current* picture (``$input``, then each step that returns
  an Image); tools that look rather than edit (those that return a Mask, Boxes or an
  Identity) read the current *frame*: the input, or the latest crop/upscale, so a
  mask is always computed on the pixel grid it is applied to;
- a Mask, Boxes or Identity port pops the newest value of that type (optional ports
  only when one is waiting); every value a step makes must be used by a later step;
- the program's output is the last picture.

A small model emits about a third of the tokens the JSON needs and cannot write a
broken reference or a cycle, which makes it fast enough and learnable in minutes of
CPU training. Parsing is a tokenizer plus ``json.loads`` for values: nothing a model
wrote is evaluated. :func:`steps_grammar` builds the xgrammar EBNF from the same
registry as the JSON Schema; :func:`to_steps` prints a program back when its shape
allows, and :func:`canonical` compares programs regardless of node ids.
"""

from __future__ import annotations

import json
import re
from typing import Any

from banana.agent.program import MAX_NODES, Problem, Program, ProgramError, a, is_ref, parse_program, ref_name
from banana.tools.files import is_file_arg
from banana.tools.registry import Registry
from banana.tools.spec import ToolSpec

STEP = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(.*?)\s*$")
ARG = re.compile(r'\s*([a-z][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|\[[^\[\]]*\]|-?\d+(?:\.\d+)?|true|false)')
FRAME_ROLES = ("geometry", "restore")  # steps that change the pixel grid


def _parse_args(text: str, where: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    pos = 0
    while pos < len(text):
        m = ARG.match(text, pos)
        if not m:
            raise ProgramError([Problem(node=where, message=f"cannot read {text[pos:].strip()!r}; write arguments as key=value, "
                                                            'strings in double quotes: target="red car"')])
        key, raw = m.groups()
        if key in args:
            raise ProgramError([Problem(node=where, where=f"args.{key}", message=f"{key!r} is given twice")])
        try:
            args[key] = json.loads(raw)
        except ValueError:
            raise ProgramError([Problem(node=where, where=f"args.{key}", message=f"cannot read the value {raw!r}; "
                                                                                 'use numbers, "strings" or [1,2,3,4]')]) from None
        pos = m.end()
    return args


REFUSAL_TOOL = "cannot"  # the steps form of an honest refusal: one line, cannot reason="..."
REFUSAL = re.compile(r'^\s*cannot\s+reason=("(?:[^"\\]|\\.)*")\s*$')


def parse_refusal(text: str) -> str | None:
    """The reason when the answer is a refusal (``cannot reason="..."``), None when it is a plan."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines or lines[0].split(" ", 1)[0].strip() != REFUSAL_TOOL:
        return None
    if len(lines) > 1:
        raise ProgramError([Problem(node="step 1 (cannot)", message="a refusal is the only line of the answer; "
                                                                  'write either steps or cannot reason="..."')])
    m = REFUSAL.match(lines[0])
    if not m:
        raise ProgramError([Problem(node="step 1 (cannot)", where="args.reason",
                                    message='write a refusal as cannot reason="why no tool can do it"')])
    reason = json.loads(m.group(1)).strip()
    if not reason:
        raise ProgramError([Problem(node="step 1 (cannot)", where="args.reason", message="the refusal needs a reason")])
    return reason


def refusal_steps(reason: str) -> str:
    """The steps line of a refusal."""
    return f"{REFUSAL_TOOL} reason={json.dumps(reason.strip())}"


def parse_steps(text: str, registry: Registry) -> Program:
    """Lower steps to a Program; each problem names the step (``step 2 (invert)``)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise ProgramError([Problem(message='the plan is empty; write one step per line, e.g. blur amount=0.5')])
    if len(lines) > MAX_NODES:
        raise ProgramError([Problem(message=f"the plan has {len(lines)} steps; at most {MAX_NODES} are allowed")])
    problems: list[Problem] = []
    nodes: list[dict[str, Any]] = []
    current = frame = "input"
    waiting: dict[str, list[tuple[str, str]]] = {"Mask": [], "Boxes": [], "Identity": []}  # type -> [(node id, label)]
    counts: dict[str, int] = {}
    for i, line in enumerate(lines, 1):
        m = STEP.match(line)
        name, rest = (m.group(1), m.group(2)) if m else (line.strip(), "")
        label = f"step {i} ({name})"
        if name not in registry:
            problems.append(Problem(node=label, where="tool", message=f"unknown tool {name!r}{registry.suggest(name)}"))
            continue
        spec = registry.get(name)
        try:
            literals = _parse_args(rest, label)
        except ProgramError as exc:
            problems += exc.problems
            continue
        counts[name] = counts.get(name, 0) + 1
        node_id = name if counts[name] == 1 else f"{name}{counts[name]}"
        args: dict[str, Any] = {}
        ports = list(spec.inputs.items())
        # pop in reverse so that combine(a, b) takes the older mask as a, the newer as b
        for port, p in reversed(ports):
            if p.type == "Image":
                args[port] = "$" + (current if spec.output == "Image" else frame)
            elif waiting.get(p.type):
                args[port] = "$" + waiting[p.type].pop()[0]
            elif p.required:
                maker = {"Mask": "segment", "Boxes": "detect_faces", "Identity": "lock_identity"}.get(p.type, "a step")
                problems.append(Problem(node=label, where=f"args.{port}",
                                        message=f"{name} needs {a(p.type)} but no earlier step made one; add a step like "
                                                f"'{maker}' before it"))
        args = {port: args[port] for port, _ in ports if port in args}
        clash = [k for k in literals if k in spec.inputs]
        for k in clash:
            problems.append(Problem(node=label, where=f"args.{k}", message=f"{k!r} is filled in from earlier steps; leave it out"))
        nodes.append({"id": node_id, "tool": name, "args": {**args, **literals}})
        if spec.output == "Image":
            current = node_id
            if spec.role in FRAME_ROLES:
                frame = node_id
        elif spec.output in waiting:
            waiting[spec.output].append((node_id, label))
    for kind, left in waiting.items():
        for _, label in left:
            problems.append(Problem(node=label, message=f"makes {a(kind)} that no later step uses; use it (e.g. in blur, "
                                                         "recolor, remove) or drop the step"))
    if current == "input" and nodes:
        problems.append(Problem(message="no step changes the picture; end with a step that returns an Image"))
    if problems:
        raise ProgramError(problems)
    return parse_program({"version": 1, "nodes": nodes, "output": "$" + current})


# ---------------------------------------------------------------- printing and comparing


def _format(value: Any) -> str:
    if isinstance(value, float):
        value = round(value, 3)
    return json.dumps(value, separators=(",", ":"))


def _literals(spec: ToolSpec, args: dict[str, Any], fill_defaults: bool) -> dict[str, Any]:
    given = {k: v for k, v in args.items() if k in spec.arg_names}
    if not fill_defaults:
        return given
    return spec.args_model.model_validate(given).model_dump()


def to_steps(program: Program | dict[str, Any], registry: Registry) -> str:
    """Print a program as steps; raises ValueError when its shape has no steps form."""
    if not isinstance(program, Program):
        program = parse_program(program)
    nodes = {n.id: n for n in program.nodes}
    lines: list[str] = []
    done: set[str] = set()

    def emit(node_id: str) -> None:
        if node_id in done or node_id not in nodes:
            return
        node = nodes[node_id]
        spec = registry.get(node.tool)
        refs = [(port, ref_name(v)) for port, v in node.args.items() if port in spec.inputs and is_ref(v)]
        for _port, ref in refs:  # the picture chain first, then what it consumes, oldest first
            if ref in nodes and registry.get(nodes[ref].tool).output == "Image":
                emit(ref)
        for _port, ref in refs:
            if ref in nodes and registry.get(nodes[ref].tool).output != "Image":
                emit(ref)
        done.add(node_id)
        args = " ".join(f"{k}={_format(v)}" for k, v in _literals(spec, node.args, False).items())
        lines.append(f"{node.tool} {args}".strip())

    emit(ref_name(program.output))
    text = "\n".join(lines)
    if canonical(parse_steps(text, registry), registry) != canonical(program, registry):
        raise ValueError("this program's shape has no steps form (it reads an intermediate picture the steps rules would not)")
    return text


def canonical(program: Program | dict[str, Any], registry: Registry) -> str:
    """The output's expression tree with defaults filled in: equal iff the programs compute the same thing."""
    if not isinstance(program, Program):
        program = parse_program(program)
    nodes = {n.id: n for n in program.nodes}
    memo: dict[str, str] = {}

    def expr(ref: str) -> str:
        if ref not in nodes:
            return "$" + ref
        if ref not in memo:
            node = nodes[ref]
            spec = registry.get(node.tool)
            ports = [f"{p}={expr(ref_name(node.args[p]))}" for p in spec.inputs if is_ref(node.args.get(p))]
            lits = [f"{k}={_format(v)}" for k, v in sorted(_literals(spec, node.args, True).items())]
            memo[ref] = f"{node.tool}({', '.join(ports + lits)})"
        return memo[ref]

    return expr(ref_name(program.output))


# ---------------------------------------------------------------- grammar

FLOAT = '"-"? [0-9] ("." [0-9] [0-9]?)?'
WIDE_FLOAT = '"-"? [0-9] [0-9]? [0-9]? ("." [0-9] [0-9]?)?'  # for numbers bounded past 9 (rotate's degrees)
INT = '"-"? [0-9] [0-9]? [0-9]? [0-9]?'
STRING = '"\\"" [^"\\\\\\n] [^"\\\\\\n]* "\\""'


def _value_rule(prop: dict[str, Any]) -> str | None:
    """EBNF for one literal arg's JSON Schema; None leaves the arg out of the steps form."""
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        return _value_rule(options[0]) if len(options) == 1 else None
    if "enum" in prop:
        return " | ".join(json.dumps(json.dumps(v)) for v in prop["enum"])
    kind = prop.get("type")
    if kind == "number":
        bound = max(abs(prop.get(k, 0)) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"))
        return WIDE_FLOAT if bound >= 10 else FLOAT
    if kind == "integer":
        return INT
    if kind == "string":
        return STRING
    if kind == "boolean":
        return '"true" | "false"'
    if kind == "array" and prop.get("items", {}).get("type") == "integer":
        return '"[" ' + ' "," '.join([INT] * prop.get("minItems", 1)) + ' "]"'
    return None


def _tool_rule(spec: ToolSpec) -> str:
    pieces = []
    required = set(spec.required_args())
    for name, prop in spec.args_schema().get("properties", {}).items():
        rule = None if is_file_arg(prop) else _value_rule(prop)  # host paths are not the planner's to offer
        if rule is not None:
            piece = f'" {name}=" ({rule})'
            pieces.append(piece if name in required else f"({piece})?")
    return f'step_{spec.name} ::= "{spec.name}" {" ".join(pieces)}'.rstrip()


def steps_grammar(registry: Registry, max_steps: int = MAX_NODES) -> str:
    """The xgrammar EBNF of the steps form for every registered tool, or one refusal line."""
    tools = list(registry)
    return "\n".join([
        "root ::= refusal | line" + " line?" * (max_steps - 1),
        f'refusal ::= "{REFUSAL_TOOL} reason=" ({STRING}) "\\n"',
        'line ::= step "\\n"',
        "step ::= " + " | ".join(f"step_{s.name}" for s in tools),
        *(_tool_rule(s) for s in tools),
    ]) + "\n"
