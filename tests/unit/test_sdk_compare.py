"""`modelops eval compare`'s arithmetic: paired differences, their bootstrap interval, and the disagreements."""

from __future__ import annotations

import pytest
from modelops_sdk.compare import compare


def items(scores: list[float], answers: list[str]) -> list[dict[str, object]]:
    return [
        {"item": i, "question": f"q{i}", "reference": "yes", "answer": a, "exact_match": s, "perplexity": 2.0 + s}
        for i, (s, a) in enumerate(zip(scores, answers, strict=True))
    ]


def test_a_clear_gain_has_an_interval_above_zero_and_its_items_are_listed():
    n = 40
    a = items([0.0] * n, ["no"] * n)
    b = items([1.0] * 30 + [0.0] * 10, ["yes"] * 30 + ["no"] * 10)
    result = compare("ra", a, "rb", b, suite="s")
    exact = next(m for m in result.metrics if m.metric == "exact_match")
    assert (exact.a, exact.b, exact.difference, exact.items) == (0.0, 0.75, 0.75, n)
    assert 0.5 < exact.low <= 0.75 <= exact.high < 1.0
    assert exact.significant
    assert [d.item for d in result.disagreements] == list(range(30))
    assert result.disagreements[0].answer_b == "yes"


def test_no_difference_is_not_significant_and_the_same_seed_gives_the_same_interval():
    a = items([1.0, 0.0] * 10, ["x"] * 20)
    b = items([0.0, 1.0] * 10, ["y"] * 20)
    first = compare("ra", a, "rb", b, suite="s")
    exact = next(m for m in first.metrics if m.metric == "exact_match")
    assert exact.difference == 0.0
    assert exact.low < 0 < exact.high
    assert not exact.significant
    assert compare("ra", a, "rb", b, suite="s").metrics == first.metrics


def test_only_items_both_scored_are_paired():
    a = items([1.0, 1.0, 0.0], ["a", "b", "c"])
    b = items([1.0, 0.0], ["a", "x"])
    exact = next(m for m in compare("ra", a, "rb", b, suite="s").metrics if m.metric == "exact_match")
    assert exact.items == 2
    with pytest.raises(ValueError, match="no item in common"):
        compare("ra", a, "rb", [], suite="s")
