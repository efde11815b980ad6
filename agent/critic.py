"""The critic: runs every executed node's declared checks, plus program-level ones, and says what failed.

No vision-language model: every check is a measurement with a threshold (calibrated on
the sample photos, ``python -m bench.critic``). Per node, the tool's own checks
(``ToolSpec.checks``: keep / follow / quality / mask sanity); per program, faces keep
their identity unless an edit repaints them, the request's own words agree with the
plan (:mod:`banana.agent.intent`), and every node ran. A :class:`Critique` passes when
every *hard* check passes; its ``score`` orders attempts (fewer hard failures first).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from banana.agent.describe import describe, edit_nodes, mask_targets, node_words
from banana.agent.executor import RunResult
from banana.agent.intent import intent_checks
from banana.agent.program import ValidProgram, is_ref, ref_name
from banana.tools.checks import CheckCall, CheckResult
from banana.tools.memo import Memo, using
from banana.tools.registry import Registry
from banana.tools.values import Image, Mask, Value

log = logging.getLogger(__name__)

IDENTITY_MAX = 0.45  # face-embedding distance (dlib; < 0.6 = same person) a kept face may drift
IDENTITY_STYLE_MAX = 0.7  # the same, for a face a style repainted (not asked to change who it is)
FACE_WORDS = ("face", "skin", "hair", "eyes", "lips", "teeth", "eyebrows", "head")
FACE_TARGETED = 0.3  # share of a face's box inside a repainting edit's region: the edit targets that face
KEEPS_FACES = frozenset({"adjust", "crop", "upscale", "sharpen", "denoise", "enhance", "dehaze", "rotate", "flip", "straighten",
                         "border", "restore_identity", "lock_identity"})  # fmt: skip


class Critique(BaseModel):
    """Every check's result for one executed program."""

    results: list[CheckResult] = Field(default_factory=list)
    description: str = ""

    @property
    def passed(self) -> bool:
        return all(r.passed or not r.hard for r in self.results)

    @property
    def hard_failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.hard and not r.passed]

    @property
    def soft_failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.hard and not r.passed]

    @property
    def score(self) -> tuple[int, int, float]:
        """Lower is better: hard failures, soft failures, then how far past their thresholds they are."""
        gap = 0.0
        for r in self.results:
            if not r.passed:
                gap += min(10.0, abs(r.value - r.threshold) / max(abs(r.threshold), 1e-3))
        return len(self.hard_failures), len(self.soft_failures), round(gap, 4)

    def lines(self) -> list[str]:
        """The failures, one actionable line each (what the planner sees on a re-plan)."""
        return [r.line() for r in self.hard_failures + self.soft_failures]

    def summary(self) -> str:
        if self.passed:
            return f"all {sum(r.hard for r in self.results)} hard checks passed"
        return "; ".join(f"{r.check}{' at ' + repr(r.node) if r.node else ''}: {r.advice}" for r in self.hard_failures)


def _ports(valid: ValidProgram, nid: str, registry: Registry, values: dict[str, Value]) -> tuple[dict[str, Value], dict[str, str]]:
    node = valid.program.node(nid)
    spec = registry.get(node.tool)
    ports, refs = {}, {}
    for port in spec.inputs:
        ref = node.args.get(port)
        if is_ref(ref) and ref_name(ref) in values:
            ports[port] = values[ref_name(ref)]
            refs[port] = ref_name(ref)
    return ports, refs


