"""Checks a valid program must pass before any node runs: the one place that asks "can this set-up run it at all?".

Today: tools marked ``needs="generative"`` (insert, edit) need a diffusion backbone
with weights. On the default classical set-up the plan is still the right plan, but
running it would only waste work, so it stops here, before a node starts or a model
loads, with a message naming the tools and how to configure weights (the CLI exits 3).
"""

from __future__ import annotations

from banana.agent.program import ValidProgram
from banana.tools.backbone import BackboneError, get_backbone
from banana.tools.registry import Registry

PIPELINES = {  # which BANANA_BACKBONE_PIPELINE values serve a generative tool (backbone/pipelines.py)
    "insert": "sd-inpaint, sdxl-inpaint or flux-kontext",
    "edit": "flux-kontext or instruct-pix2pix",
}
HOW = ("set BANANA_BACKBONE_WEIGHTS to a local diffusers pipeline folder (a hub id only as hf:org/name) "
       "and BANANA_BACKBONE_PIPELINE to {pipelines}; see the README's Backbone section")


class NeedsWeights(RuntimeError):
    """The program is right, but this set-up cannot run it: it needs diffusion weights. Nothing has run."""

    def __init__(self, tools: dict[str, list[str]], why: str) -> None:
        self.tools = tools  # tool name -> the node ids that use it
        uses = ", ".join(f"{t} (node{'s' if len(ns) > 1 else ''} {', '.join(repr(n) for n in ns)})" for t, ns in tools.items())
        pipelines = " / ".join(dict.fromkeys(PIPELINES.get(t, "a generative pipeline") for t in tools))
        super().__init__(f"{uses} need{'s' if len(tools) == 1 else ''} diffusion weights, and {why}; "
                         f"nothing was run: {HOW.format(pipelines=pipelines)}")


def generative_nodes(valid: ValidProgram, registry: Registry) -> dict[str, list[str]]:
    """Tool name -> ids of the nodes that will run and need a generative backbone."""
    found: dict[str, list[str]] = {}
    for node_id in valid.order:
        tool = valid.program.node(node_id).tool
        if registry.get(tool).needs == "generative":
            found.setdefault(tool, []).append(node_id)
    return found


def preflight(valid: ValidProgram, registry: Registry) -> None:
    """Raise :class:`NeedsWeights` when the program uses a generative tool and no generative backbone is configured.

    Building the backbone object reads the configuration only; pipelines load on first use.
    """
    needed = generative_nodes(valid, registry)
    if not needed:
        return
    try:
        backbone = get_backbone()
    except BackboneError as exc:
        raise NeedsWeights(needed, f"the configured backbone cannot be set up ({exc})") from exc
    if not backbone.generative:
        raise NeedsWeights(needed, f"the {backbone.name} backbone is configured (no diffusion weights)")
