"""A program in plain words, from each tool's own ``phrase`` ("blur everything except the person, amount 0.5").

Used by the critic (advice names what a mask selects), by the intent check and by
plan reranking (descriptions are compared with the request). Also: what each mask
derives from ("not person"), so checks know which target a node edits.
"""

from __future__ import annotations

from typing import Any

from banana.agent.program import Program, ValidProgram, is_ref, ref_name, validate
from banana.tools.checks import render_phrase
from banana.tools.registry import Registry
from banana.tools.spec import ToolSpec

WHOLE = "the whole picture"


def _shown_args(spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Literal args worth saying: given ones, and defaults that are not 'nothing' (0, None, False)."""
    shown: dict[str, Any] = {}
    for name, field in spec.args_model.model_fields.items():
        value = args.get(name, None if field.is_required() else field.default)
        if value in (None, False, "") or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
            continue
        shown[name] = value
    return shown


def node_words(valid: ValidProgram, registry: Registry) -> dict[str, str]:
    """Node id (and input name) -> plain words for what it produces."""
    words: dict[str, str] = {name: "the picture" for name in valid.inputs_used}
    for nid in valid.order:
        node = valid.program.node(nid)
        spec = registry.get(node.tool)
        values: dict[str, Any] = _shown_args(spec, node.args)
        for port, p in spec.inputs.items():
            ref = node.args.get(port)
            if is_ref(ref):
                values[port] = words.get(ref_name(ref), ref)
            elif p.type == "Mask":
                values[port] = WHOLE
        text = render_phrase(spec.phrase, values) if spec.phrase else f"{node.tool}({', '.join(f'{k}={v}' for k, v in values.items())})"
        words[nid] = text
    return words


def mask_targets(valid: ValidProgram) -> dict[str, str]:
    """Node id -> the segment/detect target its mask derives from ("person"), "not person" when inverted."""
    targets: dict[str, str] = {}
    for nid in valid.order:
        node = valid.program.node(nid)
        args = node.args

        def of(port: str, args: dict[str, Any] = args) -> str:
            ref = args.get(port)
            return targets.get(ref_name(ref), "") if is_ref(ref) else ""

        if node.tool in ("segment", "detect"):
            targets[nid] = str(args.get("target", "")).strip().lower()
        elif node.tool == "detect_faces":
            targets[nid] = "face"
        elif node.tool == "invert":
            inner = of("mask")
            targets[nid] = inner[4:] if inner.startswith("not ") else (f"not {inner}" if inner else "")
        elif node.tool in ("grow", "mask_from_boxes"):
            targets[nid] = of("mask") or of("boxes")
        elif node.tool == "combine":
            a, b = of("a"), of("b")
            op = args.get("op", "union")
            targets[nid] = a if op != "union" or not b else f"{a} and {b}"
    return targets


def edit_nodes(valid: ValidProgram, registry: Registry) -> list[str]:
    """Nodes that change the picture (their output is an Image), in run order."""
    return [n for n in valid.order if registry.get(valid.program.node(n).tool).output == "Image"]


def describe(program: Program | ValidProgram, registry: Registry) -> str:
    """The whole program as one sentence: its picture-changing steps, in order."""
    valid = program if isinstance(program, ValidProgram) else validate(program, registry)
    words = node_words(valid, registry)
    steps = [words[n] for n in edit_nodes(valid, registry)] or [words[n] for n in valid.order]
    return "; then ".join(steps)
