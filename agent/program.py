"""The instruction graph: pydantic models, the planner's JSON Schema, and validation.

A program is JSON: nodes, each a tool call whose args are literals or
``"$name"`` references to another node's output or to a session input
(``$input``, ``$input1``, ...). The JSON Schema built here from the registry is
what a constrained decoder emits; :func:`validate` checks, with networkx, what a
schema cannot: references, cycles, port types, the output, limits. Every problem
names the node and says how to fix it, because the messages go back to the
planner verbatim.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from banana.tools.files import is_file_arg
from banana.tools.registry import Registry
from banana.tools.spec import ToolSpec

MAX_NODES = 32
MAX_STRING = 200
MAX_PROGRAM_BYTES = 1 << 20  # a real program is a few hundred bytes
NODE_ID = r"^[a-z_][a-z0-9_]{0,31}$"
REF = r"^\$[a-z_][a-z0-9_]{0,31}$"
NODE_ID_RE = re.compile(NODE_ID)
REF_RE = re.compile(REF)
INPUT_RE = re.compile(r"^input[0-9]*$")


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Program(BaseModel):
    """A parsed (not yet validated) program."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    nodes: list[Node]
    output: str

    def to_json(self, indent: int | None = None) -> str:
        return self.model_dump_json(indent=indent)

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


class Problem(BaseModel):
    """One thing wrong with a program, phrased for a planner to fix."""

    node: str | None = None
    where: str = ""
    message: str

    def __str__(self) -> str:
        node = self.node if self.node is None or len(self.node) <= 40 else self.node[:40] + "..."
        at = f"node {node!r}" if node else "program"
        if self.where:
            at += f", {self.where if len(self.where) <= 60 else self.where[:60] + '...'}"
        return f"{at}: {self.message}"


