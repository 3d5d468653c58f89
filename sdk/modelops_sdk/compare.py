"""Two eval reports of one suite side by side: each metric's aggregate in both, the difference with a paired
bootstrap confidence interval, and the items where the two disagree.

Paired: the difference is taken item by item (the same question answered by both), then resampled, which is what
separates a real gain from the luck of which items a small suite holds; a report's items are the rows of its
`items.parquet`, matched by their index in the suite.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
# Per-item columns of a report that are not a metric's score.
NOT_SCORES = frozenset({"item", "question", "reference", "answer", "reference_logprob", "reference_tokens"})


@dataclass(frozen=True)
class MetricDifference:
    metric: str
    a: float
    b: float
    difference: float  # b - a, over the items both scored
    low: float  # the confidence interval of the difference
    high: float
    items: int

    @property
    def significant(self) -> bool:
        """The interval excludes zero: B differs from A beyond what resampling the items explains."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Disagreement:
    item: int
    question: str
    reference: str
    answer_a: str | None
    answer_b: str | None
    scores_a: dict[str, float]
    scores_b: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    report_a: str
    report_b: str
    suite: str
    metrics: list[MetricDifference]
    disagreements: list[Disagreement]


def compare(
    report_a: str,
    items_a: Sequence[Mapping[str, Any]],
    report_b: str,
    items_b: Sequence[Mapping[str, Any]],
    *,
    suite: str,
    seed: int = 0,
) -> Comparison:
    """Compare two reports' items (rows of their items.parquet) on every metric both scored per item.

    Perplexity is compared as the mean of per-item perplexities here, not the token-weighted figure of the report's
    aggregates: the bootstrap resamples items. The disagreements are the items where any shared score differs.
    """
    by_item_a = {int(row["item"]): row for row in items_a}
    by_item_b = {int(row["item"]): row for row in items_b}
    shared = sorted(by_item_a.keys() & by_item_b.keys())
    if not shared:
        raise ValueError(f"{report_a} and {report_b} scored no item in common")
    metrics = sorted(_scores(items_a) & _scores(items_b))
    differences = []
    for metric in metrics:
        pairs = [(float(by_item_a[i][metric]), float(by_item_b[i][metric])) for i in shared]
        pairs = [(a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
        if not pairs:
            continue
        deltas = [b - a for a, b in pairs]
        low, high = _interval(deltas, seed)
        differences.append(
            MetricDifference(
                metric=metric,
                a=sum(a for a, _ in pairs) / len(pairs),
                b=sum(b for _, b in pairs) / len(pairs),
                difference=sum(deltas) / len(deltas),
                low=low,
                high=high,
                items=len(pairs),
            )
        )
    disagreements = [
        Disagreement(
            item=i,
            question=str(by_item_a[i].get("question", "")),
            reference=str(by_item_a[i].get("reference", "")),
            answer_a=by_item_a[i].get("answer"),
            answer_b=by_item_b[i].get("answer"),
            scores_a={m: float(by_item_a[i][m]) for m in metrics},
            scores_b={m: float(by_item_b[i][m]) for m in metrics},
        )
        for i in shared
        if any(by_item_a[i][m] != by_item_b[i][m] for m in metrics if m != "perplexity")
    ]
    return Comparison(report_a, report_b, suite, differences, disagreements)


def read_items(path: Path) -> list[dict[str, Any]]:
    """A report's items.parquet as rows."""
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def _interval(deltas: list[float], seed: int) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean difference: the items resampled with replacement."""
    rng = random.Random(seed)
    n = len(deltas)
    means = sorted(sum(deltas[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP_SAMPLES))
    tail = (1 - CONFIDENCE) / 2
    return means[int(tail * (len(means) - 1))], means[int((1 - tail) * (len(means) - 1))]


def _scores(items: Sequence[Mapping[str, Any]]) -> set[str]:
    return set(items[0]) - NOT_SCORES if items else set()
