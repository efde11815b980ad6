"""The planner metrics behind the README's table: compare, normalisation, summarize (hand-made pairs)."""

from __future__ import annotations

import pytest

from banana.agent.planner.evaluate import CaseResult, _norm, compare, summarize
from banana.agent.program import parse_program


def prog(*nodes, output=None):
    nodes = [{"id": i, "tool": t, "args": a} for i, t, a in nodes]
    return parse_program({"version": 1, "nodes": nodes, "output": output or "$" + nodes[-1]["id"]})


BG_BLUR = prog(("p", "segment", {"image": "$input", "target": "person"}), ("bg", "invert", {"mask": "$p"}),
               ("b", "blur", {"image": "$input", "mask": "$bg", "amount": 0.5}))


@pytest.mark.parametrize(("pred", "exact", "f1", "correct"), [
    # same computation, other node ids, default spelled out vs left out: exact
    (prog(("m", "segment", {"image": "$input", "target": "Person"}), ("inv", "invert", {"mask": "$m"}),
          ("out", "blur", {"image": "$input", "mask": "$inv"})), True, 1.0, 2),
    # one literal wrong (amount 0.9): same tools, not exact, 1 of 2 gold args right
    (prog(("p", "segment", {"image": "$input", "target": "person"}), ("bg", "invert", {"mask": "$p"}),
          ("b", "blur", {"image": "$input", "mask": "$bg", "amount": 0.9})), False, 1.0, 1),
    # the invert is missing: blurs the person instead; tool F1 = 2*2/(3+2)
    (prog(("p", "segment", {"image": "$input", "target": "person"}),
          ("b", "blur", {"image": "$input", "mask": "$p", "amount": 0.5})), False, 0.8, 2),
    # a different tool altogether
    (prog(("a", "adjust", {"image": "$input", "brightness": 0.5})), False, 0.0, 0),
])
def test_compare(registry, pred, exact, f1, correct):
    got_exact, got_f1, got_correct, total = compare(pred, BG_BLUR, registry)
    assert (got_exact, got_correct, total) == (exact, correct, 2)  # gold literal args: segment's target, blur's amount
    assert got_f1 == pytest.approx(f1)


def test_compare_counts_gold_args_and_handles_no_prediction(registry):
    assert compare(None, BG_BLUR, registry) == (False, 0.0, 0, 2)


def test_same_computation_with_reordered_independent_nodes_is_exact(registry):
    gold = prog(("w", "adjust", {"image": "$input", "warmth": 0.4}), ("p", "segment", {"image": "$input", "target": "sky"}),
                ("r", "recolor", {"image": "$w", "mask": "$p", "color": "purple"}))
    pred = prog(("p", "segment", {"image": "$input", "target": "the sky"}), ("w", "adjust", {"image": "$input", "warmth": 0.4}),
                ("r", "recolor", {"image": "$w", "mask": "$p", "color": "PURPLE"}))
    exact, _, correct, total = compare(pred, gold, registry)
    assert correct == total  # "the sky" is "sky" for argument accuracy ...
    assert not exact  # ... but exact match does not drop articles: the tools would read "the sky" as a different target string


@pytest.mark.parametrize(("value", "normal"), [
    ("The Sky", "sky"), ("an apple", "apple"), ("a", "a"), ("  Red ", "red"), (0.52, 0.5), (0.53, 0.55), (1, 1.0),
    (True, True), (None, None), ([1, 2], [1, 2]),
])
def test_norm(value, normal):
    assert _norm(value) == normal


def _result(exact, valid=True, first=True, f1=1.0, correct=1, total=1, seconds=1.0):
    return CaseResult(instruction="x", source="s", first_valid=first, valid=valid, exact=exact, tool_f1=f1, arg_correct=correct,
                      arg_total=total, seconds=seconds, predicted="", gold="")


def test_summarize():
    results = [_result(True, seconds=s) for s in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    results.append(_result(False, valid=False, first=False, f1=0.0, correct=0, total=3, seconds=5.0))
    s = summarize("t", results)
    assert (s.cases, s.exact, s.first_valid, s.valid_after_repair) == (10, 0.9, 0.9, 0.9)
    assert s.tool_f1 == pytest.approx(0.9)
    assert s.arg_accuracy == pytest.approx(9 / 12)  # pooled over arguments, not averaged per case
    assert s.mean_seconds == pytest.approx(9.5 / 10)
    assert s.p90_seconds == 5.0
    assert summarize("empty", []).cases == 0