class ProgramError(ValueError):
    """A program that cannot run, with every problem found (not only the first)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    def feedback(self) -> str:
        """The problems, one per line, as fed back to the planner."""
        return "\n".join(f"- {p}" for p in self.problems)


def cut(value: Any, limit: int = 60) -> str:
    """``repr`` of a user value, shortened: errors never echo a megabyte back."""
    try:
        text = repr(value)
    except RecursionError:  # a value nested thousands deep (a hostile program built in Python, not JSON)
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def a(type_name: str | None) -> str:
    """'an Image', 'a Mask': messages read as sentences."""
    name = type_name or "value"
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"


def is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


def ref_name(value: str) -> str:
    return value[1:]


def input_names(n: int) -> list[str]:
    """Names of the session inputs: input, input1, input2, ..."""
    return ["input"] + [f"input{i}" for i in range(1, n)]


# ---------------------------------------------------------------- parsing


def parse_program(data: str | bytes | dict[str, Any]) -> Program:
    """Text or dict -> Program, with JSON and shape errors as a ProgramError."""
    if isinstance(data, (str, bytes)):
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProgramError([Problem(message=f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}")]) from None
        if len(data) > MAX_PROGRAM_BYTES:
            raise ProgramError([Problem(message=f"the program is {len(data)} characters; at most {MAX_PROGRAM_BYTES} are allowed")])
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProgramError([Problem(message=f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]) from None
        except RecursionError:
            raise ProgramError([Problem(message="the JSON is nested too deeply; a program is at most a few levels deep")]) from None
    if not isinstance(data, dict):
        raise ProgramError([Problem(message=f"a program is a JSON object with 'nodes' and 'output', got {type(data).__name__}")])
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        raise ProgramError([_shape_problem(err, data) for err in exc.errors()]) from None


def _shape_problem(err: Any, data: dict[str, Any]) -> Problem:
    loc = list(err["loc"])
    node = None
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = data.get("nodes") or []
        raw = nodes[loc[1]] if loc[1] < len(nodes) else None
        node = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{loc[1]}"
        loc = loc[2:]
    where = ".".join(str(p) for p in loc)
    msg = err["msg"]
    if err["type"] == "missing":
        msg = f"field '{where}' is missing"
    elif err["type"] == "extra_forbidden":
        msg = f"unexpected field '{where}'; a node has only id, tool and args"
    return Problem(node=node, where=where, message=msg)


# ---------------------------------------------------------------- validation


@dataclass(frozen=True)
class ValidProgram:
    """A program that passed validation, with its graph and run order."""

    program: Program
    graph: nx.DiGraph
    order: list[str]  # node ids needed for the output, in dependency order
    inputs_used: list[str]
    types: dict[str, str]  # node id or input name -> value type

    @property
    def output(self) -> str:
        return ref_name(self.program.output)


def validate(
    program: Program | str | bytes | dict[str, Any],
    registry: Registry,
    inputs: dict[str, str] | None = None,
    max_nodes: int = MAX_NODES,
    max_string: int = MAX_STRING,
) -> ValidProgram:
    """Check a program against the registry and the session's inputs (name -> type).

    Raises :class:`ProgramError` listing every problem found.
    """
    if not isinstance(program, Program):
        program = parse_program(program)
    inputs = {"input": "Image"} if inputs is None else inputs
    problems: list[Problem] = []
    types: dict[str, str] = dict(inputs)
    specs: dict[str, ToolSpec] = {}

    if not program.nodes:
        problems.append(Problem(message="the program has no nodes; add at least one tool call"))
    if len(program.nodes) > max_nodes:  # fatal: checking (and suggesting fixes for) thousands of nodes helps no one
        raise ProgramError([Problem(message=f"the program has {len(program.nodes)} nodes; at most {max_nodes} are allowed")])

    seen: set[str] = set()
    for node in program.nodes:
        if not NODE_ID_RE.fullmatch(node.id):
            problems.append(Problem(node=node.id, where="id", message=f"id must match {NODE_ID} (lowercase, digits, _)"))
        if node.id in seen:
            problems.append(Problem(node=node.id, where="id", message="this id is used by another node; ids must be unique"))
        if node.id in inputs or INPUT_RE.fullmatch(node.id):
            problems.append(Problem(node=node.id, where="id", message=f"'{node.id}' is reserved for session inputs; rename the node"))
        seen.add(node.id)
        if node.tool not in registry:
            hint = registry.suggest(node.tool) if len(node.tool) <= 64 else ""
            problems.append(Problem(node=node.id, where="tool", message=f"unknown tool {cut(node.tool)}{hint}"))
            continue
        spec = registry.get(node.tool)
        specs[node.id] = spec
        types.setdefault(node.id, spec.output)

    graph = nx.DiGraph()
    graph.add_nodes_from(n.id for n in program.nodes)
    known = set(types) | set(seen)
    for node in program.nodes:
        spec = specs.get(node.id)
        if spec is None:
            continue
        problems += _check_args(node, spec, known, types, max_string)
        for port in spec.inputs:
            value = node.args.get(port)
            if is_ref(value) and ref_name(value) in seen:
                graph.add_edge(ref_name(value), node.id)

    for cycle in _cycles(graph):
        path = " -> ".join([*cycle, cycle[0]])
        problems.append(Problem(node=cycle[0], message=f"cycle {path}: a node cannot depend on its own output; "
                                "break the loop by reading from $input or an earlier node"))

    out = program.output
    if not is_ref(out) or not REF_RE.fullmatch(out):
        problems.append(Problem(where="output", message=f"output must be a reference like \"$node_id\", got {cut(out)}"))
    elif ref_name(out) in inputs:
        problems.append(Problem(where="output", message=f"output {out} is a session input, not a result; "
                                "end with a tool that edits it"))
    elif ref_name(out) not in known:
        problems.append(Problem(where="output", message=f"output {out} names no node{_near(ref_name(out), known)}"))
    elif types.get(ref_name(out)) not in (None, "Image"):
        problems.append(Problem(where="output", message=f"output {out} is {a(types.get(ref_name(out)))}; "
                                "the output must be an Image (end with a tool that returns one)"))

    if problems:
        raise ProgramError(problems)

    target = ref_name(out)
    needed = (nx.ancestors(graph, target) | {target}) if target in graph else set()
    order = [n for n in nx.lexicographical_topological_sort(graph) if n in needed]
    used = sorted({ref_name(v) for n in program.nodes if n.id in needed for v in n.args.values()
                   if is_ref(v) and ref_name(v) in inputs} | ({target} if target in inputs else set()))
    return ValidProgram(program=program, graph=graph, order=order, inputs_used=used, types=types)


def _near(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=2, cutoff=0.5)
    return f"; did you mean {' or '.join('$' + c for c in close)}?" if close else f"; known: {', '.join('$' + k for k in sorted(known))}"


def _cycles(graph: nx.DiGraph) -> list[list[str]]:
    cycles = []
    for comp in nx.strongly_connected_components(graph):
        if len(comp) > 1:
            cycles.append(nx.find_cycle(graph.subgraph(comp)))
        else:
            (n,) = comp
            if graph.has_edge(n, n):
                cycles.append([(n, n)])
    return [[edge[0] for edge in c] for c in sorted(cycles, key=lambda c: c[0][0])]


def _check_args(node: Node, spec: ToolSpec, known: set[str], types: dict[str, str], max_string: int) -> list[Problem]:
    problems: list[Problem] = []
    allowed = list(spec.inputs) + spec.arg_names
    for key in node.args:
        if key not in allowed:
            problems.append(Problem(node=node.id, where=f"args.{key}",
                                    message=f"{spec.name} has no argument {cut(key)}; it takes {', '.join(allowed)}"))
    for port, p in spec.inputs.items():
        value = node.args.get(port)
        if value is None:
            if p.required:
                problems.append(Problem(node=node.id, where=f"args.{port}",
                                        message=f"{spec.name} needs {port!r} ({a(p.type)}); pass a reference like \"$input\""))
            continue
        if not is_ref(value):
            problems.append(Problem(node=node.id, where=f"args.{port}",
                                    message=f"{port!r} takes a reference to {a(p.type)} (\"$node_id\"), not the literal {cut(value)}"))
            continue
        name = ref_name(value)
        if not REF_RE.fullmatch(value):
            problems.append(Problem(node=node.id, where=f"args.{port}",
                                    message=f"{cut(value)} is not a valid reference (\"$\" then an id)"))
        elif name not in known:
            problems.append(Problem(node=node.id, where=f"args.{port}", message=f"{value} names no node or input{_near(name, known)}"))
        elif name == node.id:
            continue  # reported as a cycle
        elif types.get(name) and types[name] != p.type:
            problems.append(Problem(node=node.id, where=f"args.{port}",
                                    message=f"{port!r} needs {a(p.type)} but {value} is {a(types[name])}"))
    for group in spec.one_of:
        given = [g for g in group if node.args.get(g) is not None]
        if len(given) != 1:
            problems.append(Problem(node=node.id, where=f"args.{'|'.join(group)}",
                                    message=f"{spec.name} needs exactly one of {', '.join(group)}; got {', '.join(given) or 'none'}"))
    literals = {k: v for k, v in node.args.items() if k in spec.arg_names}
    for key, value in literals.items():
        if is_ref(value):
            problems.append(Problem(node=node.id, where=f"args.{key}",
                                    message=f"{key!r} is a literal value, not a reference; write the value itself instead of {cut(value)}"))
        elif isinstance(value, str) and len(value) > max_string:
            problems.append(Problem(node=node.id, where=f"args.{key}", message=f"string is {len(value)} characters; at most {max_string}"))
    props = spec.args_schema().get("properties", {})
    for key, value in literals.items():
        if isinstance(value, bool) and not _allows_bool(props.get(key, {})):
            kind = props.get(key, {}).get("type")
            problems.append(Problem(node=node.id, where=f"args.{key}",
                                    message=f"{key}={json.dumps(value)}: expected {a(kind) if kind else 'a value'}, not true/false"))
    if any(p.where.startswith("args.") and p.where[5:] in literals for p in problems):
        return problems
    try:
        spec.args_model.model_validate(literals)
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = f"{spec.name} needs {key!r}" if err["type"] == "missing" else f"{key}={cut(err['input'])}: {err['msg']}"
            if err["type"] == "missing":
                msg += f" ({_arg_hint(spec, key)})"
            problems.append(Problem(node=node.id, where=f"args.{key}", message=msg))
    return problems


def _allows_bool(prop: dict[str, Any]) -> bool:
    """Whether a literal's JSON Schema admits true/false (pydantic would quietly read true as 1.0)."""
    if prop.get("type") == "boolean" or not prop:
        return True
    return any(_allows_bool(p) for p in prop.get("anyOf", []))