def node_checks(valid: ValidProgram, run: RunResult, inputs: dict[str, Value], registry: Registry,
                memo: Memo | None = None) -> list[CheckResult]:
    """Each executed node's declared checks; a node that did not run is a hard failure.

    With a ``memo`` (the executor cache's), a node whose inputs and output are what they were on an
    earlier run gets that run's results again instead of being measured twice (checks are functions of their call)."""
    values: dict[str, Value] = {**inputs, **run.outputs}
    words, targets = node_words(valid, registry), mask_targets(valid)
    source = inputs.get("input")
    results: list[CheckResult] = []
    for nid in valid.order:
        node = valid.program.node(nid)
        if nid in run.failures:
            f = run.failures[nid]
            if f.kind == "failed":
                results.append(
                    CheckResult(
                        check="node ran", kind="follow", node=nid, tool=node.tool, value=0, threshold=1, passed=False, advice=f.error
                    )
                )
            continue
        if nid not in run.outputs:
            continue
        spec = registry.get(node.tool)
        ports, refs = _ports(valid, nid, registry, values)
        literals = spec.args_model.model_validate({k: v for k, v in node.args.items() if k in spec.arg_names}).model_dump()
        call = CheckCall(
            node=nid,
            tool=node.tool,
            args=literals,
            ports=ports,
            output=run.outputs[nid],
            source=source if isinstance(source, Image) else None,
            words={p: words.get(r, r) for p, r in refs.items()},
            targets={p: targets.get(r, "") for p, r in refs.items()},
        )
        key = _checks_key(call, spec.checks) if memo is not None else ""
        reused = memo.get(key) if memo is not None else None
        if reused is not None:  # the same node on the same pictures as an earlier turn: the same measurements
            results.extend(r.model_copy(deep=True) for r in reused)
            continue
        first = len(results)
        for check in spec.checks:
            try:
                results.extend(check(call))
            except Exception as exc:  # a broken check must not sink a good result: reported, soft
                log.warning("check %s of node %r failed: %s", getattr(check, "__name__", check), nid, exc)
                results.append(
                    call.result(
                        f"{getattr(check, '__name__', 'check')} could run",
                        "quality",
                        0,
                        1,
                        False,
                        f"the check itself failed: {type(exc).__name__}: {exc}",
                        hard=False,
                    )
                )
        if memo is not None:
            memo.put(key, [r.model_copy(deep=True) for r in results[first:]])
    return results


def _checks_key(call: CheckCall, checks: tuple[Any, ...]) -> str:
    """What a node's check results are a function of: the checks, the node's id, tool, args and words, and the content
    of its inputs, its output and the program's source picture (content hashes are computed once per value)."""
    values = sorted((p, v.content_hash) for p, v in call.ports.items())
    names = ",".join(f"{getattr(c, '__module__', '?')}.{getattr(c, '__qualname__', repr(c))}" for c in checks)
    parts = [names, call.node, call.tool, call.output.content_hash, call.source.content_hash if call.source is not None else "-",
             json.dumps([call.args, values, call.words, call.targets], sort_keys=True, default=str)]
    return "checks|" + hashlib.blake2b("|".join(parts).encode(), digest_size=20).hexdigest()


def _region_of(valid: ValidProgram, nid: str, values: dict[str, Value], shape: tuple[int, int]) -> np.ndarray:
    """Where an edit node repaints (its mask, or everything), at ``shape``."""
    node = valid.program.node(nid)
    ref = node.args.get("mask")
    mask = values.get(ref_name(ref)) if is_ref(ref) else None
    if not isinstance(mask, Mask):
        return np.ones(shape, np.float32)
    a = mask.alpha
    if a.shape != shape:
        import cv2

        a = cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return 1.0 - a if node.tool == "replace_background" else a


