"""bench/planner_compare: paired comparison of two planner runs with confidence intervals."""

from __future__ import annotations

import json

import pytest

from bench.planner_compare import compare_sets, main, mcnemar_p, paired_bootstrap, table


def _run(exact: list[bool], harmful: list[bool], seconds: float) -> dict:
    cases = [{"instruction": f"case {i}", "exact": e, "harmful": h, "seconds": seconds + i / 100}
             for i, (e, h) in enumerate(zip(exact, harmful, strict=True))]
    return {"summaries": [], "cases": {"set A (10)": cases}}


def test_mcnemar_is_exact_and_two_sided():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)  # all six discordant cases one way
    assert mcnemar_p(1, 5) == mcnemar_p(5, 1) == pytest.approx(2 * 7 / 64)


def test_paired_differences_and_intervals():
    old = _run([True] * 5 + [False] * 5, [False] * 9 + [True], 1.0)
    new = _run([True] * 8 + [False, True], [False] * 10, 2.0)
    (row,) = compare_sets(old, new)
    assert row.exact == (5, 9) and row.only_old == 0 and row.only_new == 4
    assert row.harmful == (1, 0)
    assert 0 < row.diff_ci[0] <= 0.4 <= row.diff_ci[1] <= 0.8
    assert row.exact_ci[0][0] < 0.5 < row.exact_ci[0][1]
    assert row.mean_s == (1.04, 2.04)
    assert "5/10 = 50%" in table([row], ("r4", "r5")) and "| 0 / 4 |" in table([row], ("r4", "r5"))
    same = paired_bootstrap([True, False] * 5, [True, False] * 5)
    assert same == (0.0, 0.0)


def test_different_cases_are_an_error_naming_the_set(tmp_path, capsys, monkeypatch):
    old = _run([True] * 10, [False] * 10, 1.0)
    new = _run([True] * 10, [False] * 10, 1.0)
    new["cases"]["set A (10)"][0]["instruction"] = "something else"
    with pytest.raises(ValueError, match=r"set 'set A \(10\)': the two runs have different cases"):
        compare_sets(old, new)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(old))
    b.write_text(json.dumps(old))
    monkeypatch.setattr("sys.argv", ["planner_compare", str(a), str(b), "--names", "r4,r5"])
    main()
    assert "| set A (10) | 10 | 10/10 = 100%" in capsys.readouterr().out