def _arg_hint(spec: ToolSpec, key: str) -> str:
    prop = spec.args_schema().get("properties", {}).get(key, {})
    return ", ".join(f"{k}={v}" for k, v in prop.items() if k in ("type", "enum", "minimum", "maximum")) or "see banana tools"


# ---------------------------------------------------------------- planner schema


def _ref_schema(refs: list[str] | None) -> dict[str, Any]:
    if refs is None:
        return {"type": "string", "pattern": REF}
    return {"type": "string", "enum": ["$" + r for r in refs]}


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """Resolve local ``$ref``s so each tool variant is self-contained."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(defs[schema["$ref"].split("/")[-1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k not in ("title", "$defs")}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def node_schema(spec: ToolSpec, refs: list[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of one node calling ``spec`` (ports are references, literals are typed)."""
    args_schema = spec.args_schema()
    defs = args_schema.get("$defs", {})
    props: dict[str, Any] = {}
    required: list[str] = []
    for port, p in spec.inputs.items():
        props[port] = {**_ref_schema(refs), "description": f"reference to {a(p.type)}"}
        if p.required:
            required.append(port)
    for name, prop in args_schema.get("properties", {}).items():
        if not is_file_arg(prop):  # host paths are not the planner's to offer (banana.tools.files)
            props[name] = _inline(prop, defs)
    required += spec.required_args()
    return {
        "type": "object",
        "description": spec.description,
        "properties": {
            "id": {"type": "string", "pattern": NODE_ID} if refs is None
            else {"type": "string", "enum": [r for r in refs if not INPUT_RE.match(r)]},
            "tool": {"const": spec.name},
            "args": {"type": "object", "properties": props, "required": required, "additionalProperties": False},
        },
        "required": ["id", "tool", "args"],
        "additionalProperties": False,
    }


def planner_schema(registry: Registry, refs: list[str] | None = None, max_nodes: int = MAX_NODES) -> dict[str, Any]:
    """The one JSON Schema of a program, one node variant per registered tool.

    With ``refs`` (the allowed ids, inputs first) references and ids become enums,
    for engines such as llama.cpp that mishandle regex patterns.
    """
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Banana program",
        "type": "object",
        "properties": {
            "version": {"const": 1},
            "nodes": {"type": "array", "minItems": 1, "maxItems": max_nodes,
                      "items": {"anyOf": [node_schema(s, refs) for s in registry]}},
            "output": _ref_schema(refs),
        },
        "required": ["version", "nodes", "output"],
        "additionalProperties": False,
    }