def identity_check(valid: ValidProgram, run: RunResult, inputs: dict[str, Value], registry: Registry) -> list[CheckResult]:
    """Faces that no edit repaints keep their identity (dlib embedding distance); a restyled face stays the same person, loosely."""
    source, output = inputs.get("input"), run.outputs.get(valid.output)
    if not isinstance(source, Image) or not isinstance(output, Image):
        return []
    if (output.height, output.width) != (source.height, source.width):  # crop / upscale / rotate: geometry, checked by their own tools
        return []
    repainting = [n for n in edit_nodes(valid, registry) if valid.program.node(n).tool not in KEEPS_FACES]
    from banana.experts.embeddings import distance
    from banana.experts.identity import faces_of

    faces = faces_of(source)
    if not faces:
        return []
    values: dict[str, Value] = {**inputs, **run.outputs}
    shape = (source.height, source.width)
    targets = mask_targets(valid)
    regions = {n: _region_of(valid, n, values, shape) for n in repainting}
    strict, loose = [], []
    for f in faces:
        x0, y0, x1, y1 = (int(v) for v in f.box)
        covering = [n for n, r in regions.items() if r[y0:y1, x0:x1].size and float(r[y0:y1, x0:x1].mean()) > FACE_TARGETED]
        if not covering:
            strict.append(f)
        elif all(valid.program.node(n).tool == "stylize" and not _face_target(valid, n, targets) for n in covering):
            loose.append(f)
    after = faces_of(output) if strict or loose else []
    results = []
    for group, limit, what in (
        (strict, IDENTITY_MAX, "a face no edit should touch changed"),
        (loose, IDENTITY_STYLE_MAX, "the restyled face is no longer the same person"),
    ):
        if not group or (group is loose and not after):  # a style may hide a face from the detector: not measurable
            continue
        worst = max(min((distance(np.asarray(f.embedding), np.asarray(g.embedding)) for g in after), default=9.9) for f in group)
        results.append(
            CheckResult(
                check="faces keep identity" if group is strict else "restyled faces keep identity",
                kind="keep",
                value=worst,
                threshold=limit,
                passed=worst <= limit,
                advice=f"{what} (distance {worst:.2f}); keep the face out of the mask, or add lock_identity + restore_identity",
            )
        )
    return results


def _face_target(valid: ValidProgram, nid: str, targets: dict[str, str]) -> bool:
    ref = valid.program.node(nid).args.get("mask")
    target = targets.get(ref_name(ref), "") if is_ref(ref) else ""
    return any(w in target for w in FACE_WORDS) and not target.startswith("not ")


def critique(
    valid: ValidProgram, run: RunResult, inputs: dict[str, Value], registry: Registry, request: str | None = None, identity: bool = True,
    memo: Memo | None = None,
) -> Critique:
    """Every check of an executed program (``request`` adds the intent checks).

    ``memo``: where derived values (Lab, float pixels, unchanged nodes' results) are remembered between
    runs, e.g. the executor cache's; without one, they are shared by the checks of this call only."""
    with using(memo if memo is not None else Memo()):
        return _critique(valid, run, inputs, registry, request, identity, memo)


def _critique(valid: ValidProgram, run: RunResult, inputs: dict[str, Value], registry: Registry, request: str | None,
              identity: bool, memo: Memo | None) -> Critique:
    results = node_checks(valid, run, inputs, registry, memo)
    if not run.ok and valid.output not in run.failures:
        results.append(
            CheckResult(check="output made", kind="follow", value=0, threshold=1, passed=False, advice="the output was not produced")
        )
    if identity and run.ok:
        try:
            results.extend(identity_check(valid, run, inputs, registry))
        except Exception as exc:  # faces could not be measured: say so, do not fail the result
            results.append(
                CheckResult(
                    check="faces keep identity",
                    kind="keep",
                    value=0,
                    threshold=IDENTITY_MAX,
                    passed=False,
                    hard=False,
                    advice=f"could not measure faces: {exc}",
                )
            )
    if request:
        results.extend(intent_checks(request, valid, registry))
    return Critique(results=results, description=describe(valid, registry))


def critique_table(c: Critique) -> list[dict[str, Any]]:
    """Rows for a CLI table or JSON: one per check."""
    return [
        {
            "node": r.node or "-",
            "tool": r.tool or "-",
            "kind": r.kind,
            "check": r.check,
            "value": round(r.value, 4),
            "threshold": round(r.threshold, 4),
            "hard": r.hard,
            "passed": r.passed,
            "advice": "" if r.passed else r.advice,
        }
        for r in c.results
    ]
